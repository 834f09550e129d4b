"""A finished corpus under a night where the source is gone, and under setting changes: nothing
exported is lost, operational knobs re-run nothing, output knobs re-run only what they change."""

from __future__ import annotations

import re
import shutil

import pytest
from fault_harness import Place, base_settings, downstream, dataset_files, exported_videos, read_db, run, start, verdict

from textbook.demo.serve import DemoServer
from textbook.export import validate_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def urls_corpus(tmp_path_factory, world) -> Place:
    """A corpus collected from a file of URLs on a loopback video site (the library's DemoServer,
    pages with caption tracks, fetched by yt-dlp). The site is gone once the corpus is done."""
    cwd = tmp_path_factory.mktemp("urls-corpus")
    with DemoServer(world) as site:
        (cwd / "urls.txt").write_text("\n".join(site.urls()) + "\n")
        place = Place(cwd, base_settings(), []).write(search={"source": "urls", "urls_file": str(cwd / "urls.txt")})
        run(place)
    assert {s for s, _ in read_db(place.db_url).videos.values()} == {"done"}
    return place


def _night(place: Place, scenario: str, matrix, tried: set[str], attempts: dict | None = None,  # noqa: ANN001
           **changes) -> None:
    """Run with ``changes`` while the site is gone: every video the run tries fails, the run exits
    non-zero after counting the failures by reason, and the dataset stays byte for byte."""
    before = dataset_files(place.dataset)
    night = run(place.write(**changes), expect=None)
    v = verdict(scenario, place, before, set(exported_videos(before)), attempts)
    matrix(v)
    assert night.proc.returncode != 0, f"a night where every video failed exited 0:\n{night.output[-2000:]}"
    assert {vid: v.db.videos[vid][0] for vid in tried} == dict.fromkeys(tried, "failed"), v.db.videos
    assert re.search(r"^.*\b3\b.*network", night.output, flags=re.M), \
        f"no summary line counts the 3 network failures under one reason:\n{night.output[-3000:]}"
    v.check(place.data)


def test_a_night_with_the_site_gone_and_work_to_do(tmp_path, urls_corpus, matrix):
    """A new download.max_height (an output knob) means every video must be downloaded again,
    from a site that refuses connections."""
    place = urls_corpus.copy_to(tmp_path)
    videos = set(read_db(place.db_url).videos)
    _night(place, "all-fail night (every video again)", matrix, videos, {(vid, "download"): 2 for vid in videos},
           download={"max_height": 480})


def test_a_night_with_the_site_gone_and_new_videos(tmp_path, urls_corpus, matrix):
    """The urls file names tonight's new lectures, on the site that is gone."""
    place = urls_corpus.copy_to(tmp_path)
    dead = urls_corpus.cwd.joinpath("urls.txt").read_text().split("/lectures/")[0]
    (tmp_path / "tonight.txt").write_text("".join(f"{dead}/lectures/tonight-{n}.html\n" for n in range(3)))
    _night(place, "all-fail night (new videos)", matrix, {f"tonight-{n}" for n in range(3)},
           search={"urls_file": str(tmp_path / "tonight.txt")})


@pytest.mark.parametrize("knob", ["download.retries", "download.socket_timeout", "download.sleep_interval",
                                  "search.urls_file"])
def test_an_operational_setting_re_runs_nothing(tmp_path, urls_corpus, knob, matrix):
    """The site is gone: a stage that ran again would fail, and its video leave the dataset."""
    place = urls_corpus.copy_to(tmp_path)
    before, attempts = dataset_files(place.dataset), read_db(place.db_url).attempts()
    moved = tmp_path / "elsewhere" / "urls.txt"  # the same list of URLs, in another file
    moved.parent.mkdir()
    shutil.copy(urls_corpus.cwd / "urls.txt", moved)
    section, key = knob.split(".")
    value = {"retries": 3, "socket_timeout": 11, "sleep_interval": 0.5, "urls_file": str(moved)}[key]
    run(place.write(**{section: {key: value}}))
    v = verdict(f"{knob} changed", place, before, set(exported_videos(before)), attempts)
    matrix(v)
    v.check(place.data)
    assert v.db.attempts() == attempts, "a stage ran again"


def test_an_output_knob_re_runs_keyframes_on_and_keeps_the_export_meanwhile(tmp_path, sqlite_finished,
                                                                           reference_sqlite, matrix):
    """A new SSIM threshold re-runs keyframes and what follows, nothing before. While that re-run
    is broken off (kill -9 in ocr) the dataset, even exported again, keeps every video, and
    `status` calls the dead worker's claim stale."""
    place = sqlite_finished.copy_to(tmp_path).write(keyframes={"ssim_threshold": 0.9})
    attempts = read_db(place.db_url).attempts()
    worker = start(place, pause_at="ocr")
    killed = worker.wait_paused()["video"]
    worker.kill()
    status = run(place, "status", "--video", killed).output
    assert re.search(r"^\s*ocr\s+stale", status, flags=re.M), f"status does not call the claim stale:\n{status}"
    run(place, "export")
    meanwhile = dataset_files(place.dataset)
    assert set(exported_videos(meanwhile)) == reference_sqlite.exported, "the export lost videos meanwhile"
    assert not validate_dataset(place.dataset)
    run(place)
    again = downstream("keyframes")
    expected = {(vid, s): n + (1 if s in again else 0) + ((vid, s) == (killed, "ocr"))
                for (vid, s), n in attempts.items()}
    v = verdict("output knob changed, re-run killed, rerun", place, None, reference_sqlite.exported, expected)
    matrix(v)
    v.check(place.data)
    assert v.db.attempts() == expected, "not exactly keyframes and the stages after it ran again"
