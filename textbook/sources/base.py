"""What every source provides: ``search(knowledge_point, limit) -> [Video]``."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Protocol
from urllib.parse import parse_qs, urlparse

from textbook.records import Video

_YOUTUBE_HOSTS = ("youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com", "youtu.be",
                  "www.youtube-nocookie.com", "youtube-nocookie.com")
_YOUTUBE_PATH_ID = re.compile(r"^/(?:embed|shorts|live|v)/([A-Za-z0-9_-]{11})")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class SourceError(RuntimeError):
    """A source is misconfigured or cannot be read (missing file, unreachable search)."""


class Source(Protocol):
    name: str

    def search(self, query: str, limit: int) -> list[Video]: ...


def _youtube_id(url: str) -> str | None:
    parsed = urlparse(url)
    host = parsed.netloc.lower()
    if host not in _YOUTUBE_HOSTS:
        return None
    if host == "youtu.be":
        vid = parsed.path.strip("/")
    elif m := _YOUTUBE_PATH_ID.match(parsed.path):
        vid = m.group(1)
    else:
        vid = parse_qs(parsed.query).get("v", [""])[0]
    return vid if re.fullmatch(r"[A-Za-z0-9_-]{11}", vid or "") else None


def url_identity(url: str) -> str:
    """What makes two URLs the same video: the YouTube id, else the path and query (host and port
    aside, so the same course served elsewhere is still the same video)."""
    parsed = urlparse(url)
    return _youtube_id(url) or parsed.path + ("?" + parsed.query if parsed.query else "")


def safe_id_from_url(url: str) -> str:
    """A stable, path-safe video id for a URL: the YouTube id where there is one, else the file stem."""
    if vid := _youtube_id(url):
        return vid
    parsed = urlparse(url)
    stem = parsed.path.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    safe = _UNSAFE.sub("_", stem).strip("_")[:64]
    return safe or "u" + hashlib.sha1(url.encode()).hexdigest()[:11]


def disambiguated(video: Video) -> Video:
    """The same video under an id made unique by a hash of its URL identity (for id collisions)."""
    suffix = hashlib.sha1(url_identity(video.url).encode()).hexdigest()[:8]
    return dataclasses.replace(video, video_id=f"{video.video_id[:100]}-{suffix}")


def dedup(videos: list[Video]) -> list[Video]:
    """Keep the first (best-ranked) occurrence of each video; two different videos that got the same
    id (``a/lecture.mp4`` and ``b/lecture.mp4``) both stay, the later one under a disambiguated id."""
    seen: dict[str, str] = {}  # id -> url identity
    out = []
    for v in videos:
        identity = url_identity(v.url)
        if v.video_id in seen and seen[v.video_id] != identity:
            v = disambiguated(v)
        if v.video_id not in seen:
            seen[v.video_id] = identity
            out.append(v)
    return out
