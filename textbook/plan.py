"""What the current settings would run again, per stage, before anything runs.

Run it after editing the settings (``textbook plan --config new.yaml``): operational knobs
(retries, timeouts, sleeps, where the source list lives) change nothing here; output knobs list
the stage that reads them and every stage after it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

from textbook.context import Context
from textbook.pipeline import STAGES
from textbook.runner import is_current


@dataclass
class StagePlan:
    stage: str
    counts: Counter = field(default_factory=Counter)  # up to date | re-run | new | failed | running


def plan(ctx: Context, kp_ids: Sequence[str] | None = None) -> list[StagePlan]:
    plans = {s.name: StagePlan(s.name) for s in STAGES}
    for row in ctx.db.videos(kp_ids=kp_ids):
        runs = {r.stage: r for r in ctx.db.runs(row.video_id)}
        for s in STAGES:
            run = runs.get(s.name)
            if run is None:
                state = "new"
            elif run.status in ("failed", "running"):
                state = run.status
            else:
                state = "up to date" if is_current(run, s, ctx) else "re-run"
            plans[s.name].counts[state] += 1
    return list(plans.values())


COLUMNS = ("up to date", "re-run", "new", "failed", "running")


def render_plan(plans: list[StagePlan]) -> str:
    lines = [f"{'stage':<15}" + "".join(f"{c:>12}" for c in COLUMNS)]
    lines += [f"{p.stage:<15}" + "".join(f"{p.counts[c]:>12}" for c in COLUMNS) for p in plans]
    rerun = sum(p.counts["re-run"] for p in plans)
    lines.append(f"{rerun} stage run(s) would be redone because an output setting or a stage version changed"
                 if rerun else "no finished stage would be redone")
    return "\n".join(lines)
