"""yt-dlp, configured once: the options users need against YouTube's limits, and error reasons."""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Callable, TypeVar

import yt_dlp
from yt_dlp.utils import DownloadError, parse_bytes

from textbook.config import DownloadSettings

log = logging.getLogger(__name__)
T = TypeVar("T")


class FetchError(RuntimeError):
    """yt-dlp could not fetch something; ``reason`` is a short code (http_500, unavailable, too_big...)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    @property
    def permanent(self) -> bool:
        """Retrying cannot help: the video is gone, private, too big, or from an unsupported site."""
        return self.reason in ("unavailable", "login_required", "too_big", "unsupported")

    @property
    def transient(self) -> bool:
        return self.reason in ("timeout", "network") or bool(re.fullmatch(r"http_(5\d\d|429)", self.reason))


class YtdlpLog:
    """yt-dlp's messages, sent to our logger instead of the terminal and kept: some outcomes (a
    file over max-filesize) are only ever said, never raised."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def _keep(self, msg: str, level: int) -> None:
        self.lines.append(msg)
        log.log(level, msg)

    def debug(self, msg: str) -> None:
        self._keep(msg, logging.DEBUG)

    def info(self, msg: str) -> None:
        self._keep(msg, logging.DEBUG)

    def warning(self, msg: str) -> None:
        self._keep(msg, logging.INFO)

    def error(self, msg: str) -> None:
        self._keep(msg, logging.INFO)

    def said(self, needle: str) -> str | None:
        return next((line for line in self.lines if needle in line), None)


def base_options(cfg: DownloadSettings, logger: YtdlpLog | None = None) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": logger or YtdlpLog(),
        "socket_timeout": cfg.socket_timeout,
        # yt-dlp's own retries stay small and inside ours (with_retries), which own the budget
        "retries": cfg.http_retries,
        "fragment_retries": cfg.http_retries,
        "extractor_retries": cfg.http_retries,
        "file_access_retries": cfg.http_retries,
        "retry_sleep_functions": {"http": lambda n: cfg.retry_backoff * 2 ** n,
                                  "fragment": lambda n: cfg.retry_backoff * 2 ** n},
    }
    if cfg.sleep_interval:
        opts["sleep_interval"] = cfg.sleep_interval
        opts["max_sleep_interval"] = max(cfg.max_sleep_interval, cfg.sleep_interval)
    if cfg.rate_limit:
        opts["ratelimit"] = _bytes(cfg.rate_limit, "download.rate_limit")
    if cfg.max_filesize:
        opts["max_filesize"] = _bytes(cfg.max_filesize, "download.max_filesize")
    if cfg.cookies_file:
        opts["cookiefile"] = cfg.cookies_file
    if cfg.proxy:
        opts["proxy"] = cfg.proxy
    return opts


def _bytes(text: str, key: str) -> int:
    value = parse_bytes(text)
    if value is None:
        raise ValueError(f"{key}: not a size: {text!r} (e.g. 500K, 2M, 1G)")
    return int(value)


def available_captions(info: dict[str, Any]) -> dict[str, list[str]]:
    """Every caption language the platform lists, by kind (manual, auto), not only downloaded ones."""
    found = {"manual": sorted(info.get("subtitles") or {}), "auto": sorted(info.get("automatic_captions") or {})}
    return {kind: langs for kind, langs in found.items() if langs}


def classify(exc: BaseException) -> FetchError:
    """Turn yt-dlp's message into a short reason a person can act on."""
    msg = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).replace("ERROR: ", "").strip()
    if m := re.search(r"HTTP Error (\d{3})", msg):
        return FetchError(f"http_{m.group(1)}", msg)
    lowered = msg.lower()
    for needle, reason in (("timed out", "timeout"), ("unavailable", "unavailable"), ("private video", "unavailable"),
                           ("removed", "unavailable"), ("sign in", "login_required"), ("unsupported url", "unsupported"),
                           ("larger than max-filesize", "too_big"), ("connection refused", "network"),
                           ("name or service not known", "network"), ("errno", "network")):
        if needle in lowered:
            return FetchError(reason, msg)
    return FetchError("download_error", msg)


def with_retries(what: str, cfg: DownloadSettings, call: Callable[[], T]) -> T:
    """Run ``call``; retry transient failures (5xx, 429, timeouts) with exponential backoff.

    The one budget for a video: ``download.retries`` attempts, at most ``download.max_stalls`` of
    them ending in a socket timeout (a stalled server rarely recovers within minutes), and never
    past ``download.deadline_seconds`` in all.
    """
    attempt = stalls = 0
    deadline = time.monotonic() + cfg.deadline_seconds
    while True:
        try:
            return call()
        except DownloadError as exc:
            err = classify(exc)
        stalls += err.reason == "timeout"
        delay = cfg.retry_backoff * 2 ** attempt
        if not err.transient or attempt >= cfg.retries or stalls >= cfg.max_stalls:
            raise err
        if time.monotonic() + delay > deadline:
            raise FetchError(err.reason, f"{err.detail} (gave up: download.deadline_seconds "
                                         f"{cfg.deadline_seconds:g} s spent)")
        log.info("%s: %s; retry %d/%d in %.1fs", what, err.reason, attempt + 1, cfg.retries, delay)
        time.sleep(delay)
        attempt += 1


def extract(url: str, opts: dict[str, Any], download: bool, cfg: DownloadSettings) -> dict[str, Any]:
    def call() -> dict[str, Any]:
        with yt_dlp.YoutubeDL(opts) as ydl:
            info = ydl.extract_info(url, download=download)
            return ydl.sanitize_info(info)

    info = with_retries(url, cfg, call)
    if not info:
        raise FetchError("unavailable", f"yt-dlp returned nothing for {url}")
    return info
