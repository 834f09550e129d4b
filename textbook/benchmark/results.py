"""What people read: ``results.json`` in lmms-eval's shape, Table 2 and Table 4 in the paper's shape
(with the paper's numbers beside ours, labelled as the paper's), the Fig. 3 shuffle plot, and the
headline averages the ``textbook_benchmark`` asset event carries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from textbook.benchmark.harness import BenchConfig, Score
from textbook.benchmark.tasks import CHEAT_TASKS, PAPER_TABLE2, PAPER_TABLE2_AVG, PAPER_TABLE4, TASKS

TABLE2_SHOTS = (0, 1, 2, 4, 8)


def _key(s: Score) -> str:
    return f"{s.mode}_{s.shots}shot"


def results_json(model: str, scores: Iterable[Score], cfg: BenchConfig, meta: dict[str, Any]) -> dict[str, Any]:
    scores = [s for s in scores if s.model == model]
    out: dict[str, Any] = {"results": {}, "configs": {}, "versions": {}, "n-shot": {}, "higher_is_better": {},
                           "n-samples": {}, "skipped": {}, "meta": {**meta, "model": model, "config": cfg.to_dict()}}
    for s in scores:
        if s.value is None:
            out["skipped"].setdefault(s.task, []).append({"shots": s.shots, "mode": s.mode, "reason": s.reason})
            continue
        res = out["results"].setdefault(s.task, {"alias": s.task})
        res[f"{s.metric},{_key(s)}"] = s.value
        res[f"{s.metric}_stderr,{_key(s)}"] = s.stderr
        res[f"scorer,{_key(s)}"] = s.scorer
        out["configs"][s.task] = {**TASKS[s.task].__dict__, "prompt_style": cfg.prompt_style,
                                  "prompt_version": s.prompt_version, "embedder": cfg.embedder}
        out["versions"][s.task] = s.prompt_version
        out["n-shot"].setdefault(s.task, sorted({x.shots for x in scores if x.task == s.task and x.value is not None}))
        out["higher_is_better"][s.task] = {s.metric: True}
        out["n-samples"][s.task] = {"original": s.n, "effective": s.n}
    return out


def _cell(scores: list[Score], model: str, task: str, shots: int, mode: str) -> Score | None:
    for s in scores:
        if (s.model, s.task, s.shots, s.mode, s.value is not None) == (model, task, shots, mode, True):
            return s
    return None


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"


def table2(scores: list[Score], mode: str = "rices") -> dict[str, Any]:
    """Rows: models; columns: each task at each shot count (0-shot is pure zero-shot), then Avg."""
    models = list(dict.fromkeys(s.model for s in scores))
    tasks = [t for t in TASKS if any(s.task == t and s.value is not None for s in scores)]
    shots = [k for k in TABLE2_SHOTS if any(s.shots == k and s.value is not None for s in scores)]
    rows = {}
    for m in models:
        row: dict[str, Any] = {}
        for t in tasks:
            for k in shots:
                c = _cell(scores, m, t, k, "zero" if k == 0 else mode)
                row[f"{t}@{k}"] = c.value if c else None
        for k in shots:
            vals = [row[f"{t}@{k}"] for t in tasks if row[f"{t}@{k}"] is not None]
            row[f"avg@{k}"] = round(sum(vals) / len(vals), 2) if vals and len(vals) == len(tasks) else None
        rows[m] = row
    paper = {name: {**{f"{t}@{k}": v.get(k) for t, v in cols.items() for k in shots if t in tasks},
                    **{f"avg@{k}": PAPER_TABLE2_AVG.get(name, {}).get(k) for k in shots}}
             for name, cols in PAPER_TABLE2.items()}
    paper.update({n: {f"avg@{k}": a.get(k) for k in shots} for n, a in PAPER_TABLE2_AVG.items() if n not in paper})
    return {"mode": mode, "tasks": tasks, "shots": shots, "rows": rows, "paper": paper,
            "scorers": sorted({s.scorer for s in scores if s.value is not None})}


def table4(scores: list[Score]) -> dict[str, Any]:
    """The cheat test: the query itself in context, at 1 and 2 shots."""
    models = list(dict.fromkeys(s.model for s in scores))
    tasks = [t for t in CHEAT_TASKS if any(s.task == t and s.mode == "cheat" and s.value is not None for s in scores)]
    rows = {m: {f"{t}@{k}": (c.value if (c := _cell(scores, m, t, k, "cheat")) else None)
                for k in (1, 2) for t in tasks} for m in models}
    paper = {n: {f"{t}@{k}": v[k].get(t) for k in (1, 2) for t in tasks} for n, v in PAPER_TABLE4.items()}
    return {"tasks": tasks, "shots": [1, 2], "rows": rows, "paper": paper}


def markdown(table: dict[str, Any], title: str) -> str:
    cols = [f"{t}@{k}" for t in table["tasks"] for k in table["shots"]]
    if "mode" in table:
        cols += [f"avg@{k}" for k in table["shots"]]
    head = "| model | " + " | ".join(c.replace("@", " ") + "-shot" for c in cols) + " |"
    lines = [f"### {title}", "", head, "|" + "---|" * (len(cols) + 1)]
    best = {c: max((r[c] for r in table["rows"].values() if r.get(c) is not None), default=None) for c in cols}
    for name, row in table["rows"].items():
        cells = [(f"**{_fmt(row.get(c))}**" if row.get(c) is not None and row.get(c) == best[c] and len(table["rows"]) > 1
                  else _fmt(row.get(c))) for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name, row in table["paper"].items():
        lines.append(f"| _{name}, not reproduced here_ | " + " | ".join(_fmt(row.get(c)) for c in cols) + " |")
    if table.get("scorers"):
        lines += ["", "Scorers: " + ", ".join(f"`{s}`" for s in table["scorers"])
                  + ". Rows in italics are the paper's numbers (LLaVA-1.5-7B, 610 K samples), for reference; "
                  "the paper's averages are over its seven columns."]
    return "\n".join(lines) + "\n"


def headline(scores: list[Score], model: str) -> dict[str, Any]:
    t2 = table2([s for s in scores if s.model == model])
    t4 = table4([s for s in scores if s.model == model])
    cheat = [v for k, v in t4["rows"].get(model, {}).items() if k.endswith("@1") and v is not None]
    return {"avg_by_shot": {str(k): t2["rows"][model][f"avg@{k}"] for k in t2["shots"]} if model in t2["rows"] else {},
            "cheat_1shot_avg": round(sum(cheat) / len(cheat), 2) if cheat else None}


def write_tables(out_dir: Path, scores: list[Score]) -> dict[str, Path]:
    t2, t4 = table2(scores), table4(scores)
    paths = {"table2": out_dir / "table2.md", "table4": out_dir / "table4.md", "tables": out_dir / "tables.json"}
    paths["table2"].write_text(markdown(t2, "Table 2 shape: few-shot accuracy (%), RICES demonstrations"))
    paths["table4"].write_text(markdown(t4, "Table 4 shape: the cheat test (%), the query itself in context"))
    paths["tables"].write_text(json.dumps({"table2": t2, "table4": t4}, indent=1))
    from textbook.benchmark.page import write_page

    paths["page"] = write_page(out_dir, {"table2": t2, "table4": t4})
    return paths


def shuffle_plot(points: dict[float, float | None], out: Path) -> Path:
    """Fig. 3 shape: average accuracy against the training-time image-shuffle ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = sorted(r for r, v in points.items() if v is not None)
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(xs, [points[x] for x in xs], marker="o", label="textbook corpus")
    ax.set_xlabel("image shuffle ratio (training)")
    ax.set_ylabel("average accuracy (%)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
