"""Any OpenAI-compatible chat server (vLLM, SGLang, TGI, llama.cpp, OpenAI itself) as an LLM or a VLM.

Messages are OpenAI chat messages; an image part may be given as ``{"type": "image", "path": ...}``
and is sent as a data URL, so a VLM behind the server needs no shared filesystem.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Sequence

from textbook.config import ModelSettings
from textbook.models.registry import BackendError, register

Message = dict[str, Any]


def data_url(path: str | Path) -> str:
    suffix = Path(path).suffix.lower().lstrip(".") or "jpeg"
    mime = "jpeg" if suffix == "jpg" else suffix
    return f"data:image/{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode()


def _wire(message: Message) -> Message:
    """``image`` parts (local paths) as ``image_url`` data URLs; everything else as given."""
    content = message.get("content")
    if not isinstance(content, list):
        return message
    parts = [{"type": "image_url", "image_url": {"url": data_url(p["path"])}} if p.get("type") == "image" else p
             for p in content]
    return {**message, "content": parts}


def chat(endpoint: str, model: str, messages: Sequence[Message], *, max_tokens: int, api_key_env: str,
         timeout: float = 120.0) -> str:
    """One chat completion at temperature 0 from ``endpoint`` (…/v1); BackendError naming the endpoint."""
    body = json.dumps({"model": model, "messages": [_wire(m) for m in messages], "max_tokens": max_tokens,
                       "temperature": 0}).encode()
    headers = {"Content-Type": "application/json"}
    if os.environ.get(api_key_env):
        headers["Authorization"] = f"Bearer {os.environ[api_key_env]}"
    req = urllib.request.Request(endpoint.rstrip("/") + "/chat/completions", data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise BackendError(f"chat endpoint {endpoint}: HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise BackendError(f"chat endpoint {endpoint} unreachable: {exc}") from None
    except json.JSONDecodeError:
        raise BackendError(f"chat endpoint {endpoint}: the answer is not JSON") from None
    try:
        return payload["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        raise BackendError(f"chat endpoint {endpoint}: unexpected answer {str(payload)[:200]}") from None


class OpenAIChat:
    """Conversations answered one request each (the server batches concurrent work itself)."""

    def __init__(self, cfg: ModelSettings) -> None:
        self.cfg = cfg

    def chat(self, conversations: Sequence[Sequence[Message]], max_new_tokens: int | None = None) -> list[str]:
        return [chat(self.cfg.endpoint, self.cfg.model, list(c), max_tokens=max_new_tokens or self.cfg.max_new_tokens,
                     api_key_env=self.cfg.api_key_env, timeout=self.cfg.timeout) for c in conversations]


for _kind in ("llm", "vlm"):
    register(_kind, "openai", needs=("endpoint", "model"),
             about="any OpenAI-compatible server; images as data URLs")(OpenAIChat)
