"""The knowledge-point DAG factory, parsed by a real Airflow DagBag in a separate process."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from textbook.taxonomy import load_taxonomy

REPO = Path(__file__).resolve().parents[1]
PROBE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    tasks = {}
    for t in dag.tasks:
        tasks[t.task_id] = {"retries": t.retries, "queue": t.queue, "pool": t.pool, "owner": t.owner,
                            "map_index_template": t.map_index_template, "trigger_rule": getattr(t.trigger_rule, "value", t.trigger_rule),
                            "backoff": t.retry_exponential_backoff, "timeout": t.execution_timeout.total_seconds()
                            if t.execution_timeout else None,
                            "upstream": sorted(t.upstream_task_ids)}
    out["dags"][dag_id] = {"tags": sorted(dag.tags), "schedule": str(dag.schedule), "catchup": dag.catchup,
                           "max_active_runs": dag.max_active_runs, "doc_md": dag.doc_md, "tasks": tasks}
print(json.dumps(out))
"""


def parse(tmp_path: Path, taxonomy_dir: Path | None = None, **env: str) -> dict:
    full_env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
                **({"TEXTBOOK_TAXONOMY_DIR": str(taxonomy_dir)} if taxonomy_dir else {}), **env}
    proc = subprocess.run([sys.executable, "-c", PROBE, str(REPO / "dags")], env=full_env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["dags"] = {k: v for k, v in out["dags"].items() if k.startswith("textbook__")}  # downstream: test_train_dags
    return out


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> dict:
    return parse(tmp_path_factory.mktemp("dags"))


def test_every_knowledge_point_has_a_dag_without_import_errors(shipped):
    assert shipped["errors"] == {}
    kps = load_taxonomy().knowledge_points
    assert set(shipped["dags"]) == {kp.dag_id for kp in kps}
    demo = shipped["dags"]["textbook__demo__intro__basics__lectures"]
    assert demo["tags"] == ["course:intro", "subject:demo"]
    assert "Demo" in demo["doc_md"] and "search query" in demo["doc_md"]


def test_every_dag_has_tags_owner_retries_and_the_video_chain(shipped):
    for dag_id, dag in shipped["dags"].items():
        assert dag["tags"] and dag["catchup"] is False and dag["max_active_runs"] == 1, dag_id
        tasks = dag["tasks"]
        assert sorted(tasks) == sorted(["search", "video.download", "video.transcript", "video.filters",
                                        "video.clips", "video.keyframes", "video.ocr", "video.clip_filter", "pack"])
        assert tasks["video.download"]["upstream"] == ["search"]
        assert tasks["pack"]["upstream"] == ["video.clip_filter"]
        assert all(t["owner"] == "textbook" and t["timeout"] for t in tasks.values()), dag_id
        # retries with exponential backoff on network tasks only
        assert {k for k, t in tasks.items() if t["retries"] > 0} == {"search", "video.download", "video.filters"}
        assert all(t["backoff"] > 1 for t in tasks.values() if t["retries"] > 0)
        assert tasks["video.download"]["pool"] == "youtube"
        assert {k for k, t in tasks.items() if t["queue"] == "gpu"} == {
            "video.transcript", "video.filters", "video.clip_filter"}
        assert all(t["map_index_template"] for k, t in tasks.items() if k.startswith("video."))
        assert tasks["pack"]["trigger_rule"] == "all_done" and tasks["pack"]["pool"] == "textbook_pack"
        assert tasks["video.keyframes"]["upstream"] == ["search", "video.clips"]  # ids come from search


def test_nightly_schedules_are_spread_over_the_window(shipped):
    minutes = []
    for dag in shipped["dags"].values():
        m = re.fullmatch(r"(\d+) (\d+) \* \* \*", dag["schedule"])
        assert m, dag["schedule"]
        minutes.append(int(m.group(2)) * 60 + int(m.group(1)))
    assert all(60 <= m < 6 * 60 for m in minutes)  # 01:00 + 5 h window
    assert len(set(minutes)) > len(minutes) // 3  # not all at once


def test_adding_a_subject_file_adds_its_dags(tmp_path):
    tax = tmp_path / "taxonomy"
    shutil.copytree(Path(load_taxonomy().subjects[0].source).parent, tax)
    before = set(parse(tmp_path, tax)["dags"])
    (tax / "astronomy.yaml").write_text(
        "subject: {id: astronomy, name: Astronomy, level: 3}\n"
        "courses:\n  - id: solar\n    name: Solar system\n    sub_courses:\n"
        "      - id: planets\n        name: Planets\n        knowledge_points:\n"
        "          - {name: Kepler's laws}\n          - {name: Tides, query: ocean tides moon lecture}\n")
    after = parse(tmp_path, tax)
    assert set(after["dags"]) - before == {"textbook__astronomy__solar__planets__keplers-laws",
                                           "textbook__astronomy__solar__planets__tides"}
    assert after["errors"] == {}


def test_a_task_parse_builds_only_its_dag(tmp_path):
    one = "textbook__demo__intro__basics__lectures"
    out = parse(tmp_path, _AIRFLOW_PARSING_CONTEXT_DAG_ID=one, _AIRFLOW_PARSING_CONTEXT_TASK_ID="search")
    assert list(out["dags"]) == [one]


def test_schedule_can_be_turned_off_or_set(tmp_path):
    assert {d["schedule"] for d in parse(tmp_path, TEXTBOOK_DAGS__SCHEDULE="none")["dags"].values()} == {"None"}
