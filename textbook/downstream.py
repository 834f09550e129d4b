"""What the downstream DAGs' tasks call (and ``textbook train`` / ``textbook bench``): the pipeline
settings give the state database, the store and the data root; ``downstream.yaml`` (default
``<data_root>/downstream.yaml``, sections ``train:`` and ``benchmark:``) and the run's params give
the rest. Every function takes and returns plain JSON-able values, so tasks pass them by XCom.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import yaml

from textbook.config import ConfigError, Settings
from textbook.context import Context

FILE = "downstream.yaml"


def _sections(settings: Settings, config_file: str = "") -> dict[str, Any]:
    path = Path(config_file) if config_file else settings.data_path / FILE
    if not path.is_file():
        if config_file:
            raise ConfigError(f"downstream config {config_file}: no such file")
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or set(data) - {"train", "benchmark"}:
        raise ConfigError(f"{path}: expected a mapping with the sections train: and benchmark:")
    return data


def train_config(settings: Settings, config_file: str = "", preset: str = "", overrides: dict | None = None):
    from textbook.config import _merge
    from textbook.train.config import load_train_config

    data = _merge(_sections(settings, config_file).get("train") or {}, overrides or {})
    return load_train_config(preset=preset or None, overrides=data)


def bench_config(settings: Settings, config_file: str = "", overrides: dict | None = None):
    from textbook.benchmark.harness import BenchConfig

    data = {**(_sections(settings, config_file).get("benchmark") or {}), **(overrides or {})}
    return BenchConfig.from_dict(data)


# -- pretraining --------------------------------------------------------------------------------

def train_resolve(settings: Settings, corpus_uri: str, holder: str, *, config_file: str = "", preset: str = "",
                  overrides: dict | None = None) -> dict[str, Any]:
    """The run plan; raises TrainSkipped (an unchanged corpus, no model configured)."""
    from textbook.train.runs import resolve

    cfg = train_config(settings, config_file, preset, overrides)
    ctx = Context.from_settings(settings)
    try:
        return resolve(ctx.db, corpus_uri, cfg, settings.data_path, holder, settings.store).to_dict()
    finally:
        ctx.close()


def train_prepare(plan: dict[str, Any]) -> dict[str, Any]:
    from textbook.train.runs import RunPlan, prepare

    return prepare(RunPlan.from_dict(plan))


def train_run(plan: dict[str, Any], echo: Callable[[str], None], on_start: Callable[[Any], None] | None = None,
              stop_after: int = 0, settings: Settings | None = None, every: float = 60.0) -> dict[str, Any]:
    """Train; with ``settings``, the run's lease is renewed (at most every ``every`` s) as output arrives."""
    import time

    from textbook.train import registry
    from textbook.train.runs import RunPlan, train

    if settings is None:
        return train(RunPlan.from_dict(plan), echo, on_start=on_start, stop_after=stop_after)
    ctx = Context.from_settings(settings)
    last = [time.monotonic()]

    def echo_and_beat(line: str) -> None:
        echo(line)
        if time.monotonic() - last[0] >= every:
            registry.heartbeat(ctx.db, plan["run_key"])
            last[0] = time.monotonic()

    try:
        return train(RunPlan.from_dict(plan), echo_and_beat, on_start=on_start, stop_after=stop_after)
    finally:
        ctx.close()


def train_failed(settings: Settings, plan: dict[str, Any], reason: str) -> None:
    from textbook.train import registry

    ctx = Context.from_settings(settings)
    try:
        registry.finish(ctx.db, plan["run_key"], "failed", reason=reason[:2000])
    finally:
        ctx.close()


def train_publish(settings: Settings, plan: dict[str, Any]) -> dict[str, Any]:
    from textbook.train.runs import RunPlan, publish

    ctx = Context.from_settings(settings)
    try:
        return publish(RunPlan.from_dict(plan), ctx.store, ctx.db)
    finally:
        ctx.close()


# -- benchmarks ---------------------------------------------------------------------------------

def bench_resolve(settings: Settings, checkpoints: list[dict[str, Any]], *, config_file: str = "",
                  overrides: dict | None = None) -> dict[str, Any]:
    """The models to evaluate and the run id; raises BenchmarkSkipped (no benchmark copies, no model)."""
    from textbook.benchmark.run import resolve_models, run_id_for

    cfg = bench_config(settings, config_file, overrides)
    ctx = Context.from_settings(settings)
    try:
        models = resolve_models(checkpoints, cfg, ctx.store, settings.data_path / "checkpoint-cache")
    finally:
        ctx.close()
    run_id = run_id_for(models, cfg)
    return {"run_id": run_id, "models": models, "config": cfg.to_dict(),
            "out_dir": str(settings.data_path / "benchmarks" / run_id)}


def bench_evaluate(run: dict[str, Any], model: dict[str, Any], echo: Callable[[str], None]) -> list[dict]:
    from textbook.benchmark.harness import BenchConfig
    from textbook.benchmark.run import evaluate_model

    return evaluate_model(model, BenchConfig.from_dict(run["config"]), Path(run["out_dir"]), echo)


def bench_publish(settings: Settings, run: dict[str, Any], scores: list[list[dict]]) -> dict[str, Any]:
    from textbook.benchmark.harness import BenchConfig
    from textbook.benchmark.run import publish

    ctx = Context.from_settings(settings)
    try:
        flat = [s for per_model in scores for s in per_model]
        return publish(run["run_id"], run["models"], flat, BenchConfig.from_dict(run["config"]),
                       Path(run["out_dir"]), ctx.db)
    finally:
        ctx.close()


def ablation_plot(settings: Settings, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Fig. 3: the mean of the headline averages per shuffle ratio, as a PNG and a JSON."""
    from textbook.benchmark.results import shuffle_plot

    points: dict[float, float | None] = {}
    for r in results:
        avgs = [v for v in (r.get("avg_by_shot") or {}).values() if v is not None]
        points[float(r["ratio"])] = round(sum(avgs) / len(avgs), 2) if avgs else None
    out = settings.data_path / "benchmarks" / "ablation_shuffle"
    out.mkdir(parents=True, exist_ok=True)
    (out / "shuffle_ablation.json").write_text(json.dumps({str(k): v for k, v in sorted(points.items())}, indent=1))
    return {"plot": str(shuffle_plot(points, out / "shuffle_ablation.png")), "points": points}
