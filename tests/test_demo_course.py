"""The demo course: rendered media match the manifest, and yt-dlp can crawl the demo server."""

from __future__ import annotations

import itertools
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yt_dlp
from PIL import Image
from skimage import data as skimage_data
from skimage import feature

from textbook.demo import DemoServer, render_course
from textbook.demo.render import LECTURES, MARGIN as MARGIN_PX, TITLE_BOX, render_lecture
from textbook.media import probe, run_ffmpeg
from textbook.records import check_video_id

_CUE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d\d\d) --> (\d\d):(\d\d):(\d\d)\.(\d\d\d)$")


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo-course")
    return out, render_course(out)


@pytest.fixture
def server(course):
    with DemoServer(course[0]) as running:
        yield running


def _video(manifest: dict[str, Any], video_id: str) -> dict[str, Any]:
    return next(v for v in manifest["videos"] if v["id"] == video_id)


def _read_vtt(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "WEBVTT"
    cues = []
    for i, line in enumerate(lines):
        match = _CUE.match(line)
        if match:
            h1, m1, s1, ms1, h2, m2, s2, ms2 = map(int, match.groups())
            cues.append({"start": (h1 * 3_600_000 + m1 * 60_000 + s1 * 1000 + ms1) / 1000,
                         "end": (h2 * 3_600_000 + m2 * 60_000 + s2 * 1000 + ms2) / 1000, "text": lines[i + 1]})
    return cues


def _frame(media: Path, at: float, dst: Path) -> np.ndarray:
    run_ffmpeg(["-ss", f"{at:.3f}", "-i", str(media.resolve()), "-frames:v", "1", str(dst.resolve())],
               "grab a frame")
    return np.asarray(Image.open(dst).convert("RGB"))


def _middle_of(video: dict[str, Any], kind: str) -> float:
    state = next(s for s in video["states"] if s["kind"] == kind)
    return (state["start"] + state["end"]) / 2


def test_english_lectures_last_one_to_three_minutes(course):
    course_dir, manifest = course
    lectures = [v for v in manifest["videos"] if v["expected_filter"] is None]
    assert len(lectures) >= 4
    for video in lectures:
        assert video["language"] == "en"
        assert 60.0 <= video["duration"] <= 180.0, video["id"]
        info = probe(course_dir / video["media"])
        assert info.has_audio and (info.width, info.height) == (1280, 720)
        assert abs(info.duration - video["duration"]) < 0.1, video["id"]


def test_every_video_id_is_safe_and_one_starts_with_a_dash(course):
    ids = [v["id"] for v in course[1]["videos"]]
    assert all(check_video_id(vid) == vid for vid in ids)
    assert any(vid.startswith("-") for vid in ids)


def test_states_tile_each_video_and_cues_spell_the_narration(course):
    kinds = set()
    for video in course[1]["videos"]:
        states = video["states"]
        assert states[0]["start"] == 0.0 and states[-1]["end"] == video["duration"]
        assert all(a["end"] == b["start"] for a, b in itertools.pairwise(states))
        for state in states:
            kinds.add(state["kind"])
            inside = [c["text"] for c in video["cues"] if state["start"] <= c["start"] < c["end"] <= state["end"]]
            assert " ".join(inside) == state["narration"]
    assert kinds == {"slide", "formula", "plot", "speaker"}


def test_bullets_are_revealed_one_state_at_a_time(course):
    video = _video(course[1], "calc-deriv01")
    screens = [s["text_on_screen"].splitlines() for s in video["states"]
               if s["kind"] == "slide" and s["title"] == "What Is a Derivative?"]
    assert [len(lines) for lines in screens] == [2, 3, 4]
    assert all(later[: len(earlier)] == earlier for earlier, later in itertools.pairwise(screens))


def test_captions_exist_where_planned_and_repeat_the_narration_cues(course):
    course_dir, manifest = course
    for video in manifest["videos"]:
        published = sorted(p.name for p in course_dir.glob(f"{video['id']}.*.vtt"))
        assert published == sorted(video["captions"].values())
        assert bool(published) == video["has_captions"]
        for name in published:
            assert _read_vtt(course_dir / name) == video["cues"]
    assert any(v["expected_filter"] is None and not v["has_captions"] for v in manifest["videos"])


def test_filtered_videos_are_a_french_lecture_and_a_short_trailer(course):
    course_dir, manifest = course
    french = [v for v in manifest["videos"] if v["expected_filter"] == "not_english"]
    assert [v["language"] for v in french] == ["fr"]
    assert list(french[0]["captions"]) == ["fr"] and french[0]["duration"] >= 10.0
    words = " ".join(c["text"] for c in _read_vtt(course_dir / french[0]["captions"]["fr"])).lower().split()
    assert sum(w in {"la", "le", "est", "de", "une", "dérivée"} for w in words) > 5
    assert not {"the", "is", "of", "and"} & set(words)
    short = [v for v in manifest["videos"] if v["expected_filter"] == "too_short"]
    assert len(short) == 1 and probe(course_dir / short[0]["media"]).duration < 10.0


def test_speaker_shot_shows_a_face_and_slides_do_not(course, tmp_path):
    course_dir, manifest = course
    video = _video(manifest, "energy_cons3")
    detector = feature.Cascade(skimage_data.lbp_frontal_face_cascade_filename())

    def faces(kind: str) -> list:
        frame = _frame(course_dir / video["media"], _middle_of(video, kind), tmp_path / f"{kind}.png")
        small = np.asarray(Image.fromarray(frame).resize((320, 180))).mean(axis=2) / 255.0
        return detector.detect_multi_scale(img=small, scale_factor=1.2, step_ratio=1, min_size=(40, 40),
                                           max_size=(180, 180))

    assert len(faces("speaker")) == 1
    assert faces("slide") == []


def test_tesseract_reads_slide_titles(course, tmp_path):
    course_dir, manifest = course
    video = _video(manifest, "prob_dice04")
    state = next(s for s in video["states"] if s["kind"] == "slide" and s["title"] == "Basic Ideas")
    _frame(course_dir / video["media"], (state["start"] + state["end"]) / 2, tmp_path / "slide.png")
    text = subprocess.run(["tesseract", str(tmp_path / "slide.png"), "stdout"], capture_output=True,
                          text=True, check=True).stdout
    assert "Basic Ideas" in text
    assert "An experiment has possible outcomes" in text


def test_a_lecture_cross_fades_into_boxed_titles_and_one_carries_a_footer(course, tmp_path):
    course_dir, manifest = course
    video = _video(manifest, "prob_dice04")
    assert video["cross_fade"] and video["title_box"]
    first, second = video["states"][:2]
    assert second["settled"] == pytest.approx(second["start"] + 2.0)
    mid_fade = _frame(course_dir / video["media"], second["start"] + 1.0, tmp_path / "fade.png").astype(float)
    before = _frame(course_dir / video["media"], first["end"] - 0.5, tmp_path / "before.png").astype(float)
    after = _frame(course_dir / video["media"], second["settled"] + 0.5, tmp_path / "after.png").astype(float)
    # half-way through the fade the picture is about half of each slide
    assert 0.3 < np.abs(mid_fade - before).mean() / np.abs(after - before).mean() < 0.7
    band = after[50:140, 20:MARGIN_PX]  # left of the title text: the band's colour
    assert band.mean(axis=(0, 1)) == pytest.approx(TITLE_BOX, abs=12)
    footer = _video(manifest, "-newton_laws")["footer"]
    assert footer and footer not in " ".join(s["text_on_screen"] for s in video["states"])


def test_second_render_is_skipped(course):
    course_dir, manifest = course
    media = course_dir / manifest["videos"][0]["media"]
    before = media.stat().st_mtime_ns
    assert render_course(course_dir) == manifest
    assert media.stat().st_mtime_ns == before


def test_rendering_is_byte_for_byte_reproducible(course, tmp_path):
    course_dir, manifest = course
    trailer = next(lecture for lecture in LECTURES if lecture.expected_filter == "too_short")
    entry = render_lecture(trailer, tmp_path, tmp_path / "work")
    assert entry == _video(manifest, trailer.video_id)
    for name in [entry["media"], *entry["captions"].values()]:
        assert (tmp_path / name).read_bytes() == (course_dir / name).read_bytes(), name


def _ydl(tmp_path: Path, **options: Any) -> yt_dlp.YoutubeDL:
    return yt_dlp.YoutubeDL({"quiet": True, "no_warnings": True, "noprogress": True,
                             "outtmpl": str(tmp_path / "%(id)s.%(ext)s"), **options})


def test_yt_dlp_downloads_a_lecture_page_with_its_captions(course, server, tmp_path):
    course_dir, manifest = course
    video = _video(manifest, "-newton_laws")
    with _ydl(tmp_path, writesubtitles=True, subtitleslangs=["en"]) as ydl:
        info = ydl.extract_info(server.page_url(video["id"]), download=True)
    assert (info["id"], info["title"], info["description"]) == (video["id"], video["title"], video["description"])
    assert set(info["subtitles"]) == {"en"}
    assert (tmp_path / "-newton_laws.mp4").read_bytes() == (course_dir / video["media"]).read_bytes()
    assert (tmp_path / "-newton_laws.en.vtt").read_bytes() == (course_dir / video["captions"]["en"]).read_bytes()


def test_yt_dlp_sees_no_captions_on_an_uncaptioned_page(course, server, tmp_path):
    with _ydl(tmp_path) as ydl:
        info = ydl.extract_info(server.page_url("energy_cons3"), download=False)
    assert info["id"] == "energy_cons3" and not info.get("subtitles")


def test_yt_dlp_reads_the_rss_feed_as_a_playlist_of_every_page(course, server, tmp_path):
    with _ydl(tmp_path, extract_flat="in_playlist") as ydl:
        playlist = ydl.extract_info(server.rss_url, download=False)
    entries = list(playlist["entries"])
    assert [e["url"] for e in entries] == server.urls()
    assert len(entries) == len(course[1]["videos"])
    assert [e["title"] for e in entries] == [v["title"] for v in course[1]["videos"]]
    assert [e["duration"] for e in entries] == [round(v["duration"]) for v in course[1]["videos"]]


def test_a_failing_path_returns_500_the_number_of_times_asked(server):
    url = server.media_url("prob_dice04")
    server.fail(url, times=2)
    for _ in range(2):
        with pytest.raises(urllib.error.HTTPError) as failure:
            urllib.request.urlopen(url)
        assert failure.value.code == 500
    with urllib.request.urlopen(url) as response:
        assert response.status == 200
    assert server.hits(url) == 3


def test_yt_dlp_retries_a_failed_media_download(course, server, tmp_path):
    video = _video(course[1], "prob_dice04")
    server.fail(server.media_url(video["id"]), times=1)
    with _ydl(tmp_path, retries=3, retry_sleep_functions={"http": lambda n: 0}) as ydl:
        ydl.extract_info(server.page_url(video["id"]), download=True)
    assert server.hits(server.media_url(video["id"])) == 2  # one failure, one retry
    assert (tmp_path / video["media"]).read_bytes() == (course[0] / video["media"]).read_bytes()


def test_media_supports_range_requests(course, server):
    url = server.media_url("short_intro")
    whole = (course[0] / "short_intro.mp4").read_bytes()

    def get(byte_range: str) -> tuple[int, bytes, str]:
        request = urllib.request.Request(url, headers={"Range": byte_range})
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, response.read(), response.headers.get("Content-Range", "")
        except urllib.error.HTTPError as error:
            return error.code, b"", error.headers.get("Content-Range", "")

    assert get("bytes=10-19") == (206, whole[10:20], f"bytes 10-19/{len(whole)}")
    assert get("bytes=-7") == (206, whole[-7:], f"bytes {len(whole) - 7}-{len(whole) - 1}/{len(whole)}")
    assert get(f"bytes={len(whole) - 3}-") == (206, whole[-3:], f"bytes {len(whole) - 3}-{len(whole) - 1}/{len(whole)}")
    assert get(f"bytes={len(whole)}-")[0::2] == (416, f"bytes */{len(whole)}")


def test_pages_name_their_channel_and_caption_tracks(server):
    def page(video_id: str) -> str:
        with urllib.request.urlopen(server.page_url(video_id)) as response:
            return response.read().decode("utf-8")

    french = page("fr_derivees")
    assert '<meta name="author" content="Demo Open Course">' in french
    assert 'srclang: "fr"' in french and 'srclang: "en"' not in french
    assert "player.addRemoteTextTrack" not in page("energy_cons3")
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{server.base_url}/lectures/nope.html")
    assert missing.value.code == 404
