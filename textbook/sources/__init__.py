"""Sources find videos for a knowledge point: YouTube search, a file of URLs, or a local folder."""

from __future__ import annotations

from textbook.sources.base import Source, SourceError, safe_id_from_url


def get_source(settings) -> Source:  # noqa: ANN001 - Settings
    kind = settings.search.source
    if kind == "youtube":
        from textbook.sources.youtube import YoutubeSource

        return YoutubeSource(settings.search, settings.download)
    if kind == "urls":
        from textbook.sources.urls import UrlsSource

        return UrlsSource(settings.search.urls_file)
    if kind == "local":
        from textbook.sources.local import LocalSource

        return LocalSource(settings.search.local_dir)
    raise SourceError(f"search.source: unknown source {kind!r} (expected youtube, urls or local)")


__all__ = ["Source", "SourceError", "get_source", "safe_id_from_url"]
