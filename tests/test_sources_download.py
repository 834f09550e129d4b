"""Sources and the download stage against a real HTTP server on loopback, through real yt-dlp."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from media_helpers import speech_wav, video_with_audio, video_without_audio

from textbook.artifacts import output_key, read_input
from textbook.collect import discover
from textbook.context import Context
from textbook.runner import StageFailed, run_stage
from textbook.sources import SourceError, get_source
from textbook.stages import download

RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>search</title>
<item><title>Lecture one</title><link>{base}/lecture.mp4</link><description>first</description></item>
<item><title>Lecture one again</title><link>{base}/lecture.mp4</link></item>
<item><title>Silent film</title><link>{base}/mute.mp4</link></item>
</channel></rss>"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    wav = speech_wav(root / "talk.wav", "a derivative measures the rate of change of a function")
    video_with_audio(root / "lecture.mp4", wav)
    video_without_audio(root / "mute.mp4", 3)
    (root / "lecture.en.vtt").write_text("WEBVTT\n\n00:00.000 --> 00:02.000\nhello\n")
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    (root / "notes.txt").write_text("not a video")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    (root / "feed.rss").write_text(RSS.format(base=base))
    yield root, base
    server.shutdown()


def _with(ctx: Context, **sections) -> Context:
    return Context(ctx.settings.replace(**sections), ctx.store, ctx.db)


def test_youtube_source_searches_through_yt_dlp_flat_and_dedups(ctx, site):
    _, base = site
    c = _with(ctx, search={"source": "youtube", "url_template": base + "/feed.rss?n={n}&q={query}"})
    videos = get_source(c.settings).search("derivatives", 50)
    assert [v.video_id for v in videos] == ["lecture", "mute"]  # the repeated result is one video
    assert videos[0].title == "Lecture one" and videos[0].search_keyword == "derivatives" and videos[0].rank == 1


def test_search_failure_names_the_query(ctx):
    c = _with(ctx, search={"url_template": "http://127.0.0.1:9/feed.rss?q={query}"},
              download={"retries": 0})
    with pytest.raises(SourceError, match="search 'q' failed"):
        get_source(c.settings).search("q", 5)


def _fetch(ctx: Context, site, name: str, **download_cfg) -> StageFailed | None:
    _, base = site
    c = _with(ctx, search={"source": "urls", "urls_file": str(_urls(ctx, f"{base}/{name}"))},
              download={"retries": 0, **download_cfg})
    [vid] = discover(c.taxonomy.knowledge_points[0], c)
    try:
        run_stage(download.STAGE, vid, c)
    except StageFailed as exc:
        return exc
    return None


def _urls(ctx: Context, url: str) -> Path:
    path = ctx.settings.data_path / "urls.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(url + "\n")
    return path


def test_download_stores_media_info_and_metadata(ctx, site):
    assert _fetch(ctx, site, "lecture.mp4") is None
    info = read_input(ctx, "lecture", "download", "info.json")
    assert info["media_key"] == output_key(ctx, "lecture", "download", "media.mp4") and info["has_audio"] and 2 < info["duration"] < 10
    assert ctx.db.video("lecture").meta["duration"] == info["duration"]
    assert _fetch(ctx, site, "lecture.mp4") is None  # finished: nothing fetched again
    assert ctx.db.run("lecture", "download").attempts == 1


@pytest.mark.parametrize("name, reason, permanent", [
    ("missing.mp4", "http_404", False),
    ("corrupt.mp4", "not a readable media file", True),
    ("notes.txt", "", None),
])
def test_bad_downloads_fail_with_a_reason(ctx, site, name, reason, permanent):
    err = _fetch(ctx, site, name)
    assert err is not None and err.stage == "download"
    assert reason in err.reason
    if permanent is not None:
        assert err.permanent is permanent
    assert ctx.db.video(err.video_id).status == "failed"


def test_a_file_over_max_filesize_is_refused_as_too_big(ctx, site):
    err = _fetch(ctx, site, "lecture.mp4", max_filesize="1K")
    assert err is not None and "too_big" in err.reason and err.permanent


def test_urls_file_errors_name_the_file_and_line(ctx, tmp_path):
    bad = tmp_path / "urls.txt"
    bad.write_text("# comment\nhttp://ok/a.mp4\nnot a url\n")
    with pytest.raises(SourceError, match=r"urls.txt, line 3: not a URL"):
        get_source(_with(ctx, search={"source": "urls", "urls_file": str(bad)}).settings).search("q", 5)
    with pytest.raises(SourceError, match="no such file|No such file"):
        get_source(_with(ctx, search={"source": "urls", "urls_file": str(tmp_path / "nope")}).settings).search("q", 5)


def test_local_source_copies_media_and_sidecar_captions(ctx, site):
    root, _ = site
    c = _with(ctx, search={"source": "local", "local_dir": str(root)})
    ids = discover(c.taxonomy.knowledge_points[0], c)
    assert ids == ["corrupt", "lecture", "mute"]
    run_stage(download.STAGE, "lecture", c)
    info = read_input(c, "lecture", "download", "info.json")
    assert [(t["lang"], t["kind"]) for t in info["captions"]] == [("en", "manual")]
