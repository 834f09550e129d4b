"""YouTube search through yt-dlp (``ytsearchN:<query>``, flat): top N per knowledge point."""

from __future__ import annotations

from textbook.config import DownloadSettings, SearchSettings
from textbook.records import UnsafeIdError, Video, check_video_id
from textbook.sources.base import SourceError, dedup, safe_id_from_url
from textbook.sources.ytdlp import FetchError, available_captions, base_options, extract


def video_from_entry(entry: dict, query: str, rank: int) -> Video:
    """A search result's metadata, kept as yt-dlp gives it in flat mode."""
    url = entry.get("webpage_url") or entry.get("url") or ""
    try:
        vid = check_video_id(entry.get("id") or "")
    except UnsafeIdError:
        vid = safe_id_from_url(url)  # feeds and generic pages may give no id, or an unsafe one
    return Video(
        video_id=vid,
        url=url,
        source="youtube",
        title=entry.get("title") or "",
        description=entry.get("description") or "",
        channel=entry.get("channel") or entry.get("uploader") or "",
        duration=float(entry["duration"]) if entry.get("duration") else None,
        view_count=entry.get("view_count"),
        license=entry.get("license") or "",
        language=entry.get("language") or "",
        captions=available_captions(entry),
        search_keyword=query,
        rank=rank,
    )


class YoutubeSource:
    name = "youtube"

    def __init__(self, cfg: SearchSettings, download: DownloadSettings | None = None) -> None:
        self.cfg = cfg
        self.download = download or DownloadSettings()

    def search(self, query: str, limit: int) -> list[Video]:
        url = self.cfg.url_template.format(n=limit, query=query)
        opts = {**base_options(self.download), "extract_flat": "in_playlist", "playlistend": limit}
        try:
            info = extract(url, opts, download=False, cfg=self.download)
        except FetchError as exc:
            raise SourceError(f"search {query!r} failed: {exc}") from None
        videos = []
        for entry in info.get("entries") or []:
            if entry and (entry.get("url") or entry.get("webpage_url")):
                videos.append(video_from_entry(entry, query, len(videos) + 1))
        return dedup(videos)[:limit]
