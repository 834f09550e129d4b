"""Corpus event -> pretraining -> checkpoint event -> benchmark table, under real Airflow.

`airflow dags test` (SQLite metadata) runs the demo knowledge point's DAG, then the compaction DAG,
which exports the finished videos and emits ``textbook_corpus``; then ``textbook_pretrain`` reads that event, trains
the tiny random LLaVA with a real two-process ``accelerate launch`` and emits
``textbook_checkpoint``; then ``textbook_benchmark`` evaluates that checkpoint (transformers
backend) on a synthetic benchmark and emits ``textbook_benchmark``. The unchanged corpus does not
retrain. The taxonomy is cut to the demo subject so each `airflow dags test` parses few DAGs.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml
from downstream_helpers import write_tinybench
from export_helpers import ClipSpec, add_done_video, add_knowledge_point, make_context

from textbook.demo.job import DEMO_KP
from textbook.demo.through_airflow import COMPACTION_DAG, airflow, airflow_env, prepare_airflow
from textbook.state import StateDB
from textbook.train.registry import runs as train_runs

pytestmark = pytest.mark.slow


def _events(home: Path) -> list[tuple[str, dict]]:
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute("SELECT a.name, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id ORDER BY e.id")
        return [(name, json.loads(extra)) for name, extra in rows.fetchall()]


def _states(home: Path, dag_id: str) -> list[dict[str, str]]:
    with sqlite3.connect(home / "airflow.db") as db:
        runs = [r[0] for r in db.execute("SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id", (dag_id,))]
        return [dict(db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
                                (dag_id, run)).fetchall()) for run in runs]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("downstream-dags")
    ctx = make_context(tmp)
    add_knowledge_point(ctx, "k1")
    for n in range(3):
        add_done_video(ctx, f"vid{n}", "k1", [
            ClipSpec(0.0, 12.0, f"the triangle has three sides lesson {n}", keyframes=2, ocr=("Triangles", "Angles")),
            ClipSpec(12.0, 25.0, "a square has four equal sides", keyframes=1, ocr=("Squares",))])
    settings = ctx.settings
    bench = write_tinybench(tmp / "tinybench")
    (settings.data_path / "downstream.yaml").write_text(yaml.safe_dump({
        "train": {"preset": "tiny-cpu", "optim": {"max_steps": 6}, "checkpoint": {"every_steps": 3}},
        "benchmark": {"data_root": str(tmp / "tinybench"), "tasks": ["okvqa", "mathvista"], "shots": [0, 1, 2],
                      "modes": ["rices", "cheat"], "max_items": 3, "backend": "hf", "max_new_tokens": 3}}))
    (tmp / "empty").mkdir()
    (tmp / "taxonomy").mkdir()
    shutil.copy(Path(__file__).parents[1] / "textbook" / "taxonomy" / "demo.yaml", tmp / "taxonomy" / "demo.yaml")
    env = airflow_env(settings, {"TEXTBOOK_SEARCH__SOURCE": "local", "TEXTBOOK_SEARCH__LOCAL_DIR": str(tmp / "empty"),
                                 "TEXTBOOK_DAGS__SCHEDULE": "none", "TEXTBOOK_TAXONOMY_DIR": str(tmp / "taxonomy")})
    log = settings.data_path / "airflow" / "dags-test.log"
    prepare_airflow(settings, env, log)
    airflow(["pools", "set", "train_gpus", "1", "one training run per GPU host"], env, log)
    kp_dag = ctx.taxonomy.get(DEMO_KP).dag_id
    rcs = {"pack": airflow(["dags", "test", kp_dag], env, log, check=False),
           "compaction": airflow(["dags", "test", COMPACTION_DAG], env, log, check=False),
           "pretrain": airflow(["dags", "test", "textbook_pretrain"], env, log, check=False),
           "benchmark": airflow(["dags", "test", "textbook_benchmark"], env, log, check=False)}
    return settings, rcs, log, bench


def test_the_corpus_event_trains_and_publishes_a_checkpoint(world):
    settings, rcs, log, _ = world
    assert rcs["pack"] == rcs["compaction"] == rcs["pretrain"] == 0, log.read_text()[-4000:]
    home = settings.data_path / "airflow"
    events = _events(home)
    assert [n for n, _ in events][:2] == ["textbook_corpus", "textbook_checkpoint"]
    ckpt = events[1][1]
    assert ckpt["steps"] == 6 and ckpt["preset"] == "tiny-cpu" and ckpt["final_loss"] > 0
    final = Path(ckpt["uri"].removeprefix("file://"))
    assert (final / "model.safetensors").is_file() and "corpus fingerprint" in (final / "MODEL_CARD.md").read_text()
    assert "world size 2" in log.read_text()  # the two ranks' output streamed into the task log
    [row] = train_runs(StateDB(settings.db_url))
    assert (row.status, row.steps, row.checkpoint_uri) == ("done", 6, ckpt["uri"])


def test_the_checkpoint_event_benchmarks_it_into_tables(world):
    settings, rcs, log, _ = world
    assert rcs["benchmark"] == 0, log.read_text()[-4000:]
    events = _events(settings.data_path / "airflow")
    bench = [extra for name, extra in events if name == "textbook_benchmark"]
    assert len(bench) == 1 and set(bench[0]["avg_by_shot"]) == {"0", "1", "2"}
    out = settings.data_path / "benchmarks" / bench[0]["run_id"]
    model = bench[0]["models"][0]
    table2 = (out / "table2.md").read_text()
    assert f"| {model} |" in table2 and "Textbook (paper), not reproduced here" in table2
    print(table2, (out / "table4.md").read_text(), sep="\n")
    results = json.loads((out / f"results_{model}.json").read_text())
    assert "accuracy,cheat_1shot" in results["results"]["okvqa"]
    from textbook.benchmark.registry import scores

    assert len(scores(StateDB(settings.db_url), bench[0]["run_id"])) == 2 * (1 + 2 * 2)  # tasks x (0-shot + 2x2)


def test_an_unchanged_corpus_does_not_retrain(world):
    from textbook.downstream import train_resolve
    from textbook.train.runs import TrainSkipped

    settings, rcs, log, _ = world
    corpus = _events(settings.data_path / "airflow")[0]
    assert corpus[0] == "textbook_corpus"
    with pytest.raises(TrainSkipped, match="nothing to do") as skipped:  # what the DAG's resolve task calls
        train_resolve(settings, settings.export_root.as_uri(), "another-run")
    ckpt = next(extra for name, extra in _events(settings.data_path / "airflow") if name == "textbook_checkpoint")
    assert skipped.value.done["uri"] == ckpt["uri"]  # the ablation benchmarks that checkpoint instead
