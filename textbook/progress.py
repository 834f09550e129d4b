"""Progress lines for long commands: which video and stage is running, how many are done, an ETA.

Plain lines on stderr (one per stage started, one per video finished), not a redrawn bar: they
read the same in a terminal, a log file and a CI job, and stdout keeps only the results.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from textbook.context import Context


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Counts videos done against a total; the ETA is the mean time per finished video so far."""

    def __init__(self, total: int, *, stream: TextIO | None = None) -> None:
        self.total, self.done = total, 0
        self.stream = stream or sys.stderr
        self.started = time.monotonic()

    def _prefix(self) -> str:
        elapsed = time.monotonic() - self.started
        if self.done and self.done < self.total:
            eta = f"ETA {clock(elapsed / self.done * (self.total - self.done))}"
        elif self.done:
            eta = "finished"
        else:
            eta = "ETA after the first video"
        return f"[{self.done}/{self.total} videos · {clock(elapsed)} · {eta}]"

    def note(self, text: str) -> None:
        print(f"{self._prefix()} {text}", file=self.stream, flush=True)

    def stage(self, video_id: str, stage: str, number: int, of: int) -> None:
        self.note(f"{video_id}: {stage} ({number}/{of})")

    def video(self, video_id: str, status: str) -> None:
        self.done += 1
        self.note(f"{video_id}: {status}")


def step(text: str, stream: TextIO | None = None) -> None:
    """One line for a step outside the per-video work (rendering, exporting)."""
    print(text, file=stream or sys.stderr, flush=True)


class StateWatcher(threading.Thread):
    """Reports stages as another process (``airflow dags test``) runs them, read from the state
    database every ``interval`` seconds: our only view into a run we did not start in-process."""

    def __init__(self, ctx: Context, kp_id: str, interval: float = 3.0, stream: TextIO | None = None) -> None:
        super().__init__(daemon=True, name="textbook-progress")
        self.ctx, self.kp_id, self.interval = ctx, kp_id, interval
        self.stream = stream
        self.stopped = threading.Event()
        self._seen: set[tuple[str, str, str]] = set()
        self._before: dict[str, tuple[str, object]] | None = None  # video -> (status, updated_at) at the start

    def poll(self, progress: Progress) -> None:
        from textbook.pipeline import STAGES

        names = [s.name for s in STAGES]
        videos = self.ctx.db.videos(kp_ids=[self.kp_id])
        if self._before is None:
            self._before = {row.video_id: (row.status, row.updated_at) for row in videos}
        progress.total = max(progress.total, len(videos))
        for row in videos:
            for run in self.ctx.db.runs(row.video_id):
                key = (row.video_id, run.stage, run.status)
                if run.status == "running" and key not in self._seen and run.stage in names:
                    self._seen.add(key)
                    progress.stage(row.video_id, run.stage, names.index(run.stage) + 1, len(names))
            final = (row.video_id, "", row.status)
            changed = self._before.get(row.video_id) != (row.status, row.updated_at)
            if row.status in ("done", "filtered", "failed") and changed and final not in self._seen:
                self._seen.add(final)
                progress.video(row.video_id, row.status)

    def run(self) -> None:
        progress = Progress(0, stream=self.stream)
        while not self.stopped.wait(self.interval):
            try:
                self.poll(progress)
            except Exception:  # noqa: BLE001 - the database not created yet, or busy: next poll
                continue

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=self.interval * 2)
