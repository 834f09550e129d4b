"""Media that is not what it claims, among good lectures: each bad file fails for good, with a
reason, and is not tried again; the good ones come out as in a clean run."""

from __future__ import annotations

import random
import shutil

import pytest
from fault_harness import Place, base_settings, read_db, run, verdict
from fault_world import LECTURES, render_lecture

from textbook import media

pytestmark = pytest.mark.slow

SAMPLES = ("images/", "obelics/", "clips/")  # the files that hold the good videos' samples


def _bad_folder(world, folder):  # noqa: ANN001, ANN202
    """The world's lectures plus a truncated copy of one (its first 30 %, captions kept), an empty
    file and random bytes, all named .mp4."""
    folder.mkdir()
    for path in world.iterdir():
        shutil.copy(path, folder / path.name)
    good = (world / "newton.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(good[: len(good) * 3 // 10])
    shutil.copy(world / "newton.en.vtt", folder / "truncated.en.vtt")
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "corrupt.mp4").write_bytes(random.Random(7).randbytes(64 << 10))
    return folder


def test_truncated_empty_and_corrupt_files_fail_for_good(tmp_path, world, reference_sqlite, matrix):
    place = Place(tmp_path, base_settings(), ["--local-dir", str(_bad_folder(world, tmp_path / "lectures"))]).write()
    first = run(place, expect=None)
    after_first = read_db(place.db_url)
    second = run(place, expect=None)
    v = verdict("truncated, empty and corrupt files", place, None, reference_sqlite.exported,
                after_first.attempts())  # the second run tries nothing again
    matrix(v)
    v.check(place.data)
    bad = {"truncated", "empty", "corrupt"}
    assert {vid for vid, (status, _) in v.db.videos.items() if status == "failed"} == bad, v.db.videos
    assert {vid for vid, (status, _) in v.db.videos.items() if status == "done"} == reference_sqlite.exported
    assert "truncated:" in v.db.videos["truncated"][1], f"truncated.mp4: {v.db.videos['truncated']}"
    assert v.db.attempts() == after_first.attempts(), "the second run tried failed videos again"
    for worker in (first, second):
        assert worker.proc.returncode != 0, f"a run with failed videos exited 0:\n{worker.output[-2000:]}"
    same = {p: b for p, b in v.files.items() if p.startswith(SAMPLES)}
    want = {p: b for p, b in reference_sqlite.files.items() if p.startswith(SAMPLES)}
    assert same == want, "the good videos' samples differ from the clean run's"


def test_a_complete_video_with_long_keyframe_intervals_is_not_truncated(tmp_path):
    """x264's default keyint (250 frames) on a 5 fps, 15 s lecture: one keyframe, at 0 s."""
    path = tmp_path / "long-gop.mp4"
    render_lecture(LECTURES[0][1], path, gop=250)
    media.check_complete(path, media.probe(path))
