"""The one JSON object an LLM was asked to answer with, found in what it said around it."""

from __future__ import annotations

import json
import re
from typing import Any

_OBJECT = re.compile(r"\{.*\}", re.S)


def first_object(answer: str) -> dict[str, Any] | None:
    """The outermost ``{...}`` of ``answer`` as a dict; None when there is none or it is not JSON."""
    match = _OBJECT.search(answer)
    if not match:
        return None
    try:
        obj = json.loads(match.group(0))
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None
