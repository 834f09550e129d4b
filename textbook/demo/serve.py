"""Publish a rendered demo course over HTTP the way a video site would, for yt-dlp to crawl.

Pages are shaped so that yt-dlp's generic extractor reports our video id, title, description and
caption tracks unchanged: a plain ``<video>`` tag would make it name the video ``<id>-1`` and
title it ``<title> (1)``, so the page declares its media the Video.js way (``player.src(...)``,
``player.addRemoteTextTrack(...)``), and a few lines of script build the ``<video>`` element for
a browser. ``/search.rss`` lists every page as an RSS 2.0 feed, which yt-dlp reads as a playlist.
"""

from __future__ import annotations

import html
import json
import re
import threading
import urllib.parse
import xml.etree.ElementTree as ET
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

from textbook.demo.render import load_manifest

_ITUNES = "http://www.itunes.com/dtds/podcast-1.0.dtd"
_CHUNK = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")

_PAGE = """<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<title>{title}</title>
<meta name="description" content="{description}">
<meta name="author" content="{channel}">
<meta property="og:title" content="{title}">
<meta property="og:description" content="{description}">
</head>
<body>
<h1>{title}</h1>
<p>{channel}</p>
<div id="player"></div>
<p>{description}</p>
<script>
function videojs(id) {{
  const media = document.createElement("video");
  media.controls = true;
  media.width = 960;
  document.getElementById(id).appendChild(media);
  return {{
    src(list) {{ for (const s of list) {{ const e = document.createElement("source"); e.src = s.src; e.type = s.type; media.appendChild(e); }} }},
    addRemoteTextTrack(track, manualCleanup) {{ const e = document.createElement("track"); Object.assign(e, track); media.appendChild(e); }},
  }};
}}
var player = videojs("player");
player.src([{{src: {media}, type: "video/mp4"}}]);
{tracks}</script>
</body>
</html>
"""


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """Inclusive byte range asked for by a single-range header; None when it cannot be satisfied.

    Headers this server does not understand (several ranges, reversed bounds) raise ValueError,
    and the whole file is sent, as RFC 9110 allows.
    """
    match = _RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        raise ValueError(header)
    first, last = match.groups()
    if first == "":
        suffix = int(last)
        return (max(size - suffix, 0), size - 1) if suffix > 0 and size > 0 else None
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        raise ValueError(header)
    return (start, end) if start < size else None


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests and ``make demo`` do not want a line per request on stderr."""

    def _respond(self, send_body: bool) -> None:
        demo = self.server.demo
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        if demo._take_failure(path):
            self._send_bytes(500, "text/plain; charset=utf-8", b"injected failure\n", send_body)
            return
        if path == "/search.rss":
            self._send_bytes(200, "application/rss+xml; charset=utf-8", demo.rss(), send_body)
        elif path in demo._pages:
            self._send_bytes(200, "text/html; charset=utf-8", demo.page(demo._pages[path]), send_body)
        elif path in demo._files:
            self._send_file(*demo._files[path], send_body)
        else:
            self._send_bytes(404, "text/plain; charset=utf-8", b"not found\n", send_body)

    def _send_bytes(self, status: int, content_type: str, body: bytes, send_body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _send_file(self, path: Path, content_type: str, send_body: bool) -> None:
        size = path.stat().st_size
        start, end, status = 0, size - 1, 200
        if "Range" in self.headers:
            try:
                wanted = _parse_range(self.headers["Range"], size)
            except ValueError:
                wanted = (0, size - 1)
            else:
                status = 206
            if wanted is None:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start, end = wanted
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not send_body:
            return
        with path.open("rb") as src:
            src.seek(start)
            left = end - start + 1
            try:
                while left > 0:
                    chunk = src.read(min(_CHUNK, left))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading (yt-dlp probing, a cancelled download)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    demo: DemoServer


class DemoServer:
    """Serve a rendered course from course_dir: pages, mp4 files, WebVTT captions and an RSS feed.

    Use as a context manager; the server runs in a daemon thread until the block ends.
    """

    def __init__(self, course_dir: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.course_dir = Path(course_dir).resolve()
        self.manifest = load_manifest(self.course_dir)
        self._host, self._port = host, port
        self._videos: dict[str, dict[str, Any]] = {v["id"]: v for v in self.manifest["videos"]}
        self._pages = {f"/lectures/{vid}.html": vid for vid in self._videos}
        self._files: dict[str, tuple[Path, str]] = {}
        for video in self._videos.values():
            self._files[f"/media/{video['media']}"] = (self._existing(video["media"]), "video/mp4")
            for name in video["captions"].values():
                self._files[f"/captions/{name}"] = (self._existing(name), "text/vtt; charset=utf-8")
        self._failures: dict[str, int] = {}
        self._hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def _existing(self, name: str) -> Path:
        path = self.course_dir / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: listed in {self.course_dir / 'manifest.json'} but missing")
        return path

    def __enter__(self) -> Self:
        self._httpd = _Server((self._host, self._port), _Handler)
        self._httpd.demo = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="demo-server", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self._httpd = self._thread = None

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("DemoServer is not running: use it as a context manager")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def rss_url(self) -> str:
        return f"{self.base_url}/search.rss"

    def page_url(self, video_id: str) -> str:
        if video_id not in self._videos:
            raise KeyError(f"no lecture {video_id!r} in {self.course_dir}")
        return f"{self.base_url}/lectures/{video_id}.html"

    def media_url(self, video_id: str) -> str:
        return f"{self.base_url}/media/{self._videos[video_id]['media']}"

    def urls(self) -> list[str]:
        """Page URLs in course order: the content of a ``urls.txt`` for a list-of-URLs source."""
        return [self.page_url(vid) for vid in self._videos]

    def fail(self, path: str, times: int = 1) -> None:
        """Answer the next ``times`` requests for path (or a full URL) with HTTP 500."""
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        with self._lock:
            self._failures[self._path(path)] = times

    def hits(self, path: str) -> int:
        """How many requests path (or a full URL) has received, failed ones included."""
        with self._lock:
            return self._hits[self._path(path)]

    @staticmethod
    def _path(path_or_url: str) -> str:
        return urllib.parse.unquote(urllib.parse.urlsplit(path_or_url).path)

    def _take_failure(self, path: str) -> bool:
        with self._lock:
            self._hits[path] += 1
            left = self._failures.get(path, 0)
            if left:
                self._failures[path] = left - 1
            return bool(left)

    def page(self, video_id: str) -> bytes:
        video = self._videos[video_id]
        tracks = "".join(
            f"player.addRemoteTextTrack({{kind: \"captions\", srclang: {json.dumps(lang)}, "
            f"label: {json.dumps(lang)}, src: {json.dumps('/captions/' + name)}}}, false);\n"
            for lang, name in video["captions"].items())
        return _PAGE.format(lang=html.escape(video["language"]), title=html.escape(video["title"]),
                            description=html.escape(video["description"]),
                            channel=html.escape(video["channel"]),
                            media=json.dumps(f"/media/{video['media']}"), tracks=tracks).encode("utf-8")

    def rss(self) -> bytes:
        ET.register_namespace("itunes", _ITUNES)
        rss = ET.Element("rss", {"version": "2.0"})
        channel = ET.SubElement(rss, "channel")
        ET.SubElement(channel, "title").text = self.manifest["channel"]
        ET.SubElement(channel, "link").text = f"{self.base_url}/"
        ET.SubElement(channel, "description").text = f"Every lecture of the {self.manifest['channel']}"
        for vid, video in self._videos.items():
            item = ET.SubElement(channel, "item")
            ET.SubElement(item, "title").text = video["title"]
            ET.SubElement(item, "link").text = self.page_url(vid)
            ET.SubElement(item, "description").text = video["description"]
            ET.SubElement(item, f"{{{_ITUNES}}}duration").text = str(round(video["duration"]))
        return ET.tostring(rss, encoding="utf-8", xml_declaration=True)
