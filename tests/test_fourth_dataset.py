"""Adding a dataset is one module plus one registration: ``tests/fourth_dataset/outline.py`` (its
settings, stage, view and declaration), registered as an entry point of an installed distribution,
with no edit to the library. The pipeline, the task plan, the settings, the DAG, the export, the
card, the validator and the plugin's counts pick it up; without the registration none of them know it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from airflow_server import free_port

from textbook.tasks import STAGE_NAMES

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def installed(tmp_path: Path) -> dict[str, str]:
    """The environment of a Python that has the outline dataset installed: its module, and a
    distribution whose entry point registers it (what `pip install` of its package leaves)."""
    site = tmp_path / "site"
    dist = site / "textbook_outline-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: textbook-outline\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[textbook.datasets]\noutline = outline\n")
    shutil.copy(HERE / "fourth_dataset" / "outline.py", site / "outline.py")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)}


def python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO, timeout=120)


PLAN = """
import json, sys
from textbook.tasks import TASK_PLAN
light = sorted(m for m in ("textbook.pipeline", "textbook.context", "textbook.stages.qa", "PIL") if m in sys.modules)
from textbook.config import load_settings
from textbook.pipeline import STAGES
from textbook.export.views import registered
from textbook.export.files import owned_folders
s = load_settings(environ={"TEXTBOOK_OUTLINE__MAX_TITLE_CHARS": "40"})
print(json.dumps({"tasks": [t.task_id for t in TASK_PLAN], "stages": [x.name for x in STAGES], "light": light,
                  "views": [v.name for v in registered()], "folders": list(owned_folders()),
                  "outline": s.to_dict()["outline"], "hash": s.section_hash("outline")}))
"""


def test_one_registration_puts_the_dataset_in_the_plan_the_pipeline_and_the_settings(tmp_path):
    env = installed(tmp_path)
    out = python(PLAN, env)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["tasks"][-1] == "outline" and got["stages"][-1] == "outline"
    assert got["stages"][:-1] == list(STAGE_NAMES)  # the corpus chain and the built-in datasets, unchanged
    assert got["light"] == []  # the task plan read the declaration without importing any stage (DAG parsing)
    assert got["views"][-2:] == ["outline", "insi_sim"] and "outline" in got["folders"]
    assert got["outline"] == {"enabled": True, "knowledge_points": [], "min_title_chars": 3, "max_title_chars": 40}
    assert "outline" not in STAGE_NAMES  # this process has no such registration

    bad = python("from textbook.config import load_settings; load_settings(outline={'max_title_chars': 2})", env)
    assert bad.returncode != 0 and "settings.outline.max_title_chars: 2 must be at least 8" in bad.stderr
    unknown = python("from textbook.config import load_settings; load_settings(outline={'titles': 2})", env)
    assert "settings.outline: unknown key(s) titles" in unknown.stderr
    absent = python("from textbook.config import load_settings; load_settings(outline={})", os.environ)
    assert "unknown key(s) outline" in absent.stderr  # without the registration the section is not a setting


def test_a_broken_registration_names_the_entry_point_and_its_package(tmp_path):
    env = installed(tmp_path)
    (tmp_path / "site" / "outline.py").write_text("DATASET = 'not a declaration'\n")
    out = python("import textbook.tasks", env)
    assert out.returncode != 0
    assert "entry point outline (textbook-outline) outline: DATASET is a str, not a textbook Dataset" in out.stderr


@pytest.mark.slow
def test_the_demo_through_airflow_runs_and_ships_the_fourth_dataset(tmp_path):
    env = {**installed(tmp_path), "TEXTBOOK_DATA_ROOT": str(tmp_path / "data"), "OMP_THREAD_LIMIT": "1"}
    demo = subprocess.run([str(Path(sys.executable).parent / "textbook"), "demo", "--port", str(free_port())],
                          env=env, capture_output=True, text=True, cwd=REPO, timeout=1200)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    root = tmp_path / "data" / "dataset"
    videos = {v["video_id"]: v for v in map(json.loads, (root / "videos.jsonl").read_text().splitlines())}
    done = {vid for vid, v in videos.items() if v["status"] == "done"}
    outlines = {r["video_id"]: r for r in map(json.loads, (root / "outline" / "outline.jsonl").read_text().splitlines())}
    assert set(outlines) == done and len(done) >= 4
    titles = [t["title"] for r in outlines.values() for t in r["titles"]]
    assert any("Derivatives" in t for t in titles) and any("Newton" in t for t in titles)  # read off the slides
    for r in outlines.values():
        assert len({t["title"] for t in r["titles"]}) >= 1 and all(len(t["title"]) <= 80 for t in r["titles"])
    card = (root / "README.md").read_text()
    assert f"`outline/outline.jsonl`: the outline of {len(done)} lecture(s), {len(titles)} slide title(s)" in card

    progress = python("""
import json
from textbook.context import Context
from dataclasses import asdict
from textbook.status import dataset_progress
ctx = Context.from_settings()
runs = [ctx.db.run(v.video_id, "outline") for v in ctx.db.videos()]
print(json.dumps({"progress": [asdict(l) for l in dataset_progress(ctx) if l.view == "outline"],
                  "ran": sorted(r.video_id for r in runs if r is not None and r.status == "done")}))
""", env)
    assert progress.returncode == 0, progress.stderr
    got = json.loads(progress.stdout)
    assert got["ran"] == sorted(done)  # the DAG's outline task ran on every kept video
    [line] = got["progress"]
    assert (line["stage"], line["videos"], line["items"]) == ("outline", len(done), len(titles))


def test_a_declaration_whose_tasks_do_not_run_its_stages_is_refused(tmp_path):
    env = installed(tmp_path)
    module = tmp_path / "site" / "outline.py"
    module.write_text(module.read_text().replace('tasks=(TaskSpec(("outline",)),)',
                                                 'tasks=(TaskSpec(("outline",), queue="gpu"),)'))
    out = python("import textbook.pipeline", env)
    assert "dataset outline: task outline must be on the gpu queue exactly when one of its stages runs a model" \
        in out.stderr
    module.write_text(module.read_text().replace('stages=("outline:run",)', 'stages=("outline:titles",)'))
    out = python("import textbook.pipeline", env)
    assert "dataset outline: its stages" in out.stderr and "are not the ones its tasks run" in out.stderr
