"""Services going away under a running worker: Postgres restarted, the S3 server stopped and
started again, the data disk full."""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest
from fault_harness import aws_env, pg_place, read_db, run, s3_place, start, verdict

pytestmark = pytest.mark.slow

OUTAGE = 3.0  # seconds a service stays down


def test_postgres_restarted_mid_run(tmp_path, world, postgres, reference_postgres, matrix):
    """The worker is in keyframes when Postgres goes down for a few seconds: it waits and goes on."""
    place = pg_place(tmp_path, world, postgres)
    worker = start(place, pause_at="keyframes", pause_seconds=1)  # finishes the stage while the server is down
    worker.wait_paused()
    postgres.stop()
    try:
        time.sleep(OUTAGE)
    finally:
        postgres.start()
    rc = worker.wait()
    v = verdict("Postgres restarted mid-run", place, reference_postgres.files, reference_postgres.exported)
    matrix(v)
    assert rc == 0, f"the run did not ride out a {OUTAGE:.0f} s Postgres restart:\n{worker.output[-3000:]}"
    v.check(place.data)


def test_s3_server_stopped_and_restarted_mid_run(tmp_path, world, s3, reference_s3, matrix):
    """The S3 server goes away during keyframes: the run rides it out or fails the video with a
    reason; the next run completes."""
    place = s3_place(tmp_path, world, s3)
    env = aws_env(s3)
    worker = start(place, pause_at="keyframes", pause_seconds=1, env=env)
    worker.wait_paused()
    s3.stop()
    try:
        time.sleep(OUTAGE)
    finally:
        s3.start()
    worker.wait()
    during = read_db(place.db_url)
    assert not during.stuck, f"stage runs left running after the S3 outage: {during.stuck}"
    failed = {key for key, row in during.runs.items() if row.status == "failed"}
    assert all(during.runs[key].error for key in failed), f"failed without a reason: {during.runs}"
    run(place, env=env)
    v = verdict("S3 server stopped and restarted", place, reference_s3.files, reference_s3.exported,
                {key: 2 for key in failed})
    matrix(v)
    v.check(place.data)


@pytest.fixture
def small_disk(tmp_path):
    """A 32 MiB tmpfs (or, failing that, a loop-mounted ext4 image) mounted for this test."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    tried = []
    for cmd in (["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mnt)], None):
        if cmd is None:  # tmpfs refused: a small ext4 image through a loop device
            image = tmp_path / "small.img"
            subprocess.run(["truncate", "-s", "32M", str(image)], check=True)
            subprocess.run(["mkfs.ext4", "-q", str(image)], capture_output=True)
            cmd = ["mount", "-o", "loop", str(image), str(mnt)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode == 0:
            break
        tried.append(f"{' '.join(cmd)}: {done.stderr.strip() or done.returncode}")
    else:
        pytest.skip("cannot mount a small filesystem here (needs root): " + "; ".join(tried))
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(folder, leave: int) -> None:
    """Write one ballast file so that only ``leave`` bytes stay free on ``folder``'s filesystem."""
    st = os.statvfs(folder)
    with open(folder / "ballast", "wb") as out:
        out.truncate(0)
        free = st.f_bavail * st.f_frsize - leave
        chunk = b"\0" * (1 << 20)
        while free > 0:
            free -= out.write(chunk[:min(len(chunk), free)])


def test_full_disk_fails_the_video_and_keeps_the_export(small_disk, sqlite_finished, reference_sqlite, matrix):
    """A finished corpus on a small disk; a new audio sample rate re-runs audio and everything after
    it, and the disk fills up. The video fails with a reason, the last export stays; once space is
    freed the next run finishes."""
    place = sqlite_finished.copy_to(small_disk).write(audio={"sample_rate": 22050})
    # nothing downloads again; audio and what follows it run at most once per run below
    bound = {(vid, stage): 1 if stage == "download" else 3 for vid, stage in read_db(place.db_url).runs}
    _fill(small_disk, leave=256 << 10)  # less than one re-extracted audio track
    run(place, expect=None)
    full = verdict("full disk", place, None, reference_sqlite.exported, bound)
    matrix(full)
    failed = {v: reason for v, (status, reason) in full.db.videos.items() if status == "failed"}
    assert failed, f"no video failed on the full disk: {full.db.videos}"
    assert all(re.search(r"No space left|ENOSPC|disk is full", r) for r in failed.values()), failed
    full.check(place.data)  # no stuck row; the dataset is whole and still has every video
    (small_disk / "ballast").unlink()
    run(place)
    v = verdict("full disk, space freed, rerun", place, None, reference_sqlite.exported, bound)
    matrix(v)
    v.check(place.data)
    assert {status for status, _ in v.db.videos.values()} == {"done"}
