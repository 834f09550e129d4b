"""A real two-process ``accelerate launch`` (CPU, gloo) of the tiny LLaVA on a small corpus: the loss
falls, rank 0 alone writes the metrics, ``final/`` loads, and a run stopped halfway and resumed
ends with exactly the weights of the unbroken run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from downstream_helpers import write_corpus

from textbook.state import StateDB
from textbook.train import runs
from textbook.train.config import load_train_config

STEPS = 16


def _plan(tmp: Path, corpus: Path, name: str):
    db = StateDB(f"sqlite:///{tmp / name}.db")
    db.create_schema()
    cfg = load_train_config(preset="tiny-cpu", overrides={
        "output_root": str(tmp / name), "optim": {"max_steps": STEPS}, "checkpoint": {"every_steps": 4}})
    plan = runs.resolve(db, corpus.as_uri(), cfg, tmp, holder="test")
    runs.prepare(plan)
    return plan


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("launch")
    corpus = write_corpus(tmp / "corpus", samples=12)
    unbroken = _plan(tmp, corpus, "unbroken")
    lines: list[str] = []
    summary = runs.train(unbroken, lines.append)
    broken = _plan(tmp, corpus, "broken")
    runs.train(broken, lambda line: None, stop_after=STEPS // 2)
    halfway = sorted(p.name for p in (Path(broken.run_dir) / "checkpoints").iterdir())
    resumed_lines: list[str] = []
    resumed = runs.train(broken, resumed_lines.append)
    return unbroken, summary, lines, broken, halfway, resumed, resumed_lines


def _metrics(plan) -> list[dict]:
    return [json.loads(x) for x in (Path(plan.run_dir) / "metrics.jsonl").read_text().splitlines()]


def test_two_ranks_train_and_the_loss_falls(trained):
    unbroken, summary, lines, *_ = trained
    assert summary["world_size"] == 2 and summary["step"] == STEPS
    assert any("world size 2 (DistributedType.MULTI_CPU)" in line for line in lines)
    rows = _metrics(unbroken)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))  # rank 0 only: each step once
    losses = [r["loss"] for r in rows]
    print("loss curve:", " ".join(f"{x:.3f}" for x in losses))
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5
    assert rows[-1]["images_seen"] == STEPS * 2 * 2 * 4  # steps x ranks x batch x images per sample
    from transformers import LlavaForConditionalGeneration

    model = LlavaForConditionalGeneration.from_pretrained(Path(unbroken.run_dir) / "final")
    assert model.config.text_config.vocab_size >= 1


def test_a_resumed_run_ends_exactly_where_the_unbroken_run_ends(trained):
    unbroken, summary, _, broken, halfway, resumed, resumed_lines = trained
    assert halfway == ["step_4", "step_8"]  # stopped after the step-8 checkpoint
    assert any("resumed from step_8" in line for line in resumed_lines)
    print(f"param sum unbroken {summary['param_sum']!r} resumed {resumed['param_sum']!r}")
    assert resumed["param_sum"] == summary["param_sum"]
    assert resumed["loss"] == summary["loss"]
    assert [r["loss"] for r in _metrics(broken)] == [r["loss"] for r in _metrics(unbroken)]
    assert sorted(p.name for p in (Path(broken.run_dir) / "checkpoints").iterdir()) == ["step_12", "step_16"]
