"""A derived dataset's part of the report: read from its exported files alone, summed up on the
index page, browsed on a page of its own. Each dataset declares one (``Dataset.report``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


@dataclass(frozen=True)
class ReportPage:
    file: str  # the page, in the report folder
    load: Callable[[Path], list[dict[str, Any]]]  # the dataset root -> its items, as exported
    summary: Callable[[list[dict[str, Any]]], str]  # the index page's lines (says so when there are none)
    render: Callable[[list[dict[str, Any]]], str]  # the page itself, written only when there are items
