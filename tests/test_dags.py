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
import yaml

from textbook.dag_files import plan_shims, sync_dag_files
from textbook.taxonomy import load_taxonomy

REPO = Path(__file__).resolve().parents[1]
SHIPPED_TAXONOMY = Path(load_taxonomy().subjects[0].source).parent
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
    out["dags"][dag_id] = {"tags": sorted(dag.tags), "schedule": str(getattr(dag.timetable, "expression", dag.schedule)), "catchup": dag.catchup,
                           "max_active_runs": dag.max_active_runs, "doc_md": dag.doc_md, "tasks": tasks,
                           "display_name": dag.dag_display_name, "description": dag.description,
                           "params": {k: dag.params.get_param(k).schema for k in dag.params}}
print(json.dumps(out))
"""


def parse(tmp_path: Path, taxonomy_dir: Path | None = None, dags: Path = REPO / "dags", **env: str) -> dict:
    full_env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
                **({"TEXTBOOK_TAXONOMY_DIR": str(taxonomy_dir)} if taxonomy_dir else {}), **env}
    proc = subprocess.run([sys.executable, "-c", PROBE, str(dags)], env=full_env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["compaction"] = out["dags"].get("textbook_compaction")
    out["dags"] = {k: v for k, v in out["dags"].items() if k.startswith("textbook__")}  # downstream: test_train_dags
    return out


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> dict:
    return parse(tmp_path_factory.mktemp("dags"))


def test_the_compaction_dag_runs_after_the_nightly_window_one_at_a_time(shipped, tmp_path):
    dag = shipped["compaction"]
    assert dag["schedule"] == "0 7 * * *" and dag["max_active_runs"] == 1 and not dag["catchup"]
    assert dag["tasks"]["compact"]["pool"] == "textbook_pack"  # compactions of the shared dataset never overlap
    assert parse(tmp_path, TEXTBOOK_DAGS__COMPACTION_SCHEDULE="none")["compaction"]["schedule"] == "None"


def test_every_knowledge_point_has_a_dag_without_import_errors(shipped):
    assert shipped["errors"] == {}
    kps = load_taxonomy().knowledge_points
    assert set(shipped["dags"]) == {kp.dag_id for kp in kps}
    demo = shipped["dags"]["textbook__demo__intro__basics__lectures"]
    assert demo["tags"] == ["course:intro", "level:undergraduate", "subject:demo"]
    assert "Demo" in demo["doc_md"] and "search query" in demo["doc_md"]
    kp = load_taxonomy().get("demo.intro.basics.lectures")
    assert demo["display_name"] == kp.path == "Demo / Introduction / Basics / Demo lectures"
    assert demo["description"].startswith("Textbook videos for 'Demo lectures' (undergraduate)")


def test_every_dag_declares_its_run_params_with_json_schemas(shipped):
    stages = ["metadata", "download", "audio", "transcript", "filters", "refine", "clips", "keyframes", "ocr", "visual_filter",
              "qa_cycles", "qa_mcq", "slide_vqa", "video_captions", "video_qa"]
    for dag_id, dag in shipped["dags"].items():
        params = dag["params"]
        assert params["limit"]["type"] == ["null", "integer"] and params["limit"]["minimum"] == 1, dag_id
        assert params["source"]["enum"] == [None, "youtube", "urls", "local"]
        assert params["dry_run"]["type"] == "boolean"
        assert params["force_stage"]["enum"] == [None, *stages]


def test_every_dag_has_tags_owner_retries_and_the_video_chain(shipped):
    for dag_id, dag in shipped["dags"].items():
        assert dag["tags"] and dag["catchup"] is False and dag["max_active_runs"] == 1, dag_id
        tasks = dag["tasks"]
        assert sorted(tasks) == sorted(["search", "video.metadata_download", "video.audio_transcript", "video.filters_refine",
                                        "video.clips", "video.keyframes", "video.ocr", "video.visual_filter",
                                        "video.qa_cycles_qa_mcq", "video.slide_vqa",
                                        "video.video_captions_video_qa", "pack"])
        assert tasks["video.metadata_download"]["upstream"] == ["search"]
        assert tasks["pack"]["upstream"] == ["video.video_captions_video_qa"]
        assert all(t["owner"] == "textbook" and t["timeout"] for t in tasks.values()), dag_id
        # retries with exponential backoff on network tasks only
        assert {k for k, t in tasks.items() if t["retries"] > 0} == {"search", "video.metadata_download", "video.filters_refine",
                                                                     "video.qa_cycles_qa_mcq", "video.slide_vqa",
                                                                     "video.video_captions_video_qa"}
        assert all(t["backoff"] > 1 for t in tasks.values() if t["retries"] > 0)
        assert tasks["video.metadata_download"]["pool"] == "youtube"
        assert {k for k, t in tasks.items() if t["queue"] == "gpu"} == {
            "video.audio_transcript", "video.filters_refine", "video.visual_filter", "video.slide_vqa",
            "video.video_captions_video_qa"}
        assert all(t["map_index_template"] for k, t in tasks.items() if k.startswith("video."))
        # packs of different knowledge points write different parts: they run side by side
        assert tasks["pack"]["trigger_rule"] == "all_done" and tasks["pack"]["pool"] == "default_pool"
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
    shutil.copytree(SHIPPED_TAXONOMY, tax)
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


def test_the_shipped_dag_files_match_the_shipped_taxonomy():
    """One DAG file per shipped subject file, as `python -m textbook.dag_files` writes them."""
    shims = plan_shims(None)
    assert len(shims) == len(load_taxonomy().subjects)
    for name, text in shims.items():
        assert (REPO / "dags" / name).read_text() == text, f"dags/{name} is stale: run python -m textbook.dag_files"


def _dag_folder(tmp_path: Path, taxonomy: Path, sync: bool = True) -> Path:
    dags = tmp_path / "dags"
    shutil.copytree(REPO / "dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
    if sync:
        sync_dag_files(dags, taxonomy)
    return dags


BROKEN = "subject: {id: broken, name: Broken}\ncourses:\n  - name: Course\n    sub_courses: [oops\n"


def test_a_broken_subject_file_breaks_only_its_own_dags(tmp_path):
    tax = tmp_path / "taxonomy"
    shutil.copytree(SHIPPED_TAXONOMY, tax)
    (tax / "broken.yaml").write_text(BROKEN)
    out = parse(tmp_path, tax, dags=_dag_folder(tmp_path, tax))
    assert list(out["errors"]) == [str(tmp_path / "dags" / "textbook_subject_broken.py")]
    assert "broken.yaml" in next(iter(out["errors"].values()))
    assert set(out["dags"]) == {kp.dag_id for kp in load_taxonomy().knowledge_points}


def test_a_broken_subject_without_a_dag_file_of_its_own_spares_those_with_one(tmp_path):
    """Before `python -m textbook.dag_files` runs, a new subject is built by the fallback file."""
    tax = tmp_path / "taxonomy"
    shutil.copytree(SHIPPED_TAXONOMY, tax)
    (tax / "broken.yaml").write_text(BROKEN)
    out = parse(tmp_path, tax, dags=_dag_folder(tmp_path, tax, sync=False))
    assert list(out["errors"]) == [str(tmp_path / "dags" / "textbook_knowledge_points.py")]
    assert "python -m textbook.dag_files" in next(iter(out["errors"].values()))
    assert set(out["dags"]) == {kp.dag_id for kp in load_taxonomy().knowledge_points}


COPY_PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from airflow.serialization.serialized_objects import DagSerialization
from textbook_dag_factory import DagBuilder, build_dag, parts_asset
from textbook.config import load_settings
from textbook.taxonomy import load_taxonomy
settings = load_settings()
parts = parts_asset(settings)
builder = DagBuilder(settings.dags, parts)
kps = load_taxonomy().knowledge_points
ser = lambda d: json.dumps(DagSerialization.to_dict(d), sort_keys=True, default=str)
print(json.dumps([kp.dag_id for kp in kps if ser(builder.build(kp)) != ser(build_dag(kp, settings.dags, parts))]))
"""


