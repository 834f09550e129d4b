"""Distribution plots as PNG files, byte-identical for the same data.

Figures are drawn with the Agg canvas directly (no pyplot, so no global state and no display),
under matplotlib's default style so that a user's matplotlibrc cannot change the bytes, and saved
without the "Software" text chunk, the only thing that would vary between matplotlib versions.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import matplotlib.style
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from textbook.report.data import Dataset
from textbook.report.verdicts import rule, scores, threshold


@dataclass(frozen=True)
class Plot:
    file: str  # name under report/
    title: str
    xlabel: str
    values: list[float]
    integer: bool  # one bar per value instead of a histogram
    threshold: float | None = None  # drawn as a vertical line: the filter's cut-off


def plots(data: Dataset) -> list[Plot]:
    exported = {v["video_id"] for v in data.videos if v["exported"]}
    clips = [c for vid in sorted(exported) for c in data.clips.get(vid, [])]
    return [
        Plot("keyframes-per-clip.png", "Keyframes per clip (kept by SSIM)", "keyframes",
             [len(c["keyframe_ssim"]) for c in clips], integer=True),
        Plot("clip-seconds.png", "Clip length", "seconds",
             [float(c["clip_end"]) - float(c["clip_start"]) for c in clips], integer=False),
        Plot("tokens-per-sample.png", "Tokens per sample (text + images)", "tokens",
             [s.token_num for s in data.samples], integer=False),
        *filter_plots(data),
    ]


def filter_plots(data: Dataset) -> list[Plot]:
    """One histogram per filter score over every video with one (kept or dropped), its threshold drawn."""
    out = []
    for name, values in scores(data.videos).items():
        r = rule(name)
        label = f"{r.quantity} ({r.unit})" if r.unit else r.quantity
        out.append(Plot(f"filter-{name}.png", f"Filter {name}: {r.quantity}", label, values, integer=False,
                        threshold=threshold(name, data.config)))
    return out


def _edges(plot: Plot) -> np.ndarray:
    """About 20 bins over the values and the threshold, one edge on the threshold so that no bar
    mixes passing and failing videos (a lone value is a narrow bar at its place)."""
    points = [*plot.values, *([] if plot.threshold is None else [plot.threshold])]
    lo, hi = min(points), max(points)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    width = (hi - lo) / 20
    anchor = lo if plot.threshold is None else plot.threshold
    start = anchor - math.ceil((anchor - lo) / width - 1e-9) * width
    return start + width * np.arange(math.ceil((hi - start) / width - 1e-9) + 1)


def draw(plot: Plot, path: Path) -> None:
    """Write the plot as a PNG at ``path`` (callers skip plots without values)."""
    with matplotlib.style.context("default"):
        fig = Figure(figsize=(5.0, 3.0), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        if plot.integer:
            counts = Counter(int(v) for v in plot.values)
            xs = sorted(counts)
            ax.bar(xs, [counts[x] for x in xs], width=0.8, color="#4a7ab5")
            ax.set_xticks(xs)
        else:
            ax.hist(plot.values, bins=_edges(plot), color="#4a7ab5", edgecolor="white")
        if plot.threshold is not None:
            ax.axvline(plot.threshold, color="#b00020", linestyle="--", linewidth=1.5,
                       label=f"threshold {plot.threshold:g}")
            ax.legend(loc="best", fontsize="small")
        ax.set_title(plot.title, fontsize="medium")
        ax.set_xlabel(plot.xlabel)
        ax.set_ylabel("count")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        fig.tight_layout()
        fig.savefig(path, format="png", metadata={"Software": None})
