"""A folder of media files; captions may sit beside a file as ``<stem>.<lang>.vtt`` or ``.srt``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from textbook.records import Video
from textbook.sources.base import SourceError, dedup, safe_id_from_url

MEDIA_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v"}


CAPTION_SUFFIXES = (".vtt", ".srt")


def sidecar_languages(media: Path) -> list[str]:
    """Languages of the caption files beside ``media`` (``<stem>.<lang>.vtt`` or ``.srt``), sorted."""
    folder, stem = media.parent, media.stem
    if not folder.is_dir():
        return []
    langs = {p.name[len(stem) + 1:-len(p.suffix)] for p in folder.iterdir()
             if p.suffix.lower() in CAPTION_SUFFIXES and p.name.startswith(stem + ".")}
    return sorted(lang for lang in langs if lang and "." not in lang)


class LocalSource:
    name = "local"

    def __init__(self, folder: str) -> None:
        if not folder:
            raise SourceError("search.local_dir is not set (the local source needs a folder of media files)")
        self.folder = Path(folder).resolve()

    def search(self, query: str, limit: int) -> list[Video]:
        if not self.folder.is_dir():
            raise SourceError(f"local source folder {self.folder} does not exist")
        files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in MEDIA_SUFFIXES and p.is_file())
        videos = [Video(video_id=safe_id_from_url(p.as_uri()), url=p.as_uri(), source=self.name, title=p.stem,
                        search_keyword=query, rank=i + 1) for i, p in enumerate(files)]
        return dedup(videos)[:limit]


def source_stamp(url: str) -> str:
    """Size and modification time of a local source file ("" for remote sources): a permanent
    failure is tried again once the file behind it changes."""
    if not url.startswith("file:"):
        return ""
    try:
        st = Path(unquote(urlparse(url).path)).stat()
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"
