"""Workers killed mid-stage with real signals: the next run takes the work up at once and the
dataset comes out as a clean run's."""

from __future__ import annotations

import re
import signal
import time

import pytest
from fault_harness import STAGES, local_place, read_db, run, start, verdict

pytestmark = pytest.mark.slow

NO_WAIT = 60.0  # seconds from a restart to the killed stage running again (STALE_AFTER was 6 h)


def test_kill_9_in_every_stage_then_rerun(tmp_path, world, reference_sqlite, matrix):
    """kill -9 during stage k, restart, kill -9 during stage k+1, ... then one run to the end."""
    place = local_place(tmp_path, world)
    killed = None
    for before, stage in zip((None, *STAGES), STAGES):
        worker = start(place, pause_at=stage)
        paused = worker.wait_paused()
        waited = time.monotonic() - worker.started
        assert paused["stage"] == stage
        if killed is not None:  # the video killed last time is taken up again, without waiting
            assert paused["video"] == killed, f"restarted after the kill in {before}, the worker ran " \
                f"{stage} on {paused['video']} first, not on {killed}:\n{worker.output[-2000:]}"
            assert waited < NO_WAIT, f"the restarted worker took {waited:.0f} s to reach {stage}"
        killed = paused["video"]
        assert read_db(place.db_url).runs[(killed, stage)].status == "running"
        worker.kill()
    run(place)
    # the killed video ran every stage twice (killed, then done); the others once
    v = verdict("kill -9 in each stage, rerun", place, reference_sqlite.files, reference_sqlite.exported,
                {(killed, s): 2 for s in STAGES})
    matrix(v)
    v.check(place.data)
    assert all(row.status == "done" for row in v.db.runs.values())


def test_sigterm_during_keyframes_records_the_signal(tmp_path, world, reference_sqlite, matrix):
    place = local_place(tmp_path, world)
    worker = start(place, pause_at="keyframes")
    video = worker.wait_paused()["video"]
    worker.signal(signal.SIGTERM)
    rc = worker.wait(60)
    row = read_db(place.db_url).runs[(video, "keyframes")]
    assert rc != 0, f"a worker stopped by SIGTERM exited 0:\n{worker.output[-2000:]}"
    assert row.status == "failed", f"keyframes of {video} left {row.status!r} after SIGTERM"
    assert re.search(r"SIGTERM|signal 15", row.error), f"the reason does not name the signal: {row.error!r}"
    run(place)
    v = verdict("SIGTERM in keyframes, rerun", place, reference_sqlite.files, reference_sqlite.exported,
                {(video, "keyframes"): 2})
    matrix(v)
    v.check(place.data)
