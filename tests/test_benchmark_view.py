"""The plugin's Benchmarks view inside a real Airflow api-server: training and benchmark runs from our
database, escaped, each run's page served from its results folder, and nothing without a token."""

from __future__ import annotations

import pytest
from test_plugin import get

from textbook.benchmark import registry
from textbook.benchmark.harness import BenchConfig, Score
from textbook.context import Context
from textbook.train import registry as train_registry

pytestmark = pytest.mark.slow
EVIL = '<script>alert("x")</script>'


@pytest.fixture(scope="module")
def recorded(airflow_server, tmp_path_factory):
    ctx = Context.from_settings(airflow_server.settings)
    out = tmp_path_factory.mktemp("bench-run")
    (out / "index.html").write_text("<h1>the run's page</h1>")
    train_registry.claim(ctx.db, "key1", "tiny-cpu-abc", "t", preset="tiny-cpu", corpus_uri="file:///c",
                         corpus_fingerprint="f" * 32, config_hash="c")
    train_registry.finish(ctx.db, "key1", "skipped", reason=EVIL)
    scores = [Score("m1", "okvqa", 1, "cheat", "accuracy", 100.0, 0.0, 3, "vqa", "v1")]
    registry.record(ctx.db, "bench-xyz", [{"name": "m1", "uri": "file:///m1"}], BenchConfig(), scores,
                    {"m1": {"avg_by_shot": {"1": 42.5}, "cheat_1shot_avg": 100.0}}, out.as_uri())
    return ctx


def test_the_benchmarks_view_lists_runs_and_serves_their_pages(airflow_server, recorded):
    token = airflow_server.client("viewer").token()
    status, kind, body = get(airflow_server, "/textbook/benchmarks", token=token)
    page = body.decode()
    assert status == 200 and kind.startswith("text/html")
    assert "tiny-cpu-abc" in page and "<script>" not in page and "&lt;script&gt;" in page
    assert 'href="/textbook/benchmarks/bench-xyz"' in page and "1-shot 42.5" in page
    status, _, body = get(airflow_server, "/textbook/benchmarks/bench-xyz", token=token)
    assert status == 200 and body == b"<h1>the run's page</h1>"
    assert get(airflow_server, "/textbook/benchmarks/nope", token=token)[0] == 404
    assert get(airflow_server, "/textbook/benchmarks")[0] == 401
