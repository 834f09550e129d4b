"""The demo through Airflow: the demo knowledge point's DAG, then the compaction DAG, each run by
``airflow dags test``.

Airflow runs as a separate process on the embedded default (SQLite metadata in a project-local
AIRFLOW_HOME, examples off); the library never imports Airflow. The same environment serves the
tests that drive the DAG.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from textbook.config import Settings
from textbook.context import Context
from textbook.demo.job import DEMO_KP, DemoResult, demo_settings, prepare_course
from textbook.progress import StateWatcher, step

REPO = Path(__file__).resolve().parents[2]


class AirflowRunError(RuntimeError):
    """An Airflow command failed; the message names it and where its log is."""


def airflow_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for Airflow commands: project-local home, our dags/ and plugins/, our settings."""
    home = settings.data_path / "airflow"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "TEXTBOOK_DATA_ROOT": str(settings.data_path),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    env.update(extra or {})
    return env


def airflow(args: list[str], env: dict[str, str], log: Path, check: bool = True) -> int:
    """Run one `airflow` CLI command, its output appended to ``log``; its exit status."""
    exe = shutil.which("airflow", path=str(Path(sys.executable).parent)) or shutil.which("airflow")
    if exe is None:
        raise AirflowRunError("the airflow command is not installed (make setup installs it)")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        out.write(f"\n$ airflow {' '.join(args)}\n")
        out.flush()
        proc = subprocess.run([exe, *args], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    if check and proc.returncode != 0:
        raise AirflowRunError(f"`airflow {' '.join(args)}` exited with {proc.returncode}; see {log}")
    return proc.returncode


def prepare_airflow(settings: Settings, env: dict[str, str], log: Path) -> None:
    """Create (or migrate) Airflow's metadata database and the pools our DAGs name."""
    airflow(["db", "migrate"], env, log)
    if settings.dags.download_pool:
        airflow(["pools", "set", settings.dags.download_pool, "4", "concurrent downloads from video sites"], env, log)
    if settings.dags.gpu_pool:
        airflow(["pools", "set", settings.dags.gpu_pool, "1", "one slot per GPU"], env, log)
    if settings.dags.pack_pool:
        airflow(["pools", "set", settings.dags.pack_pool, "1", "one export of the shared dataset at a time"], env, log)


COMPACTION_DAG = "textbook_compaction"


def dag_test(settings: Settings, kp_id: str | None, extra_env: dict[str, str] | None = None) -> tuple[int, Path]:
    """`airflow dags test` of one knowledge point's DAG (or, with None, of the compaction DAG):
    its exit status (non-zero when the run failed, e.g. the DAG did not import; a failed video
    does not fail the run) and the log file."""
    from textbook.taxonomy import load_taxonomy

    dag_id = load_taxonomy(settings.taxonomy_dir or None).get(kp_id).dag_id if kp_id else COMPACTION_DAG
    env = airflow_env(settings, extra_env)
    log = settings.data_path / "airflow" / "logs" / f"dags-test-{dag_id}.log"
    prepare_airflow(settings, env, log)
    return airflow(["dags", "test", dag_id], env, log, check=False), log


def run_demo_through_airflow(settings: Settings, port: int = 8765, config_file: str | None = None) -> DemoResult:
    from textbook.demo.serve import DemoServer
    from textbook.export import validate_dataset

    course = prepare_course(settings)
    urls_file = settings.data_path / "demo-urls.txt"
    extra = {"TEXTBOOK_SEARCH__SOURCE": "urls", "TEXTBOOK_SEARCH__URLS_FILE": str(urls_file)}
    if config_file:
        extra["TEXTBOOK_CONFIG"] = str(Path(config_file).resolve())
    watcher = StateWatcher(Context.from_settings(settings), DEMO_KP)
    step(f"airflow dags test {DEMO_KP}: metadata database, then the DAG; progress read from the state database")
    with DemoServer(course, port=port) as server:
        urls_file.write_text("\n".join(server.urls()) + "\n")
        watcher.start()
        try:
            rc, log = dag_test(settings, DEMO_KP, extra)
        finally:
            watcher.stop()
    if rc != 0:
        raise AirflowRunError(f"the demo DAG run failed (exit {rc}); see {log}")
    rc, compaction_log = dag_test(settings, None, extra)
    if rc != 0:
        raise AirflowRunError(f"the compaction DAG run failed (exit {rc}); see {compaction_log}")
    ctx = Context.from_settings(demo_settings(settings, urls_file))
    final = {row.video_id: row.status for row in ctx.db.videos(kp_ids=[DEMO_KP])}
    root = settings.export_root
    problems = validate_dataset(root)
    if problems:
        raise RuntimeError(f"the demo dataset breaks FORMAT.md: {problems[:3]}")
    samples = sum(json.loads((root / "obelics" / "length.json").read_text()).values())
    images = sum(1 for p in (root / "images").rglob("*.jpg"))
    packed = {"root": str(root), "report": str(root / "report" / "index.html"), "samples": samples,
              "images": images, "videos": sum(1 for s in final.values() if s == "done"), "log": str(log),
              "compaction_log": str(compaction_log)}
    return DemoResult(ctx, final, packed)
