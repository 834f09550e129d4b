"""Failure reasons people can act on: a short category and one line, the full text kept for logs.

yt-dlp's messages run to 300 characters and repeat themselves; status, the plugin and the report
group failures by category and show the line, ``textbook status --video`` shows the full text.
"""

from __future__ import annotations

import re

from sqlalchemy.exc import DBAPIError

# (category, what usually helps): the categories status and the report group by.
CATEGORIES = {
    "network": "the site could not be reached: check connectivity or the proxy; a later run retries",
    "timeout": "the site stalled: a later run retries (download.socket_timeout, max_stalls)",
    "rate_limited": "the site throttles us: slow down (download.sleep_interval, rate_limit) or add cookies",
    "sign_in_required": "the site asks to sign in or confirm age: set download.cookies_file",
    "unavailable": "removed, private or blocked: nothing to retry",
    "too_big": "over download.max_filesize",
    "truncated": "the file is cut short: re-fetch the source",
    "corrupt": "not a readable media file",
    "model_error": "a model backend failed: check its endpoint, folder or device",
    "storage": "the artifact store failed: check the disk or the S3 endpoint",
    "database": "the state database was unreachable past database.retry_seconds",
    "terminated": "the worker was stopped (task kill, timeout or shutdown): retry it",
    "error": "unexpected: see the full message",
}

_FETCH = {"http_429": "rate_limited", "login_required": "sign_in_required", "unsupported": "unavailable",
          "download_error": "error"}


def categorize(exc: BaseException) -> str:
    """The category of an exception a stage raised."""
    from textbook.media import MediaError
    from textbook.models import BackendError
    from textbook.sources.ytdlp import FetchError
    from textbook.store.s3 import S3StoreError
    from textbook.transcript.asr import AsrError

    if isinstance(exc, FetchError):
        if re.fullmatch(r"http_5\d\d", exc.reason):
            return "network"
        return _FETCH.get(exc.reason, exc.reason if exc.reason in CATEGORIES else "error")
    if isinstance(exc, MediaError):
        return "truncated" if str(exc).startswith("truncated") else "corrupt"
    if isinstance(exc, (AsrError, BackendError)):
        return "model_error"
    if isinstance(exc, DBAPIError):
        return "database"
    if isinstance(exc, (S3StoreError, OSError)):
        return "storage"
    if not isinstance(exc, Exception):
        return "terminated"
    return "error"


def one_line(message: str, limit: int = 160) -> str:
    """The first line of ``message`` without yt-dlp's prefixes and repeats, at most ``limit`` long."""
    line = re.sub(r"\x1b\[[0-9;]*m", "", message).strip().splitlines()[0] if message.strip() else ""
    line = re.sub(r"(ERROR: |\[[\w:]+\] )", "", line)
    parts = [p.strip() for p in line.split(": ")]
    seen: list[str] = []
    for p in parts:  # "http_500: HTTP Error 500: Internal Server Error: HTTP Error 500" -> each once
        if p and p not in seen:
            seen.append(p)
    line = ": ".join(seen)
    return line if len(line) <= limit else line[: limit - 1] + "…"
