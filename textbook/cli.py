"""The textbook command line: collect instructional videos per knowledge point, run them through the
pipeline, and export the multimodal-textbook dataset with its report."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

from textbook.config import ConfigError, load_settings
from textbook.context import Context

log = logging.getLogger("textbook")


class CliError(RuntimeError):
    """A one-line reason the command could not do its work."""


class Terminated(SystemExit):
    """SIGTERM (a task kill, `docker stop`): unwinds like an exception, so the stage being run is
    recorded failed with this reason and its claim released, instead of being left running."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"terminated by {signal.Signals(self.signum).name}"


def _raise_terminated(signum: int, _frame: Any) -> None:
    raise Terminated(signum)


def _context(args: argparse.Namespace, **overrides: Any) -> Context:
    return Context.from_settings(load_settings(args.config, **overrides))


def _select(ctx: Context, args: argparse.Namespace) -> list:
    tax = ctx.taxonomy
    if getattr(args, "all", False):
        return list(tax.knowledge_points)
    kps = []
    for kp_id in args.kp or []:
        kps.append(tax.get(kp_id))
    for subject in args.subject or []:
        kps += tax.select(subject=subject)
    if not kps:
        raise CliError("name what to run: --kp ID, --subject ID or --all")
    return list(dict.fromkeys(kps))


def _source_overrides(args: argparse.Namespace) -> dict[str, Any]:
    search: dict[str, Any] = {}
    if args.source:
        search["source"] = args.source
    if args.urls_file:
        search.update(source=args.source or "urls", urls_file=str(Path(args.urls_file).resolve()))
    if args.local_dir:
        search.update(source=args.source or "local", local_dir=str(Path(args.local_dir).resolve()))
    return {"search": search} if search else {}


def _publish(make: Any) -> None:
    """Run an export step and say what it published."""
    from textbook.export import PublishRefused
    from textbook.progress import step

    step("export: finished videos -> dataset, card and report")
    try:
        out = make()
    except PublishRefused as exc:
        raise CliError(str(exc)) from None
    state = "updated" if out["changed"] else "unchanged"
    print(f"dataset: {out['root']} ({state}: {out['samples']} samples, {out['images']} images, "
          f"{out['videos']} videos)")
    if not out["videos"]:
        print("  no finished video yet: the dataset is empty (`textbook status` shows progress)")
    print(f"report:  {out['report']}")


def _export(ctx: Context, kp_ids: list[str] | None, force: bool = False) -> None:
    from textbook import tasks

    _publish(lambda: tasks.export(kp_ids, ctx, force=force))


def _pack_and_compact(ctx: Context, kp_ids: list[str], force: bool) -> None:
    """What the DAGs do: each knowledge point's parts, then the dataset from every part."""
    from textbook import tasks

    for kp_id in kp_ids:
        tasks.pack(kp_id, ctx)
    _publish(lambda: tasks.compact(ctx, force=force))


def cmd_run(args: argparse.Namespace) -> int:
    from textbook.collect import collect_and_run, print_outcome

    ctx = _context(args, **_source_overrides(args))
    kps = _select(ctx, args)
    run = collect_and_run(ctx, kps, args.limit)
    final = run.final
    print_outcome(final, ctx)
    failed = sum(1 for status in final.values() if status == "failed")
    if run.dead:  # as the DAG's pack decides: a dead night publishes nothing
        raise CliError(f"every video with work to do failed ({len(run.worked)}); the dataset was left as it was")
    if not args.no_export:
        _pack_and_compact(ctx, [kp.id for kp in kps], args.force)
    if failed:
        raise CliError(f"{failed} of {len(final)} videos failed (reasons above); the dataset keeps every video "
                       f"finished before; `textbook retry VIDEO` or a later run tries them again")
    return 0


FIND_VIDEOS = "`textbook run --kp ID` finds them (`textbook kps` lists the ids)"


def cmd_plan(args: argparse.Namespace) -> int:
    from textbook.plan import plan, render_plan

    ctx = _context(args)
    kp_ids = [kp.id for kp in _select(ctx, args)] if (args.kp or args.subject) else None
    plans = plan(ctx, kp_ids)
    if not any(plans[0].counts.values()):  # every video has a row in the first stage's counts
        print(f"no videos {'there ' if kp_ids else ''}yet: nothing would run again; {FIND_VIDEOS}")
        return 0
    print(render_plan(plans))
    return 0


