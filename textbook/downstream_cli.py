"""``textbook train`` and ``textbook bench``: the downstream DAGs' code, without Airflow."""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path
from typing import Any

import yaml


def _overrides(pairs: list[str] | None) -> dict[str, Any]:
    """``--set optim.lr=1e-5`` pairs as a nested mapping (values read as YAML scalars)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--set {pair!r}: expected key=value")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from textbook.config import load_settings
    from textbook.downstream import train_prepare, train_publish, train_resolve, train_run
    from textbook.train.runs import TrainSkipped

    settings = load_settings(args.config)
    corpus = str(Path(args.corpus).resolve()) if args.corpus else str(settings.export_root)
    holder = f"{socket.gethostname()}:{os.getpid()}"
    try:
        plan = train_resolve(settings, corpus, holder, config_file=args.train_config or "",
                             preset=args.preset or "", overrides=_overrides(args.set))
    except TrainSkipped as exc:
        print(f"train: skipped: {exc}")
        return 0
    print(f"train: run {plan['run_id']} in {plan['run_dir']}")
    print(f"prepare: {train_prepare(plan)}")
    summary = train_run(plan, print, stop_after=args.stop_after)
    if args.stop_after:
        print(f"train: stopped after step {args.stop_after}; run the same command again to resume")
        return 0
    out = train_publish(settings, plan)
    print(f"checkpoint: {out['uri']} ({out['files']} files; {summary.get('step')} steps, loss {summary.get('loss')})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from textbook.benchmark.run import BenchmarkSkipped
    from textbook.config import load_settings
    from textbook.downstream import bench_evaluate, bench_publish, bench_resolve

    settings = load_settings(args.config)
    overrides = _overrides(args.set)
    if args.data_root:
        overrides["data_root"] = str(Path(args.data_root).resolve())
    checkpoints = [{"uri": Path(c).resolve().as_uri(), "run_id": Path(c).resolve().parent.name
                    if Path(c).name == "final" else Path(c).name} for c in args.checkpoint or []]
    try:
        run = bench_resolve(settings, checkpoints, config_file=args.bench_config or "", overrides=overrides)
    except BenchmarkSkipped as exc:
        print(f"bench: skipped: {exc}")
        return 0
    scores = [bench_evaluate(run, m, print) for m in run["models"]]
    out = bench_publish(settings, run, scores)
    print(Path(out["table2"]).read_text())
    print(Path(out["table4"]).read_text())
    print(f"results: {out['results']}")
    return 0


def register(sub: Any) -> None:
    train = sub.add_parser("train", help="continual pretraining on the exported corpus via accelerate launch",
                           formatter_class=argparse.RawDescriptionHelpFormatter, epilog=(
                               "examples:\n  textbook train --corpus data/dataset --preset tiny-cpu\n"
                               "  textbook train --train-config downstream.yaml --set optim.lr=1e-5"))
    train.add_argument("--corpus", metavar="DIR",
                       help="an exported dataset folder (default: export root), e.g. --corpus data/dataset")
    train.add_argument("--preset", help="paper-llava-1.5-7b | tiny-cpu | none, e.g. --preset tiny-cpu")
    train.add_argument("--train-config", metavar="FILE",
                       help="YAML with a train: section (default <data_root>/downstream.yaml), "
                            "e.g. --train-config downstream.yaml")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. optim.lr=1e-5")
    train.add_argument("--stop-after", type=int, default=0, metavar="STEP",
                       help="checkpoint and stop after this step, e.g. --stop-after 100")
    train.set_defaults(fn=cmd_train)
    bench = sub.add_parser("bench", help="few-shot benchmarks (RICES, random, cheat) on checkpoints",
                           formatter_class=argparse.RawDescriptionHelpFormatter, epilog=(
                               "examples:\n  textbook bench --checkpoint data/train/RUN/final --data-root /data/bench "
                               "--set shots=0,1,2"))
    bench.add_argument("--checkpoint", action="append", metavar="DIR",
                       help="a checkpoint folder (repeatable), e.g. --checkpoint data/train/RUN/final")
    bench.add_argument("--data-root", metavar="DIR",
                       help="local benchmark copies: <task>/test.jsonl, e.g. --data-root /data/bench")
    bench.add_argument("--bench-config", metavar="FILE",
                       help="YAML with a benchmark: section (default <data_root>/downstream.yaml), "
                            "e.g. --bench-config downstream.yaml")
    bench.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override, e.g. shots=0,1,2 tasks=okvqa modes=rices,cheat backend=openai")
    bench.set_defaults(fn=cmd_bench)
