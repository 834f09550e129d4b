"""The nightly's queries and exports at paper scale, on a simulated corpus (``bench/corpus_sim.py``).

Per tier (default 1K and 10K finished videos; ``--videos 75000`` is the paper's size): generate the
corpus, then time each of these in a fresh process, printing the wall and CPU time of the work
(imports excluded) and the process's peak RSS (imports included):

- ``textbook status --subject`` for one subject (the CLI, output discarded);
- the plugin's subject page: ``status.kp_progress`` for the subject, rendered with its template;
- the search task's "work left" check for one knowledge point (``pipeline.work_left``);
- one knowledge point's nightly pack, and a full compaction: ``textbook.export.pack_knowledge_point``
  and ``compact`` where they exist, else ``export_dataset(ctx, [kp])`` and ``export_dataset(ctx)``,
  labelled so; then the compaction again, with nothing changed (the nightly's steady state). The
  first compaction of a generated corpus packs every video (about 70 CPU-s per 1K videos), so
  both run only up to ``--export-max`` videos.

Then, once (it does not depend on the videos), the parse of a 4,000-knowledge-point DAG folder.
The peak RSS comes from ``getrusage(RUSAGE_CHILDREN)`` in a small launcher process, so the big
bench process's size is never folded into a child's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SUBJECT = "subject00"

# Runs one measurement as its own child and reports that child's peak RSS and total CPU.
LAUNCH = textwrap.dedent("""
    import json, resource, subprocess, sys
    out = subprocess.run(sys.argv[1:], capture_output=True, text=True)
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        print(json.dumps({"error": out.stderr[-2000:]}))
    else:
        print(json.dumps({**json.loads(out.stdout.strip().splitlines()[-1]), "rss_mb": use.ru_maxrss / 1024,
                          "process_cpu": use.ru_utime + use.ru_stime}))
