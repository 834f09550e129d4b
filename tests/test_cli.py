"""The command line as people type it: ids that begin with '-', a closed pipe, empty results,
exit codes of a run in which a video failed."""

from __future__ import annotations

import subprocess
import sys

from export_helpers import ClipSpec, add_done_video, add_failed_video, add_knowledge_point, make_context
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
    assert main(["--config", _config(tmp_path, ctx), "status", "--failed"]) == 0
    assert capsys.readouterr().out.strip() == "no failed videos"


def test_a_closed_pipe_ends_quietly(tmp_path):
    ctx = make_context(tmp_path)
    add_knowledge_point(ctx, "math-1")
    for n in range(300):  # more than a pipe buffer holds
        add_failed_video(ctx, f"v{n:03d}", "math-1", error="DownloadError: HTTP Error 403: Forbidden " + "x" * 200)
    cmd = f"{sys.executable} -m textbook.cli --config {_config(tmp_path, ctx)} status --failed | head -n 2"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert proc.stdout.count("\n") == 2 and proc.stderr == "" and proc.returncode == 0
