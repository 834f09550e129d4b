"""A benchmark run as the DAG and the CLI drive it: resolve models -> evaluate each -> publish.

Models are the checkpoint the ``textbook_checkpoint`` event names (or the ones given) plus the
configured baselines (a user's OBELICS-trained checkpoint, the base model): more rows in the
same tables. Published: ``results_<model>.json`` (lmms-eval shape), the samples, the tables, the
database rows, and the headline averages for the ``textbook_benchmark`` event.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlparse

from textbook.benchmark import registry
from textbook.benchmark.backends import Backend, HFBackend, OpenAIBackend, OracleBackend
from textbook.benchmark.demos import embedder
from textbook.benchmark.harness import BenchConfig, Score, evaluate
from textbook.benchmark.results import headline, results_json, write_tables
from textbook.state import StateDB
from textbook.store import ArtifactStore, LocalStore


class BenchmarkSkipped(Exception):
    """Nothing can be evaluated, and why (no benchmark copies, no model)."""


def checkpoint_dir(uri: str, store: ArtifactStore | None, cache: Path) -> Path:
    """A local folder for a checkpoint URI: a ``file://`` folder, or an ``s3://`` prefix of the store."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path) if parsed.scheme else uri)
    if store is None or isinstance(store, LocalStore) or not uri.startswith(store.uri.rstrip("/") + "/"):
        raise BenchmarkSkipped(f"checkpoint {uri}: not in the configured artifact store")
    prefix = uri[len(store.uri.rstrip("/")) + 1:]
    out = cache / hashlib.sha256(uri.encode()).hexdigest()[:16]
    for key in store.list(prefix):
        target = out / key[len(prefix) + 1:]
        if not target.is_file() or store.checksum(key) != hashlib.sha256(target.read_bytes()).hexdigest():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(store.get_bytes(key))
    return out


def resolve_models(checkpoints: list[dict[str, Any]], cfg: BenchConfig, store: ArtifactStore | None,
                   cache: Path) -> list[dict[str, Any]]:
    if not cfg.data_root or not Path(cfg.data_root).is_dir():
        raise BenchmarkSkipped(f"benchmark.data_root {cfg.data_root or '(unset)'} is not a folder of local "
                               f"benchmark copies (<task>/test.jsonl): nothing to evaluate")
    models = [{"name": c.get("run_id") or Path(c["uri"]).name, "uri": c["uri"],
               "path": str(checkpoint_dir(c["uri"], store, cache)),
               "corpus_fingerprint": c.get("corpus_fingerprint", "")} for c in checkpoints]
    for spec in cfg.baselines:
        name, _, path = spec.partition("=")
        if not path:
            raise ValueError(f"benchmark.baselines entry {spec!r}: expected name=path")
        models.append({"name": name, "uri": Path(path).resolve().as_uri(), "path": path, "corpus_fingerprint": ""})
    if not models and cfg.backend == "oracle":  # the plumbing check needs no checkpoint
        models.append({"name": "oracle", "uri": "oracle:", "path": "", "corpus_fingerprint": ""})
    if not models:
        raise BenchmarkSkipped("no checkpoint to evaluate: none named by the event or the params, no baselines")
    return models


def make_backend(cfg: BenchConfig, model_path: str) -> Backend:
    if cfg.backend == "oracle":
        return OracleBackend(embedder(cfg.embedder))
    if cfg.backend == "openai":
        if not cfg.endpoint:
            raise BenchmarkSkipped("benchmark.backend openai needs benchmark.endpoint")
        return OpenAIBackend(cfg.endpoint, cfg.served_model or Path(model_path).name, cfg.api_key_env)
    if cfg.backend == "hf":
        return HFBackend(model_path)
    raise ValueError(f"benchmark.backend {cfg.backend!r}: expected hf, openai or oracle")


def run_id_for(models: list[dict[str, Any]], cfg: BenchConfig) -> str:
    payload = json.dumps([[m["name"], m["uri"]] for m in models] + [cfg.to_dict()], sort_keys=True)
    return "bench-" + hashlib.sha256(payload.encode()).hexdigest()[:12]


def evaluate_model(model: dict[str, Any], cfg: BenchConfig, out_dir: Path,
                   echo: Callable[[str], None] = print) -> list[dict[str, Any]]:
    scores = evaluate(model["name"], make_backend(cfg, model["path"]), cfg, out_dir, echo)
    return [s.to_dict() for s in scores]


def publish(run_id: str, models: list[dict[str, Any]], score_dicts: list[dict[str, Any]], cfg: BenchConfig,
            out_dir: Path, db: StateDB | None) -> dict[str, Any]:
    scores = [Score(**d) for d in score_dicts]
    out_dir.mkdir(parents=True, exist_ok=True)
    for m in models:
        meta = {"run_id": run_id, "checkpoint": m["uri"], "corpus_fingerprint": m["corpus_fingerprint"],
                "backend": cfg.backend}
        (out_dir / f"results_{m['name']}.json").write_text(
            json.dumps(results_json(m["name"], scores, cfg, meta), indent=1))
    paths = write_tables(out_dir, scores)
    heads = {m["name"]: headline(scores, m["name"]) for m in models}
    if db is not None:
        registry.record(db, run_id, models, cfg, scores, heads, out_dir.resolve().as_uri())
    first = models[0]["name"] if models else ""
    return {"run_id": run_id, "results": str(out_dir), "table2": str(paths["table2"]), "table4": str(paths["table4"]),
            **(heads.get(first) or {}), "models": list(heads)}