""")


def _ctx(args: argparse.Namespace) -> Any:
    from corpus_sim import context

    return context(Path(args.data), Path(args.taxonomy))


def _busiest_kp(ctx: Any) -> str:
    """The knowledge point that found the most videos first: the costliest search and pack."""
    from sqlalchemy import func, select

    from textbook.state import VideoKnowledgePoint

    with ctx.db.session() as s:
        return s.execute(select(VideoKnowledgePoint.kp_id).group_by(VideoKnowledgePoint.kp_id)
                         .order_by(func.count().desc(), VideoKnowledgePoint.kp_id).limit(1)).scalar_one()


def _status(args: argparse.Namespace) -> tuple[Callable[[], Any], str]:
    import contextlib
    import io

    from textbook.cli import main

    os.environ.update(TEXTBOOK_DATA_ROOT=args.data, TEXTBOOK_TAXONOMY_DIR=args.taxonomy)

    def work() -> Any:
        with contextlib.redirect_stdout(io.StringIO()) as out:
            assert main(["status", "--subject", SUBJECT]) == 0
        return f"{len(out.getvalue().splitlines())} lines"

    return work, f"textbook status --subject {SUBJECT}"


def _subject_page(args: argparse.Namespace) -> tuple[Callable[[], Any], str]:
    sys.path.insert(0, str(REPO / "plugins"))
    from textbook_plugin import PAGES

    from textbook import status as st

    ctx = _ctx(args)

    def work() -> Any:
        rows = st.kp_progress(ctx, ctx.taxonomy.select(subject=SUBJECT))
        html = PAGES.get_template("subject.html").render(link=lambda name, **p: f"/textbook/{name}",
                                                         airflow_base="", subject_id=SUBJECT, rows=rows,
                                                         statuses=st.STATUSES)
        return f"{len(rows)} knowledge points, {len(html) // 1024} KiB of HTML"

    return work, f"plugin subject page ({SUBJECT}: status.kp_progress + subject.html)"


def _work_left(args: argparse.Namespace) -> tuple[Callable[[], Any], str]:
    from textbook.pipeline import work_left

    ctx = _ctx(args)
    kp = _busiest_kp(ctx)
    return (lambda: f"{len(work_left(kp, ctx))} videos with work left"), f"search work left ({kp})"


def _pack_kp(args: argparse.Namespace) -> tuple[Callable[[], Any], str]:
    from textbook import export

    ctx = _ctx(args)
    kp = _busiest_kp(ctx)

    def pack() -> tuple[str, int]:
        done = export.pack_knowledge_point(ctx, kp)
        return f"{done.videos} videos, {done.rebuilt} parts rebuilt", done.rebuilt

    return pack, f"pack_knowledge_point ({kp})"


def _pack_all(args: argparse.Namespace) -> tuple[Callable[[], Any], str]:
    """Every knowledge point's pack, one after another: a night of a new corpus, which the DAGs
    spread over their runs (and workers)."""
    from textbook import export

    ctx = _ctx(args)
    kps = [kp.id for kp in ctx.taxonomy.knowledge_points]

    def pack() -> tuple[str, int]:
        rebuilt = sum(export.pack_knowledge_point(ctx, kp).rebuilt for kp in kps)
        return f"{rebuilt} parts built", rebuilt

    return pack, f"pack_knowledge_point for each of the {len(kps)} knowledge points"


def _compact(args: argparse.Namespace) -> tuple[Callable[[], Any], str]:
    from textbook import export

    ctx = _ctx(args)

    def work() -> Any:
        s = export.compact(ctx)
        return f"{s.records} videos, {s.samples} samples, {s.images} images, {len(s.changed)} files changed", s.records

    return work, "compact(ctx)" + (", again: nothing changed" if args.measure == "compact_again" else "")


def _dag_parse(args: argparse.Namespace) -> tuple[Callable[[], Any], str]:
    import dag_parse

    def work() -> Any:
        with tempfile.TemporaryDirectory(prefix="bench-dags-") as tmp:
            taxonomy = Path(tmp) / "taxonomy"
            taxonomy.mkdir()
            dag_parse.write_taxonomy(taxonomy, 8, 5, 10, 10)
            out = dag_parse.measure(dag_parse.dag_folder(taxonomy, Path(tmp) / "dags"), taxonomy, per_file=True)
        files = out["files"].values()
        return {"wall": sum(f[0] for f in files), "cpu": sum(f[1] for f in files),
                "detail": f"{len(files)} files, slowest {max(f[1] for f in files):.2f} CPU-s; one DagBag of the "
                          f"folder {out['cpu']:.2f} CPU-s for {out['dags']} DAGs"}

    return work, "DAG folder parse at 4,000 knowledge points, each file forked (summed)"


MEASURES: dict[str, Callable[[argparse.Namespace], tuple[Callable[[], Any], str]]] = {
    "status": _status, "subject_page": _subject_page, "work_left": _work_left, "pack_kp": _pack_kp,
    "pack_all": _pack_all, "compact": _compact, "compact_again": _compact, "dag_parse": _dag_parse}


def run_measure(args: argparse.Namespace) -> None:
    """In the measured child: set up, then time the work alone."""
    work, label = MEASURES[args.measure](args)
    wall, cpu = time.perf_counter(), time.process_time()
    detail = work()
    times = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
    if isinstance(detail, dict):  # the work ran in processes of its own and timed them
        times, detail = detail, detail["detail"]
    if isinstance(detail, tuple):  # (what, how many videos): the cost of one, comparable across tiers
        detail, count = detail
        detail += f", {1000 * times['cpu'] / count:.1f} CPU-ms a video" if count else ""
    print(json.dumps({"label": label, **times, "detail": str(detail)}))


def measure(kind: str, data: Path | None = None, taxonomy: Path | None = None) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--measure", kind]
    if data is not None:
        argv += ["--data", str(data), "--taxonomy", str(taxonomy)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCH), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", LAUNCH, *argv], capture_output=True, text=True, env=env,
                         check=False)
    return json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {"error": out.stderr[-2000:]}


def _row(name: str, m: dict[str, Any]) -> str:
    if "error" in m:
        return f"  {name:<14} FAILED: {m['error'].strip().splitlines()[-1] if m['error'].strip() else '?'}"
    return (f"  {name:<14} {m['wall']:8.2f} {m['cpu']:8.2f} {m['rss_mb']:8.0f}   {m['label']}: {m['detail']}")


HEADER = f"  {'measure':<14} {'wall s':>8} {'CPU s':>8} {'RSS MB':>8}   what"


def run_tier(videos: int, args: argparse.Namespace, work: Path) -> None:
    from corpus_sim import Scale, generate, write_taxonomy

    big = videos > 10_000
    scale = Scale(videos, keyframes=args.keyframes or (24 if big else 87), words_per_clip=args.words or (15 if big else 40))
    root = work / f"tier-{videos}"
    taxonomy, data = root / "taxonomy", root / "data"
    write_taxonomy(taxonomy)
    wall, cpu = time.perf_counter(), time.process_time()
    made = generate(data, taxonomy, scale)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    size = sum(p.stat().st_size for p in data.rglob("*") if p.is_file()) / 2**20
    db_size = (data / "state.db").stat().st_size / 2**20
    print(f"\n-- {videos} videos: {scale.describe()} --")
    print(f"  generated {made['videos']} videos of {made['knowledge_points']} knowledge points "
          f"({made['by_status']}), {made['keyframes']} keyframes (hard links to {made['jpeg_files']} JPEGs), "
          f"in {wall:.1f} s wall, {cpu:.1f} s CPU; {size:.0f} MiB on disk "
          f"(links counted per name), state.db {db_size:.0f} MiB")
    print(HEADER)
    kinds = ["status", "subject_page", "work_left", "pack_kp"]
    if videos <= args.export_max:
        kinds += ["pack_all", "compact", "compact_again"]
    for kind in kinds:
        print(_row(kind, measure(kind, data, taxonomy)), flush=True)
    if videos > args.export_max:
        print(f"  {'compact':<14} skipped: packing every video of a new corpus first reads every video's "
              f"documents; --export-max {videos} runs the packs and the compactions")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, action="append", help="finished videos of a tier (repeatable; "
                    "default 1000 and 10000)")
    ap.add_argument("--keyframes", type=int, help="keyframes per video (default 87; 24 above 10K videos)")
    ap.add_argument("--words", type=int, help="transcript words per 15 s clip (default 40; 15 above 10K)")
    ap.add_argument("--export-max", type=int, default=1000,
                    help="largest tier the packs of every knowledge point and the compactions run at")
    ap.add_argument("--work", help="folder for the generated corpora (default: a temporary one, removed)")
    ap.add_argument("--measure", choices=sorted(MEASURES), help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--taxonomy", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        run_measure(args)
        return
    print(f"simulated corpus, 3,915 knowledge points; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="bench-corpus-", dir=args.work) as tmp:
        for videos in args.videos or [1000, 10_000]:
            run_tier(videos, args, Path(tmp))
            subprocess.run(["rm", "-rf", str(Path(tmp) / f"tier-{videos}")], check=False)
    print("\n-- independent of the videos --")
    print(HEADER)
    print(_row("dag_parse", measure("dag_parse")))


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH))
    main()