def cmd_kps(args: argparse.Namespace) -> int:
    """Knowledge-point ids to pass to --kp, with their videos so far (one aggregate query)."""
    from textbook import status as st
    from textbook.taxonomy import TaxonomyLookupError

    ctx = _context(args)
    try:
        kps = ctx.taxonomy.select(subject=args.subject, course=args.course)
    except TaxonomyLookupError as exc:
        raise CliError(str(exc)) from None
    levels = sorted({kp.level for kp in kps})
    if args.level is not None:
        kps = [kp for kp in kps if kp.level == args.level]
    if not kps:
        scope = "".join(f" {name} {value}" for name, value in (("in subject", args.subject),
                                                               ("in course", args.course)) if value)
        print(f"no knowledge points at level {args.level}{scope}; levels there: {', '.join(map(str, levels))}")
        return 0
    rows = st.kp_progress(ctx, kps)
    subjects = list(dict.fromkeys(kp.subject for kp in kps))
    courses = {(kp.subject, kp.course) for kp in kps}
    print(f"{len(kps)} knowledge point(s) in {len(courses)} course(s) of {len(subjects)} subject(s); "
          f"{sum(r.counts.total for r in rows)} videos found so far")
    width, level_width = max(len(kp.id) for kp in kps), max(len(kp.level_name) for kp in kps)
    for row in rows:
        kp = row.kp
        print(f"  {kp.id:<{width}}  level {kp.level} {kp.level_name:<{level_width}} {row.counts.total:>5} videos  "
              f"{kp.name}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from textbook.collect import print_outcome
    from textbook.demo.job import DEMO_KP

    settings = load_settings(args.config)
    if args.no_airflow:
        from textbook.demo.job import run_demo

        result = run_demo(settings, port=args.port)
    else:
        from textbook.demo.through_airflow import run_demo_through_airflow

        result = run_demo_through_airflow(settings, port=args.port, config_file=args.config)
        print(f"airflow: DAG {result.ctx.taxonomy.get(DEMO_KP).dag_id} ran with "
              f"`airflow dags test`; log: {result.packed['log']}")
    print_outcome(result.final, result.ctx)
    out = result.packed
    print(f"dataset: {out['root']} ({out['samples']} samples, {out['images']} images, {out['videos']} videos)")
    print(f"report:  {out['report']}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    ctx = _context(args)
    if args.video:
        row = ctx.db.video(args.video)
        if row is None:
            raise CliError(f"unknown video {args.video!r}")
        print(f"{row.video_id}  {row.status}  {row.reason}  {row.url}")
        for run in ctx.db.runs(row.video_id):
            secs = f"{run.seconds:.1f}s" if run.seconds is not None else "-"
            stale = ctx.db.stale_reason(run)
            state = f"stale: {stale}" if stale else run.status
            note = run.error or (f"held by {run.worker}" if run.status == "running" else "")
            print(f"  {run.stage:<14}{state:<9}attempts={run.attempts:<3}{secs:>8}  {note}")
        return 0
    if args.kp or args.failed:
        kp_ids = args.kp or ([kp.id for kp in _subject_kps(ctx, args.subject)] if args.subject else None)
        return _status_videos(ctx, kp_ids, "failed" if args.failed else None)
    if args.subject:
        return _status_subject(ctx, args.subject)
    return _status_subjects(ctx)


def _subject_kps(ctx: Context, subject: str) -> list[Any]:
    from textbook.taxonomy import TaxonomyLookupError

    try:
        return ctx.taxonomy.select(subject=subject)
    except TaxonomyLookupError as exc:
        raise CliError(str(exc)) from None


def _counts_line(counts: Any) -> str:
    from textbook.status import STATUSES

    return ", ".join(f"{counts.get(s)} {s}" for s in STATUSES if counts.get(s)) or "none"


def _status_subjects(ctx: Context) -> int:
    """Every subject's progress, from aggregate queries (no per-video round trip)."""
    from textbook import status as st

    counts = st.video_counts(ctx)
    print(f"{counts.total} videos: {_counts_line(counts)}" if counts.total else f"no videos yet: {FIND_VIDEOS}")
    for subject in st.subject_progress(ctx):
        print(f"  {subject.id:<24}{subject.searched}/{subject.knowledge_points} knowledge points searched, "
              f"{subject.counts.total} videos: {_counts_line(subject.counts)}")
    return 0


def _status_subject(ctx: Context, subject: str) -> int:
    """One subject's knowledge points, from aggregate queries."""
    from textbook import status as st

    rows = st.kp_progress(ctx, _subject_kps(ctx, subject))
    total = st.Counts()
    for row in rows:
        total = total.plus(row.counts)
    print(f"{subject}: {sum(row.searched for row in rows)}/{len(rows)} knowledge points searched, "
          f"{total.total} videos: {_counts_line(total)}")
    for row in rows:
        print(f"  {row.kp.id:<56}{'searched' if row.searched else 'not searched':<14}"
              f"{row.counts.total:>6} videos: {_counts_line(row.counts)}")
    return 0


def _status_videos(ctx: Context, kp_ids: list[str] | None, status: str | None) -> int:
    """The videos of some knowledge points (or the failed ones), their links in one query."""
    from textbook import status as st

    rows = ctx.db.videos(kp_ids=kp_ids, status=status)
    links = st.video_links(ctx, kp_ids, status)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    if not rows:
        print("no failed videos" if status == "failed" else f"no videos yet: {FIND_VIDEOS}")
        return 0
    print(f"{len(rows)} videos: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    for row in rows:
        print(f"  {row.video_id:<24} {row.status:<9} {','.join(links.get(row.video_id, []))}  {row.reason}")
    return 0


def _retry_through_airflow(ctx: Context, video_ids: list[str]) -> int:
    """Clear each video's failed task and its downstream in Airflow; the scheduler reruns them."""
    from textbook.airflow_api import AirflowApiError, AirflowClient
    from textbook.airflow_ops import retry_videos

    client = AirflowClient.from_settings(ctx.settings)
    try:
        report = retry_videos(client, ctx, video_ids)
    except AirflowApiError as exc:
        raise CliError(str(exc)) from None
    for done in report.cleared:
        print(f"{done.video_id}: cleared {done.task_id} and downstream in {done.dag_id} run {done.run_id} "
              f"({len(done.cleared)} task instances to run again)")
    if report.problems:
        raise CliError("; ".join(report.problems))
    return 0


def _failed_selection(ctx: Context, args: argparse.Namespace) -> list[str]:
    """``retry --failed``: the failed videos of the knowledge points and subjects named (or all),
    of one failure category when ``--reason`` names it."""
    from textbook import status as st
    from textbook.failures import CATEGORIES

    if args.video_id:
        raise CliError("name videos or --failed, not both")
    if args.reason and args.reason not in CATEGORIES:
        raise CliError(f"--reason: unknown failure category {args.reason!r}; categories: {', '.join(CATEGORIES)}")
    kp_ids = [kp.id for kp in _select(ctx, args)] if args.kp or args.subject else None
    ids = [f.video_id for f in st.failed_videos(ctx, kp_ids, args.reason)]
    if not ids:
        raise CliError("no failed video matches" + (f" --reason {args.reason}" if args.reason else ""))
    return ids


def cmd_retry(args: argparse.Namespace) -> int:
    from textbook.pipeline import run_video
    from textbook.runner import StageBusy, StageFailed

    ctx = _context(args)
    if args.failed:
        args.video_id = _failed_selection(ctx, args)
    elif not args.video_id:
        raise CliError("name the videos to retry, or --failed")
    elif args.kp or args.subject or args.reason:
        raise CliError("--kp, --subject and --reason select with --failed only")
    if ctx.settings.airflow.api_url:
        return _retry_through_airflow(ctx, args.video_id)
    for vid in args.video_id:
        row = ctx.db.video(vid)
        if row is None:
            raise CliError(f"unknown video {vid!r}")
        runs = ctx.db.runs(vid)
        failed = [r.stage for r in runs if r.status == "failed"]
        stale = [r.stage for r in runs if ctx.db.stale_reason(r)]
        live = [r for r in runs if r.status == "running" and not ctx.db.stale_reason(r)]
        if live:
            print(f"{vid}: {live[0].stage} is running ({live[0].worker}), nothing to retry")
            continue
        if not failed and not stale and row.status != "failed":
            print(f"{vid}: {row.status}, nothing to retry")
            continue
        if stale:
            print(f"{vid}: {stale[0]}: stale: {ctx.db.stale_reason(ctx.db.run(vid, stale[0]))}; running it again")
        try:
            run_video(vid, ctx)
        except StageFailed as exc:
            print(f"{vid}: failed again: {exc.stage}: {exc.reason}")
            continue
        except StageBusy as exc:
            print(f"{vid}: {exc}")
            continue
        print(f"{vid}: {ctx.db.video(vid).status}")
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from textbook.airflow_api import AirflowApiError, AirflowClient
    from textbook.airflow_ops import BackfillError, backfill

    ctx = _context(args)
    kps = ctx.taxonomy.select(subject=args.subject)
    client = AirflowClient.from_settings(ctx.settings)
    print(f"backfill {args.subject}: {len(kps)} knowledge-point DAGs, at most {args.max_active} runs at once")
    try:
        runs = backfill(client, [kp.dag_id for kp in kps], label=args.subject, max_active=args.max_active,
                        poll_seconds=args.poll, timeout=args.timeout, fresh=args.fresh)
    except (BackfillError, AirflowApiError) as exc:
        raise CliError(str(exc)) from None
    failed = [run.dag_id for run in runs if run.state != "success"]
    print(f"backfill {args.subject}: {len(runs) - len(failed)} runs succeeded, {len(failed)} failed")
    if failed:
        raise CliError(f"{len(failed)} run(s) failed: {', '.join(failed)}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    ctx = _context(args)
    kp_ids = None
    if args.kp or args.subject:
        kp_ids = [kp.id for kp in _select(ctx, args)]
        if not ctx.settings.export.root:  # a slice gets its own folder: never replace the whole corpus
            name = "-".join(args.subject or []) or "-".join(args.kp)
            root = ctx.settings.data_path / "slices" / (name if len(name) <= 80 else name[:80])
            ctx = Context(ctx.settings.replace(export={"root": str(root)}), ctx.store, ctx.db)
    _export(ctx, kp_ids, args.force)
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    ctx = _context(args)
    _pack_and_compact(ctx, [], args.force)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from textbook.export import validate_dataset

    root = Path(args.root) if args.root else load_settings(args.config).export_root
    problems = validate_dataset(root)
    for p in problems:
        print(p)
    if problems:
        raise CliError(f"{root}: {len(problems)} problem(s)")
    print(f"{root}: valid")
    return 0


def cmd_insi_sim(args: argparse.Namespace) -> int:
    from textbook.atomic import atomic_write
    from textbook.export.card import table
    from textbook.insi_sim import Measurement, Method, measure_corpus

    exp = load_settings(args.config).export
    source = Path(args.source)
    if not source.exists():
        raise CliError(f"{source}: no such dataset folder or file")
    try:
        method = Method(clip_model=exp.insi_sim_clip_model if args.clip_model is None else args.clip_model,
                        arithmetic=args.arithmetic or exp.insi_sim_arithmetic,
                        ssim_width=exp.insi_sim_ssim_width if args.ssim_width is None else args.ssim_width)
        measured = measure_corpus(source, method, exp.insi_sim_samples if args.samples is None else args.samples,
                                  exp.seed if args.seed is None else args.seed, args.device or exp.insi_sim_device,
                                  Path(args.images_root) if args.images_root else None)
    except (ValueError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from None
    print(table(Measurement.header(), measured.table()))
    print("\n".join(["", *measured.notes()]))
    if args.pairs:
        atomic_write(Path(args.pairs), lambda tmp: tmp.write_bytes(b"".join(measured.lines())))
        print(f"per-pair values: {args.pairs}")
    return 0


def cmd_model_server(args: argparse.Namespace) -> int:
    from textbook.model_server import ModelServer

    server = ModelServer(_context(args), host=args.host, port=args.port)
    print(f"model server on http://{args.host}:{server.server_port} (POST /run, GET /stats)", flush=True)
    server.serve_forever()
    return 0


def cmd_taxonomy_generate(args: argparse.Namespace) -> int:
    from textbook import taxonomy_gen
    from textbook.models import build

    settings = load_settings(args.config)
    try:
        levels = taxonomy_gen.parse_levels(args.levels)
    except ValueError as exc:
        raise CliError(f"--levels: {exc}") from None
    for option, value in (("--courses", args.courses), ("--points", args.points)):
        if value < 1:
            raise CliError(f"{option}: expected at least 1, got {value}")
    llm = build("llm", settings.taxonomy.llm, "taxonomy.llm")
    if llm is None:
        raise CliError("taxonomy.llm.backend is none: name a model, e.g. TEXTBOOK_TAXONOMY__LLM__BACKEND=openai "
                       "TEXTBOOK_TAXONOMY__LLM__ENDPOINT=http://vllm:8000/v1 TEXTBOOK_TAXONOMY__LLM__MODEL=gpt-4o")
    folder = Path(args.taxonomy_dir) if args.taxonomy_dir else taxonomy_gen.default_dir(settings.taxonomy_dir)
    scopes = [taxonomy_gen.Scope(name, levels, args.courses, args.points)
              for name in args.subject or taxonomy_gen.PAPER_SUBJECTS]
    try:
        changes = taxonomy_gen.plan(llm, scopes, folder)
    except taxonomy_gen.GenerationError as exc:
        raise CliError(str(exc)) from None
    for change in changes:
        added = ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in change.counts.added.items())
        print(f"{change.path}: {added} added, {change.counts.matched} proposed entries already there")
        if args.dry_run:
            print(change.diff(), end="")
    if args.dry_run:
        print("dry run: nothing written")
        return 0
    written = taxonomy_gen.write(changes)
    print(f"{len(written)} file(s) written; the taxonomy loads. New subjects' DAGs appear at the next parse "
          "(python -m textbook.dag_files gives each its own DAG file)")
    return 0


EXAMPLES = """examples:
  textbook demo --no-airflow                     # the demo course end to end, in a few minutes
  textbook kps --subject mathematics --level 3   # knowledge-point ids to run
  textbook run --kp mathematics.calculus.derivatives.power-rule
  textbook status --failed                       # what failed, and why
  textbook export                                # then open data/dataset/report/index.html

every command: textbook COMMAND --help (options, with an example each)
settings: --config FILE or $TEXTBOOK_CONFIG, overridden by TEXTBOOK_* variables (README: Configuration)"""


CONFIG_HELP = ("YAML settings file (default $TEXTBOOK_CONFIG; TEXTBOOK_* variables override), "
               "e.g. --config prod.yaml")


def _command(sub: Any, name: str, help: str, examples: str) -> argparse.ArgumentParser:
    """A sub-command whose --help ends with examples; it takes --config after its name too
    (``textbook plan --config new.yaml``), without hiding one given before it."""
    command = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                             epilog="examples:\n" + examples, formatter_class=argparse.RawDescriptionHelpFormatter)
    command.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=CONFIG_HELP)
    return command


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="textbook", description=__doc__, epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details and show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def selection(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--kp", action="append", metavar="ID",
                        help="knowledge point id, repeatable (list them: textbook kps), "
                             "e.g. --kp demo.intro.basics.lectures")
        sp.add_argument("--subject", action="append", metavar="ID",
                        help="every knowledge point of a subject, repeatable, e.g. --subject physics")

    run = _command(sub, "run", "search, process and export knowledge points", (
        "  textbook run --kp mathematics.calculus.derivatives.power-rule   # YouTube search, top 50\n"
        "  textbook run --subject physics --limit 10\n"
        "  textbook run --kp demo.intro.basics.lectures --urls-file urls.txt\n"
        "  textbook run --kp demo.intro.basics.lectures --local-dir ./videos --no-export"))
    selection(run)
    run.add_argument("--all", action="store_true", help="every knowledge point of the taxonomy, e.g. --all --limit 5")
    run.add_argument("--source", choices=["youtube", "urls", "local"],
                     help="where videos come from (default search.source), e.g. --source youtube")
    run.add_argument("--urls-file", metavar="FILE",
                     help="one yt-dlp URL per line instead of a search, e.g. --urls-file urls.txt")
    run.add_argument("--local-dir", metavar="DIR",
                     help="a folder of media files (+ <stem>.en.vtt captions), e.g. --local-dir ./videos")
    run.add_argument("--limit", type=int, metavar="N",
                     help="videos per knowledge point (default search.max_results), e.g. --limit 10")
    run.add_argument("--no-export", action="store_true",
                     help="process only; write the dataset later with textbook export")
    run.add_argument("--force", action="store_true",
                     help="publish the dataset even if it would lose videos the previous export shipped")
    run.set_defaults(fn=cmd_run)

    plan = _command(sub, "plan", "per stage, how many videos the current settings would run again, before "
                                 "anything runs (try it after editing the settings)", (
        "  textbook plan --config new.yaml\n"
        "  TEXTBOOK_KEYFRAMES__SSIM_THRESHOLD=0.95 textbook plan --subject physics"))
    selection(plan)
    plan.set_defaults(fn=cmd_plan)

    kps = _command(sub, "kps", "list knowledge-point ids (for --kp) with their level and videos found so far", (
        "  textbook kps --subject mathematics\n"
        "  textbook kps --subject physics --course mechanics --level 3"))
    kps.add_argument("--subject", metavar="ID", help="one subject, e.g. --subject mathematics")
    kps.add_argument("--course", metavar="ID",
                     help="one course, or <course>.<sub_course>, of the subject, e.g. --course calculus")
    kps.add_argument("--level", type=int, choices=range(1, 6), metavar="1-5",
                     help="educational level: 1 primary ... 5 graduate, e.g. --level 3")
    kps.set_defaults(fn=cmd_kps)

    demo = _command(sub, "demo", "render the demo course, serve it on 127.0.0.1 and run it end to end", (
        "  textbook demo                 # through Airflow (airflow dags test)\n"
        "  textbook demo --no-airflow    # the same stages in this process"))
    demo.add_argument("--port", type=int, default=8765, help="port of the local demo server (default 8765), "
                                                             "e.g. --port 8801")
    demo.add_argument("--no-airflow", action="store_true", help="run the stages in this process, without Airflow")
    demo.set_defaults(fn=cmd_demo)

    status = _command(sub, "status", "progress per subject (default), per knowledge point of a subject "
                                     "(--subject), per video (--kp, --failed, --video), with failure reasons", (
        "  textbook status\n"
        "  textbook status --subject physics --failed\n"
        "  textbook status --video -newton_laws"))
    status.add_argument("--subject", metavar="ID", help="one subject's knowledge points, e.g. --subject physics")
    status.add_argument("--kp", action="append", metavar="ID",
                        help="the videos of a knowledge point, repeatable, e.g. --kp demo.intro.basics.lectures")
    status.add_argument("--video", metavar="ID", help="one video, stage by stage, e.g. --video dQw4w9WgXcQ")
    status.add_argument("--failed", action="store_true", help="only failed videos (with --kp or --subject: theirs)")
    status.set_defaults(fn=cmd_status)

    retry = sub.add_parser("retry", help="run failed videos again from their failed stage (through Airflow's "
                                         "REST API when airflow.api_url is set, else in this process)")
    retry.add_argument("video_id", nargs="*")
    retry.add_argument("--failed", action="store_true", help="every failed video (of --kp/--subject, of --reason)")
    selection(retry)
    retry.add_argument("--reason", help="with --failed: only this failure category (network, timeout, ...)")
    retry.set_defaults(fn=cmd_retry)

    backfill = _command(sub, "backfill", "trigger every knowledge-point DAG of a subject through Airflow's REST "
                                         "API, a few runs at a time", (
        "  textbook backfill --subject physics --max-active 4\n"
        "  textbook backfill --subject physics --fresh --timeout 3600"))
    backfill.add_argument("--subject", required=True, metavar="ID", help="subject id, e.g. --subject physics")
    backfill.add_argument("--max-active", type=int, default=4, metavar="N",
                          help="runs of the subject's DAGs queued or running at once (default 4), e.g. --max-active 8")
    backfill.add_argument("--poll", type=float, default=10.0, metavar="SECONDS",
                          help="seconds between checks of the runs (default 10), e.g. --poll 30")
    backfill.add_argument("--timeout", type=float, metavar="SECONDS",
                          help="stop waiting after this many seconds (runs go on in Airflow), e.g. --timeout 3600")
    backfill.add_argument("--fresh", action="store_true",
                          help="start a new backfill instead of going on with an unfinished one of the subject")
    backfill.set_defaults(fn=cmd_backfill)

    export = _command(sub, "export", "write the dataset (FORMAT.md) and its report from finished videos", (
        "  textbook export                      # the whole corpus: data/dataset, report in data/dataset/report\n"
        "  textbook export --subject physics    # a slice, in its own folder data/slices/physics"))
    selection(export)
    export.add_argument("--force", action="store_true",
                        help="publish even if the dataset would lose videos the previous export shipped")
    export.set_defaults(fn=cmd_export)

    compact = _command(sub, "compact", "write the dataset from every video's export part (what the "
                                       "textbook_compaction DAG runs); videos changed since their knowledge "
                                       "point's pack are packed first", (
        "  textbook compact\n"
        "  textbook compact --force   # even if videos the previous dataset shipped would be lost"))
    compact.add_argument("--force", action="store_true",
                         help="publish even if the dataset would lose videos the previous export shipped")
    compact.set_defaults(fn=cmd_compact)

    model = _command(sub, "model-server", "serve model stages to the GPU worker's tasks (models load once)", (
        "  textbook model-server --host 0.0.0.0 --port 8790"))
    model.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1), "
                                                          "e.g. --host 0.0.0.0")
    model.add_argument("--port", type=int, default=8790, help="port (default 8790), e.g. --port 8791")
    model.set_defaults(fn=cmd_model_server)

    validate = _command(sub, "validate", "check a written dataset against FORMAT.md", (
        "  textbook validate                    # the configured export root\n"
        "  textbook validate /data/dataset"))
    validate.add_argument("root", nargs="?", metavar="DATASET_DIR",
                          help="the dataset folder (default: the configured export root)")
    validate.set_defaults(fn=cmd_validate)

    taxonomy = _command(sub, "taxonomy", "work on the knowledge taxonomy (textbook taxonomy generate --help)", (
        "  textbook taxonomy generate --subject Astronomy --dry-run"))
    taxonomy_sub = taxonomy.add_subparsers(dest="taxonomy_command", required=True, metavar="ACTION")
    generate = _command(taxonomy_sub, "generate", "ask the LLM taxonomy.llm for subjects, courses, sub-courses and "
                                                  "knowledge points, and merge them into the subject files (existing "
                                                  "ids, names and entries are never changed or dropped)", (
        "  textbook taxonomy generate --subject Astronomy --levels 1-2 --dry-run   # the diff, nothing written\n"
        "  textbook taxonomy generate --subject physics --points 200               # extend an existing subject\n"
        "  TEXTBOOK_TAXONOMY__LLM__BACKEND=openai TEXTBOOK_TAXONOMY__LLM__ENDPOINT=http://vllm:8000/v1 \\\n"
        "    TEXTBOOK_TAXONOMY__LLM__MODEL=Qwen2.5-72B-Instruct textbook taxonomy generate   # the paper's six"))
    generate.add_argument("--subject", action="append", metavar="NAME",
                          help="a subject to generate or extend (its name or id), repeatable (default: the "
                               "paper's six), e.g. --subject \"Earth Science\"")
    generate.add_argument("--levels", default="1-2", metavar="RANGE",
                          help="educational levels allowed, 1 primary ... 5 graduate (default 1-2, the paper's "
                               "primary to middle school), e.g. --levels 1-3")
    generate.add_argument("--courses", type=int, default=9, metavar="N",
                          help="courses to aim for per subject (default 9: the paper's 55 over 6), e.g. --courses 5")
    generate.add_argument("--points", type=int, default=100, metavar="N",
                          help="knowledge points to aim for per subject (the paper: about 650; mind "
                               "taxonomy.llm.max_new_tokens), e.g. --points 40")
    generate.add_argument("--taxonomy-dir", metavar="DIR",
                          help="the folder of subject files (default: taxonomy_dir, else the shipped one), "
                               "e.g. --taxonomy-dir ./taxonomy")
    generate.add_argument("--dry-run", action="store_true", help="print the unified diff of the files; write nothing")
    generate.set_defaults(fn=cmd_taxonomy_generate)

    insi = _command(sub, "insi-sim", "measure InSI-SIM, the paper's in-sample image similarity (Table 1), of "
                                     "an OBELICS-format corpus on a seeded sample of its samples", (
        "  textbook insi-sim data/dataset                           # SSIM only, offline\n"
        "  textbook insi-sim data/dataset --clip-model models/clip-vit-large-patch14-336 --pairs pairs.jsonl\n"
        "  textbook insi-sim release.jsonl --images-root /data/release --arithmetic official_script \\\n"
        "      --clip-model models/clip-vit-large-patch14-336"))
    insi.add_argument("source", metavar="DATASET",
                      help="a dataset folder (its obelics/ shards), a folder of .jsonl shards, a .jsonl file or a "
                           ".json array (read whole)")
    insi.add_argument("--samples", type=int, metavar="N",
                      help="samples to measure (default export.insi_sim_samples), e.g. --samples 1000")
    insi.add_argument("--clip-model", metavar="DIR",
                      help="a local CLIP model folder for the CLIP term (default export.insi_sim_clip_model; "
                           "none: the SSIM term alone), e.g. --clip-model models/clip-vit-large-patch14-336")
    insi.add_argument("--arithmetic", choices=["paper", "official_script"],
                      help="the paper's formula, or the official script's arithmetic, which normalises the CLIP "
                           "term twice (default export.insi_sim_arithmetic), e.g. --arithmetic official_script")
    insi.add_argument("--ssim-width", type=int, metavar="PX",
                      help="SSIM on images this wide, 0 as stored (default export.insi_sim_ssim_width), "
                           "e.g. --ssim-width 0")
    insi.add_argument("--seed", type=int, help="seed of the sample choice (default export.seed), e.g. --seed 7")
    insi.add_argument("--device", choices=["cpu", "cuda"], help="where CLIP runs (default export.insi_sim_device), "
                                                                "e.g. --device cuda")
    insi.add_argument("--images-root", metavar="DIR",
                      help="folder relative image paths are read under (default: the dataset folder, or the "
                           "file's folder), e.g. --images-root /data/release")
    insi.add_argument("--pairs", metavar="FILE",
                      help="write every measured sample's pairs (the dataset's insi_sim.jsonl format), "
                           "e.g. --pairs pairs.jsonl")
    insi.set_defaults(fn=cmd_insi_sim)

    from textbook.downstream_cli import register as register_downstream

    register_downstream(sub)  # train, bench
    return p


def _dash_ids(argv: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """Video ids may begin with '-' (YouTube's do, and the demo's ``-newton_laws``): as the value of
    an option (``--video -x``) it is joined as ``--video=-x``; as a positional id of ``retry``
    argparse is told that options have ended."""
    value_options = {o for a in _actions(parser) if a.nargs != 0 for o in a.option_strings}
    options = {o for a in _actions(parser) for o in a.option_strings}
    out: list[str] = []
    for tok in argv:
        if out and out[-1] in value_options and tok.startswith("-") and tok not in value_options:
            out[-1] = f"{out[-1]}={tok}"
        elif "retry" in out and tok.startswith("-") and tok.split("=", 1)[0] not in options and "--" not in out:
            out += ["--", tok]
        else:
            out.append(tok)
    return out


def _actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    out = list(parser._actions)  # argparse offers no public walk over sub-parsers
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out += _actions(sub)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_dash_ids(sys.argv[1:] if argv is None else argv, parser))
    signal.signal(signal.SIGTERM, _raise_terminated)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.fn(args)
    except (CliError, ConfigError) as exc:
        print(f"textbook: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `textbook status | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # any other failure: one line, not a traceback (use -v for details)
        if args.verbose:
            raise
        print(f"textbook: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
