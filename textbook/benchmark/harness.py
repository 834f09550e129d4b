"""Evaluate one model on the benchmarks: every task x shots x mode, per-item samples, scores.

Per (task, shots, mode) it writes ``samples_<task>_<k>shot_<mode>.jsonl`` (doc id, demo ids, prompt
hash, prediction, parsed answer, score), skipping items already written, so a retried task goes on
where it stopped. A task without a local copy is skipped with the reason, never scored.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from textbook.benchmark import scoring
from textbook.benchmark.backends import Backend
from textbook.benchmark.data import Item, load_split
from textbook.benchmark.demos import MODES, DemoPool, embedder, select
from textbook.benchmark.judge import JUDGE_PROMPT_VERSION, Judge
from textbook.benchmark.prompts import build_prompt, first_answer, prompt_version
from textbook.benchmark.tasks import SEVEN, TASKS, TaskSpec


@dataclass(frozen=True)
class BenchConfig:
    data_root: str = ""  # local copies: <data_root>/<task>/{test,train}.jsonl (or .tsv)
    tasks: tuple[str, ...] = SEVEN
    shots: tuple[int, ...] = (0, 1, 2, 4, 8)
    modes: tuple[str, ...] = ("rices", "random", "cheat")  # + shuffled_context
    max_items: int = 2048  # queries per task (OpenFlamingo's fixed 2048); 0 = all
    seed: int = 0
    embedder: str = "pixel"  # RICES features: pixel, or clip:<local CLIPModel folder> (the paper's)
    cheat_second: str = "random"  # the paper's text; "rices" = the official code's top-1
    prompt_style: str = "plain"
    backend: str = "hf"  # hf | openai | oracle (tests)
    endpoint: str = ""  # openai backend: the server serving the checkpoint
    served_model: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    judge_endpoint: str = ""  # math columns: an LLM judge; empty = rule scorer
    judge_model: str = ""
    max_new_tokens: int = 0  # 0 = the task's (128 VQA/MC, 512 math)
    baselines: tuple[str, ...] = ()  # name=path of more checkpoints to evaluate beside each one
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes recorded into results.json

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BenchConfig":
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"benchmark: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
        out: dict[str, Any] = {}
        for name, value in data.items():
            if name in ("tasks", "modes", "baselines"):
                value = tuple(value.split(",") if isinstance(value, str) else value)
            elif name == "shots":
                value = tuple(int(x) for x in (value.split(",") if isinstance(value, str) else value))
            elif name in ("max_items", "seed", "max_new_tokens"):
                value = int(value)
            out[name] = value
        cfg = cls(**out)
        bad = [t for t in cfg.tasks if t not in TASKS] + [m for m in cfg.modes if m not in MODES]
        if bad:
            raise ValueError(f"benchmark: unknown task(s) or mode(s) {', '.join(bad)}")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Score:
    model: str
    task: str
    shots: int
    mode: str
    metric: str
    value: float | None  # percent; None when skipped
    stderr: float | None
    n: int
    scorer: str
    prompt_version: str
    reason: str = ""  # why skipped

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _score_item(spec: TaskSpec, item: Item, raw: str, judge: Judge | None) -> tuple[float, str | None, str]:
    if spec.metric == "mc":
        value, letter = scoring.mc_score(raw.strip(), item.answer, len(item.choices or ()))
        return value, letter, "mc-letter"
    pred = first_answer(raw)
    if spec.metric == "vqa":
        return scoring.vqa_accuracy(pred, item.answers), pred, "vqa"
    if spec.metric == "math" and judge is not None:
        verdict = judge.verdict(pred, item.answer, item.choices)
        return float(bool(verdict)), pred, judge.scorer if verdict is not None else f"{judge.scorer}:failed"
    if spec.metric == "math":
        return scoring.rule_math_score(pred, item.answer, item.choices), pred, "rule"
    return scoring.exact_score(pred, item.answer), pred, "exact"


def _done_lines(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    return {r["doc_id"]: r for r in (json.loads(x) for x in path.read_text().splitlines() if x.strip())}


def evaluate(model: str, backend: Backend, cfg: BenchConfig, out_dir: Path,
             echo: Callable[[str], None] = print) -> list[Score]:
    embed = embedder(cfg.embedder)
    judge = Judge(cfg.judge_endpoint, cfg.judge_model, out_dir / "judge_cache.json", cfg.api_key_env) \
        if cfg.judge_endpoint and cfg.judge_model else None
    samples_dir = out_dir / "samples" / model
    samples_dir.mkdir(parents=True, exist_ok=True)
    scores: list[Score] = []
    for task in cfg.tasks:
        spec = TASKS[task]
        version = prompt_version(spec, cfg.prompt_style, embedder=cfg.embedder, cheat_second=cfg.cheat_second,
                                 judge=JUDGE_PROMPT_VERSION if judge else "none", seed=cfg.seed)
        queries = load_split(Path(cfg.data_root), task, "test")
        if queries is None:
            scores.append(Score(model, task, -1, "-", "accuracy", None, None, 0, "-", version,
                                f"no local copy at {Path(cfg.data_root) / task}/test.jsonl"))
            continue
        queries = queries[:cfg.max_items] if cfg.max_items else queries
        if not queries:
            scores.append(Score(model, task, -1, "-", "accuracy", None, None, 0, "-", version, "no test items"))
            continue
        pool_items = load_split(Path(cfg.data_root), spec.pool, spec.pool_split) or []
        pool = DemoPool(pool_items, embed)
        for k in cfg.shots:
            for mode in (("zero",) if k == 0 else cfg.modes):
                if k > 0 and not pool.items:
                    scores.append(Score(model, task, k, mode, "accuracy", None, None, 0, "-", version,
                                        f"no demonstration pool ({spec.pool}/{spec.pool_split})"))
                    continue
                path = samples_dir / f"samples_{task}_{k}shot_{mode}.jsonl"
                done = _done_lines(path)
                with path.open("a") as out:
                    for item in queries:
                        if item.id in done:
                            continue
                        demos = select(pool, item, k, "rices" if mode == "zero" else mode, seed=cfg.seed,
                                       cheat_second=cfg.cheat_second)
                        prompt = build_prompt(item, demos, spec, cfg.prompt_style)
                        t0 = time.monotonic()
                        raw = backend.generate(prompt, cfg.max_new_tokens or spec.max_new_tokens)
                        value, parsed, scorer = _score_item(spec, item, raw, judge)
                        row = {"doc_id": item.id, "demo_ids": [d.id for d in demos], "image": str(item.image),
                               "demo_images": [str(d.image) for d in demos], "demo_answers": [d.demo_answer for d in demos],
                               "question": item.question, "prompt_hash": prompt.digest,
                               "prediction": raw, "parsed": parsed, "target": item.answer, "score": value,
                               "scorer": scorer, "latency_s": round(time.monotonic() - t0, 4)}
                        out.write(json.dumps(row) + "\n")
                        done[item.id] = row
                rows = [done[i.id] for i in queries]
                values = [r["score"] for r in rows]
                mean = sum(values) / len(values)
                stderr = math.sqrt(sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1) / len(values))
                scorers = sorted({r["scorer"] for r in rows})
                scores.append(Score(model, task, k, mode, "accuracy", round(100 * mean, 2), round(100 * stderr, 2),
                                    len(values), "+".join(scorers), version))
                echo(f"{model} {task} {k}-shot {mode}: {100 * mean:.1f} ({len(values)} items, {'+'.join(scorers)})")
    return scores
