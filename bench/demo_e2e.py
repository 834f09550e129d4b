"""Benchmark: the demo course end to end on the embedded default (SQLite + local folder), no Airflow.

Renders the course into a fresh temporary data root, then times ``textbook.demo.job.run_demo``
(serve on a free 127.0.0.1 port, collect with yt-dlp, every stage, export, validate) twice: the
first run does all the work, the second should find every stage finished and do none.
Per-stage seconds come from the stage_runs table (summed over videos), and each stage's cost per
hour of video (``s/video-h``: its seconds over the hours of the videos it ran on), the figure that
sizes a night at paper scale (75K videos of about 18 minutes).

Prints figures, asserts nothing. ``python bench/demo_e2e.py``
"""

from __future__ import annotations

import hashlib
import logging
import socket
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _peak_rss_mb() -> float:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def main() -> None:
    from textbook.config import load_settings
    from textbook.demo.job import prepare_course, run_demo
    from textbook.pipeline import STAGES

    logging.basicConfig(level=logging.WARNING, format="  %(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        settings = load_settings(environ={}, data_root=tmp)
        port = _free_port()

        started = time.perf_counter()
        prepare_course(settings)  # run_demo would render it too; timed apart, as it is not pipeline work
        render = time.perf_counter() - started

        started = time.perf_counter()
        first = run_demo(settings, port=port)
        wall = time.perf_counter() - started
        runs = first.ctx.db.runs()
        dataset = Path(first.packed["root"])
        digest = _tree_digest(dataset)
        finished = {(r.video_id, r.stage): r.finished_at for r in runs}

        started = time.perf_counter()
        second = run_demo(settings, port=port)
        wall2 = time.perf_counter() - started
        redone = sum(1 for r in second.ctx.db.runs() if finished.get((r.video_id, r.stage)) != r.finished_at)
        identical = _tree_digest(dataset) == digest

    duration = {r.video_id: r.result.get("duration") or 0.0 for r in runs if r.stage == "download" and r.status == "done"}
    seconds: dict[str, float] = defaultdict(float)
    worked: dict[str, int] = defaultdict(int)
    hours: dict[str, float] = defaultdict(float)  # of the videos each stage ran on
    slowest: dict[str, tuple[float, str]] = {}
    for r in runs:
        seconds[r.stage] += r.seconds or 0.0
        worked[r.stage] += r.status == "done"
        hours[r.stage] += duration.get(r.video_id, 0.0) / 3600 if r.status == "done" else 0.0
        slowest[r.stage] = max(slowest.get(r.stage, (0.0, "")), (r.seconds or 0.0, r.video_id))
    video_seconds = sum(duration.values())
    statuses = defaultdict(int)
    for status in first.final.values():
        statuses[status] += 1

    print(f"videos: {len(first.final)} ({', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))}), "
          f"{video_seconds / 60:.1f} min of video (kept + filtered); dataset: {first.packed['samples']} samples, "
          f"{first.packed['images']} images")
    print(f"{'stage':<16} {'videos run':>10} {'seconds':>8} {'share':>6} {'s/video-h':>10}   slowest video")
    for s in STAGES:
        top, vid = slowest.get(s.name, (0.0, "-"))
        per_hour = f"{seconds[s.name] / hours[s.name]:>10.0f}" if hours[s.name] else f"{'-':>10}"
        print(f"{s.name:<16} {worked[s.name]:>10} {seconds[s.name]:>8.1f} {seconds[s.name] / wall:>6.0%} {per_hour}   "
              f"{top:.1f} s {vid}")
    outside = wall - sum(seconds.values())
    print(f"{'outside stages':<16} {'':>10} {outside:>8.1f} {outside / wall:>6.0%} {'':>10}   "
          "(search, server, yt-dlp listing, export, report, validation)")
    print(f"{'total':<16} {'':>10} {wall:>8.1f} {1:>6.0%} {wall * 3600 / max(video_seconds, 1):>10.0f}   "
          "first run_demo, course already rendered")
    print(f"course rendering: {render:.1f} s (espeak-ng + ffmpeg, once per data root, not counted above)")
    print(f"throughput: {video_seconds / wall:.2f} video-minutes per wall-minute "
          f"({video_seconds / (wall + render):.2f} counting the rendering)")
    print(f"second run_demo: {wall2:.1f} s, stage runs redone: {redone}, dataset byte-identical: "
          f"{'yes' if identical else 'no'}")
    print(f"peak RSS of this process (both runs, every model loaded): {_peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
