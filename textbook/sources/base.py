"""What every source provides: ``search(knowledge_point, limit) -> [Video]``."""

from __future__ import annotations

import hashlib
import re
from typing import Protocol
from urllib.parse import parse_qs, urlparse

from textbook.records import Video

_YOUTUBE_HOSTS = ("youtube.com", "www.youtube.com", "m.youtube.com", "youtu.be")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class SourceError(RuntimeError):
    """A source is misconfigured or cannot be read (missing file, unreachable search)."""


class Source(Protocol):
    name: str

    def search(self, query: str, limit: int) -> list[Video]: ...


def safe_id_from_url(url: str) -> str:
    """A stable, path-safe video id for a URL: the YouTube id where there is one, else the file stem."""
    parsed = urlparse(url)
    host = parsed.netloc.lower()
    if host in _YOUTUBE_HOSTS:
        vid = parse_qs(parsed.query).get("v", [""])[0] if host != "youtu.be" else parsed.path.strip("/")
        if re.fullmatch(r"[A-Za-z0-9_-]{11}", vid or ""):
            return vid
    stem = parsed.path.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    safe = _UNSAFE.sub("_", stem).strip("_")[:64]
    return safe or "u" + hashlib.sha1(url.encode()).hexdigest()[:11]


def dedup(videos: list[Video]) -> list[Video]:
    """Keep the first (best-ranked) occurrence of each video id."""
    seen: set[str] = set()
    out = []
    for v in videos:
        if v.video_id not in seen:
            seen.add(v.video_id)
            out.append(v)
    return out
