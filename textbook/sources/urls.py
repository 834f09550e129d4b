"""A file of URLs, one per line: anything yt-dlp can fetch. Nothing is fetched until download."""

from __future__ import annotations

from pathlib import Path

from textbook.records import Video
from textbook.sources.base import SourceError, dedup, safe_id_from_url


class UrlsSource:
    name = "urls"

    def __init__(self, urls_file: str) -> None:
        if not urls_file:
            raise SourceError("search.urls_file is not set (the urls source needs a file of URLs)")
        self.path = Path(urls_file)

    def search(self, query: str, limit: int) -> list[Video]:
        try:
            lines = self.path.read_text().splitlines()
        except OSError as exc:
            raise SourceError(f"urls file {self.path}: {exc.strerror}") from None
        videos = []
        for n, raw in enumerate(lines, 1):
            url = raw.strip()
            if not url or url.startswith("#"):
                continue
            if "://" not in url:
                raise SourceError(f"urls file {self.path}, line {n}: not a URL: {url!r}")
            videos.append(Video(video_id=safe_id_from_url(url), url=url, source=self.name,
                                search_keyword=query, rank=len(videos) + 1))
        return dedup(videos)[:limit]
