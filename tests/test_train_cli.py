"""`textbook train` and `textbook bench` run the DAGs' code without Airflow; offline defaults are honest."""

from __future__ import annotations

from downstream_helpers import write_corpus, write_tinybench

from textbook.cli import main
from textbook.state import StateDB
from textbook.train.registry import runs


def test_train_without_a_model_is_skipped_with_the_reason_recorded(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus", samples=2)
    (tmp_path / "cfg.yaml").write_text(f"data_root: {tmp_path / 'data'}\n")
    assert main(["--config", str(tmp_path / "cfg.yaml"), "train", "--corpus", str(corpus)]) == 0
    out = capsys.readouterr().out
    assert "skipped: train.model.path is not set" in out
    [row] = runs(StateDB(f"sqlite:///{tmp_path / 'data' / 'state.db'}"))
    assert row.status == "skipped" and "model.path" in row.reason


def test_bench_with_the_oracle_prints_the_tables(tmp_path, capsys):
    write_tinybench(tmp_path / "bench")
    (tmp_path / "cfg.yaml").write_text(f"data_root: {tmp_path / 'data'}\n")
    assert main(["--config", str(tmp_path / "cfg.yaml"), "bench", "--data-root", str(tmp_path / "bench"),
                 "--set", "backend=oracle", "--set", "tasks=okvqa", "--set", "shots=0,1,2",
                 "--set", "modes=rices,cheat"]) == 0
    out = capsys.readouterr().out
    assert "| oracle | 0.0 | 100.0 | 100.0 | 0.0 | 100.0 | 100.0 |" in out  # okvqa 0/1/2-shot, then the average
    assert "| oracle | 100.0 | 100.0 |" in out  # Table 4: cheat at 1 and 2 shots
    [page] = (tmp_path / "data" / "benchmarks").glob("*/index.html")
    text = page.read_text()
    assert "oracle: okvqa_2shot_cheat" in text and "Table 4 shape" in text
    gallery = text.split("oracle: okvqa_2shot_cheat")[1].split("</details>")[0]
    assert gallery.count("<img") == 8 * 3  # the first 8 items, each 2 demos + the query
    assert main(["--config", str(tmp_path / "cfg.yaml"), "bench"]) == 0
    assert "skipped: benchmark.data_root (unset)" in capsys.readouterr().out


def test_an_s3_corpus_is_synced_to_the_training_host_and_fingerprinted_like_the_local_one(tmp_path, monkeypatch):
    import uuid

    from s3_server import start_s3

    from textbook.config import StoreSettings
    from textbook.store.s3 import S3Store
    from textbook.train.data import corpus_fingerprint
    from textbook.train.runs import corpus_root

    local = write_corpus(tmp_path / "corpus", samples=3)
    with start_s3(tmp_path / "s3") as s3:
        for name, value in s3.env.items():
            monkeypatch.setenv(name, value)
        bucket = s3.create_bucket(f"t-{uuid.uuid4().hex[:12]}")
        settings = StoreSettings(kind="s3", bucket=bucket, endpoint_url=s3.endpoint_url, region="us-east-1",
                                 path_style=True)
        remote = S3Store(bucket, "dataset", endpoint_url=s3.endpoint_url, region="us-east-1", path_style=True)
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            remote.put_file(path.relative_to(local).as_posix(), path)
        synced = corpus_root(f"s3://{bucket}/dataset", settings, tmp_path / "cache")
        assert corpus_fingerprint(synced) == corpus_fingerprint(local)
        first = next(synced.rglob("*.jpg"))
        first.write_bytes(b"corrupt")  # a damaged local copy is fetched again
        assert corpus_fingerprint(corpus_root(f"s3://{bucket}/dataset", settings, tmp_path / "cache")) == \
            corpus_fingerprint(local)


def test_a_run_is_leased_to_one_holder_until_it_goes_stale(tmp_path):
    from datetime import timedelta

    import pytest
    from sqlalchemy import update

    from textbook.state.models import utcnow
    from textbook.state.train_models import TrainRunRow
    from textbook.train import registry

    db = StateDB(f"sqlite:///{tmp_path / 's.db'}")
    db.create_schema()
    fields = dict(preset="p", corpus_uri="u", corpus_fingerprint="f", config_hash="c")
    registry.claim(db, "k", "run-1", "dag/run-a", **fields)
    with pytest.raises(registry.RunBusy, match="held by dag/run-a"):
        registry.claim(db, "k", "run-1", "dag/run-b", **fields)
    registry.claim(db, "k", "run-1", "dag/run-a", **fields)  # a retry of the same task
    registry.heartbeat(db, "k")
    with db.session() as s:
        s.execute(update(TrainRunRow).values(heartbeat_at=utcnow() - registry.STALE_AFTER - timedelta(minutes=1)))
    registry.claim(db, "k", "run-1", "dag/run-b", **fields)  # the old holder stopped heartbeating
    assert registry.done_run(db, "k") is None
    registry.finish(db, "k", "done", steps=3)
    assert registry.done_run(db, "k").holder == "dag/run-b"