@pytest.mark.parametrize("schedule", ["nightly", "none"])
def test_a_copied_dag_serializes_like_one_built_for_its_knowledge_point(tmp_path, schedule):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "TEXTBOOK_DAGS__SCHEDULE": schedule}
    proc = subprocess.run([sys.executable, "-c", COPY_PROBE, str(REPO / "plugins")], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def _compose_timeout() -> str:
    env = yaml.safe_load((REPO / "docker-compose.yaml").read_text())["x-airflow-common"]["environment"]
    assert int(env["AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT"]) > int(env["AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT"])
    return env["AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT"]


@pytest.mark.slow
def test_a_4000_knowledge_point_folder_parses_under_the_configured_timeout(tmp_path):
    sys.path.insert(0, str(REPO / "bench"))
    from dag_parse import write_taxonomy

    tax = tmp_path / "taxonomy"
    tax.mkdir()
    assert write_taxonomy(tax, 8, 5, 10, 10) == 4000
    dags = _dag_folder(tmp_path, tax)
    assert len(list(dags.glob("textbook_subject_*.py"))) == 16  # 500 points a subject, 250 a file
    out = parse(tmp_path, tax, dags=dags, AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT=_compose_timeout())
    assert out["errors"] == {}
    assert len(out["dags"]) == 4000
