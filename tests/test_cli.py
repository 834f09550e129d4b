"""The command line as people type it: ids that begin with '-', a closed pipe, empty results,
exit codes of a run in which a video failed, knowledge-point listing, help, progress."""

from __future__ import annotations

import subprocess
import sys

from export_helpers import ClipSpec, add_done_video, add_failed_video, add_knowledge_point, make_context, register
from textbook.cli import main


def _config(tmp_path, ctx) -> str:
    cfg = tmp_path / "settings.yaml"
    cfg.write_text(f"data_root: {ctx.settings.data_root}\n")
    return str(cfg)


def test_ids_that_begin_with_a_dash_work_as_typed(tmp_path, capsys):
    ctx = make_context(tmp_path)
    add_knowledge_point(ctx, "math-1")
    add_done_video(ctx, "-newton_laws", "math-1", [ClipSpec(0.0, 12.0, "force and mass", ocr=("F = ma",))])
    cfg = _config(tmp_path, ctx)
    assert main(["--config", cfg, "status", "--video", "-newton_laws"]) == 0
    assert capsys.readouterr().out.startswith("-newton_laws  done")
    assert main(["--config", cfg, "retry", "-newton_laws"]) == 0
    assert "-newton_laws: done, nothing to retry" in capsys.readouterr().out


def test_empty_results_say_so(tmp_path, capsys):
    ctx = make_context(tmp_path)
    cfg = _config(tmp_path, ctx)
    assert main(["--config", cfg, "status", "--failed"]) == 0
    assert capsys.readouterr().out.strip() == "no failed videos"
    hint = "`textbook run --kp ID` finds them (`textbook kps` lists the ids)"
    assert main(["--config", cfg, "status"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"no videos yet: {hint}"
    assert main(["--config", cfg, "plan", "--subject", "physics"]) == 0
    assert capsys.readouterr().out.strip() == f"no videos there yet: nothing would run again; {hint}"
    assert main(["--config", cfg, "export"]) == 0
    assert "no finished video yet: the dataset is empty" in capsys.readouterr().out


def test_a_closed_pipe_ends_quietly(tmp_path):
    ctx = make_context(tmp_path)
    add_knowledge_point(ctx, "math-1")
    for n in range(300):  # more than a pipe buffer holds
        add_failed_video(ctx, f"v{n:03d}", "math-1", error="DownloadError: HTTP Error 403: Forbidden " + "x" * 200)
    cmd = f"{sys.executable} -m textbook.cli --config {_config(tmp_path, ctx)} status --failed | head -n 2"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert proc.stdout.count("\n") == 2 and proc.stderr == "" and proc.returncode == 0


def test_kps_lists_ids_with_filters_and_counts(tmp_path, capsys):
    ctx = make_context(tmp_path)
    cfg = _config(tmp_path, ctx)
    assert main(["--config", cfg, "kps", "--subject", "physics", "--course", "mechanics", "--level", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    kps = ctx.taxonomy.select(subject="physics", course="mechanics")
    wanted = [kp.id for kp in kps if kp.level == 3]
    assert out[0] == f"{len(wanted)} knowledge point(s) in 1 course(s) of 1 subject(s); 0 videos found so far"
    assert [line.split()[0] for line in out[1:]] == wanted
    add_knowledge_point(ctx, "demo.intro.basics.lectures")
    add_done_video(ctx, "vid1", "demo.intro.basics.lectures", [ClipSpec(0.0, 12.0, "one two three")])
    assert main(["--config", cfg, "kps", "--subject", "demo"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("; 1 videos found so far") and out[1].split()[:5] == [
        "demo.intro.basics.lectures", "level", "4", "undergraduate", "1"]
    assert main(["--config", cfg, "kps", "--subject", "demo", "--level", "1"]) == 0
    assert capsys.readouterr().out.strip() == "no knowledge points at level 1 in subject demo; levels there: 4"
    assert main(["--config", cfg, "kps", "--subject", "nope"]) == 1
    assert "unknown subject 'nope'" in capsys.readouterr().err


def _subparsers(parser):
    import argparse

    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_command_and_option_is_explained_with_an_example(capsys):
    from textbook.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["plan", "--config", "new.yaml"]).config == "new.yaml"  # as the README writes it
    assert parser.parse_args(["--config", "a.yaml", "plan"]).config == "a.yaml"  # not hidden by the sub-command
    top = parser.format_help()
    assert "``" not in top and "examples:" in top and "textbook demo --no-airflow" in top
    commands = dict(_subparsers(parser))
    commands.update({f"taxonomy {name}": sub for name, sub in _subparsers(commands["taxonomy"]).items()})
    for name, sub in commands.items():
        if name == "retry":  # its options are being reworked elsewhere
            continue
        text = sub.format_help()
        assert "examples:" in text and f"textbook {name}" in text.split("examples:")[1], name
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings[0]} has no help"
                if action.nargs != 0:  # an option with a value shows one
                    assert "e.g." in action.help, f"{name} {action.option_strings[0]} has no example"


def test_long_commands_report_each_stage_and_an_eta(tmp_path):
    import io

    from textbook.pipeline import STAGES, run_video
    from textbook.progress import Progress, StateWatcher

    ctx = make_context(tmp_path)
    add_knowledge_point(ctx, "math-1")
    add_done_video(ctx, "vid1", "math-1", [ClipSpec(0.0, 12.0, "one two three")])
    heard = []
    run_video("vid1", ctx, on_stage=lambda *a: heard.append(a))
    assert heard == []  # every stage finished before: nothing to report

    out = io.StringIO()
    progress = Progress(2, stream=out)
    progress.stage("vid1", "keyframes", 7, 9)
    progress.video("vid1", "done")
    progress.video("vid2", "filtered")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[0/2 videos · 0:00 · ETA after the first video] vid1: keyframes (7/9)")
    assert lines[1].startswith("[1/2 videos · 0:00 · ETA 0:00] vid1: done")
    assert lines[2] == "[2/2 videos · 0:00 · finished] vid2: filtered"

    watched = io.StringIO()
    watcher = StateWatcher(ctx, "math-1", stream=watched)
    progress = Progress(0, stream=watched)
    watcher.poll(progress)  # the state before the run: nothing reported
    register(ctx, "vid2", "math-1")
    assert ctx.db.claim("vid2", "download", "fp", "token")
    watcher.poll(progress)
    n, of = next(k for k, s in enumerate(STAGES, 1) if s.name == "download"), len(STAGES)
    assert watched.getvalue().splitlines() == [
        f"[0/2 videos · 0:00 · ETA after the first video] vid2: download ({n}/{of})"]
