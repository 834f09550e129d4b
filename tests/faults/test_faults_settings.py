"""A finished corpus under a night where the source is gone, and under setting changes: nothing
exported is lost, operational knobs re-run nothing, output knobs re-run only what they change."""

from __future__ import annotations

import re
import shutil

import pytest
from fault_harness import STAGES, Place, base_settings, dataset_files, exported_videos, read_db, run, start, verdict

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


def test_a_night_with_the_site_gone_fails_and_keeps_the_dataset(tmp_path, urls_corpus, matrix):
    """The urls file names tonight's lectures on a site that refuses connections: every one of them
    fails, the run exits non-zero after a summary of reasons, and the dataset stays byte for byte."""
    place = urls_corpus.copy_to(tmp_path)
    before = dataset_files(place.dataset)
    dead = urls_corpus.cwd.joinpath("urls.txt").read_text().split("/lectures/")[0]  # the stopped site
    tonight = [f"{dead}/lectures/tonight-{n}.html" for n in range(3)]
    (tmp_path / "tonight.txt").write_text("\n".join(tonight) + "\n")
    night = run(place.write(search={"urls_file": str(tmp_path / "tonight.txt")}), expect=None)
    v = verdict("all-fail night", place, before, set(exported_videos(before)))
    matrix(v)
    assert night.proc.returncode != 0, f"a night where every video failed exited 0:\n{night.output[-2000:]}"
    new = {vid: reason for vid, (status, reason) in v.db.videos.items() if vid.startswith("tonight")}
    assert len(new) == 3 and all(v.db.videos[vid][0] == "failed" for vid in new), v.db.videos
    for vid in new:
        assert vid in night.output, f"the output does not name {vid}:\n{night.output[-2000:]}"
    assert re.search(r"^.*\b3\b.*network", night.output, flags=re.M), \
        f"no summary line counts the 3 network failures under one reason:\n{night.output[-3000:]}"
    v.check(place.data)


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
    downstream = STAGES[STAGES.index("keyframes"):]
    expected = {(vid, s): n + (1 if s in downstream else 0) + ((vid, s) == (killed, "ocr"))
                for (vid, s), n in attempts.items()}
    v = verdict("output knob changed, re-run killed, rerun", place, None, reference_sqlite.exported, expected)
    matrix(v)
    v.check(place.data)
    assert v.db.attempts() == expected, "not exactly keyframes and the stages after it ran again"
