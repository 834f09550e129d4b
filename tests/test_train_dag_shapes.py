"""The downstream DAGs as a real Airflow DagBag sees them (a separate process): schedules, queues,
pools, the task graph, and a task's parse building only its own DAG."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROBE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    cond = getattr(dag.timetable, "asset_condition", None)
    out["dags"][dag_id] = {"schedule": [getattr(a, "name", str(a)) for a in getattr(cond, "objects", [])],
                           "params": sorted(dag.params.keys()),
                           "tasks": {t.task_id: {"queue": t.queue, "pool": t.pool, "upstream": sorted(t.upstream_task_ids),
                                                 "outlets": [o.name for o in t.outlets]} for t in dag.tasks}}
print(json.dumps(out))
"""


def _parse(tmp_path: Path, **env: str) -> dict:
    full = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"), "TEXTBOOK_DATA_ROOT": str(tmp_path), **env,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "plugins"), os.environ.get("PYTHONPATH", "")]))}
    proc = subprocess.run([sys.executable, "-c", PROBE, str(REPO / "dags" / "textbook_downstream.py")], env=full,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_downstream_dags_chain_corpus_checkpoint_and_benchmark_assets(tmp_path):
    out = _parse(tmp_path)
    assert out["errors"] == {}
    dags = out["dags"]
    assert set(dags) == {"textbook_pretrain", "textbook_benchmark", "textbook_ablation_shuffle"}
    pre, bench, abl = dags["textbook_pretrain"], dags["textbook_benchmark"], dags["textbook_ablation_shuffle"]
    assert "textbook_corpus" in pre["schedule"] and "textbook_checkpoint" in bench["schedule"]
    assert abl["schedule"] == []
    assert pre["tasks"]["train"] == {"queue": "train", "pool": "train_gpus", "upstream": ["prepare"], "outlets": []}
    assert pre["tasks"]["prepare"]["queue"] == "train" and pre["tasks"]["publish"]["outlets"] == ["textbook_checkpoint"]
    assert bench["tasks"]["evaluate"]["queue"] == "gpu" and bench["tasks"]["publish"]["outlets"] == ["textbook_benchmark"]
    assert {"corpus_uri", "preset", "overrides", "config_file"} <= set(pre["params"])
    assert {"ratios", "bench_overrides"} <= set(abl["params"])
    assert abl["tasks"]["plot"]["upstream"] == ["benchmark"] and abl["tasks"]["train"]["pool"] == "train_gpus"


def test_a_task_parse_builds_only_its_dag(tmp_path):
    out = _parse(tmp_path, _AIRFLOW_PARSING_CONTEXT_DAG_ID="textbook_benchmark", _AIRFLOW_PARSING_CONTEXT_TASK_ID="resolve")
    assert list(out["dags"]) == ["textbook_benchmark"]
