"""Which sampled frames become keyframes: settled screen states, never the middle of a transition.

Comparing each sample with the last kept frame (the paper's Algorithm 1) keeps the first frame
that differs, and in a cross-fade that frame is a double exposure of two slides. Here a frame
that differs opens a *change window*; the window closes on the first state that holds still:

- the next sample shows the same state and has moved less than ``settle_share`` of the whole
  change since the kept frame: the pending frame is settled and kept;
- the next sample differs, and the pending frame lies pixel by pixel between the kept frame and
  the next one (a fade, dissolve, wipe or build-in step): it is a transition frame and dropped,
  unless the window has lasted ``max_window`` seconds (handwriting, a board, an animation that
  never stops): then the newest frame is kept, so growing content still gives a keyframe per window;
- the next sample differs and the pending frame does not lie between: it was a real state, shown
  briefly, and is kept;
- the picture goes back to the kept frame: the excursion was a flash and is dropped.

All comparisons run on small grayscale thumbnails, so they cost little.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# A thumbnail pixel within this many grey levels of a value counts as equal to it: far above what
# sensor noise and compression leave after down-scaling, far below a text stroke's contrast.
PIXEL_TOLERANCE = 16.0


@dataclass
class Candidate:
    """One sampled frame: its time, what it belongs to (a clip), the frame and its thumbnail, and
    what ``similarity`` compares (the thumbnail, unless an extractor compares something else, such
    as a CLIP embedding); transitions are always judged on the thumbnail."""

    time: float
    owner: Any
    frame: np.ndarray
    small: np.ndarray
    signature: Any = None

    def __post_init__(self) -> None:
        if self.signature is None:
            self.signature = self.small


def outside_share(reference: np.ndarray, pending: np.ndarray, following: np.ndarray) -> float:
    """Share of ``pending``'s pixels outside the range spanned by ``reference`` and ``following``.

    Near 0 for any frame of a fade, dissolve or wipe between them; a different slide shown in
    between draws strokes where both are background, far outside that range.
    """
    a, p, b = (x.astype(np.float32) for x in (reference, pending, following))
    low, high = np.minimum(a, b) - PIXEL_TOLERANCE, np.maximum(a, b) + PIXEL_TOLERANCE
    return float(np.mean((p < low) | (p > high)))


def step_share(reference: np.ndarray, pending: np.ndarray, following: np.ndarray) -> float:
    """How far the picture moved from ``pending`` to ``following``, as a share of the change since ``reference``.

    Measured on the pixels that changed since the reference; 0 when ``pending`` already shows the
    final state, about 0.5 half-way through a fade.
    """
    a, p, b = (x.astype(np.float32) for x in (reference, pending, following))
    changed = np.abs(b - a) > PIXEL_TOLERANCE
    if not changed.any():
        return 0.0
    return float(np.abs(b - p)[changed].sum() / np.abs(b - a)[changed].sum())


class SettledPicker:
    """Feed candidates in time order with ``push``; it returns those to keep, in time order."""

    def __init__(self, similarity: Callable[[np.ndarray, np.ndarray], float], threshold: float,
                 settle_share: float, transition_share: float, max_window: float) -> None:
        self.similarity, self.threshold = similarity, threshold
        self.settle_share, self.transition_share, self.max_window = settle_share, transition_share, max_window
        self.reference: Candidate | None = None
        self.pending: Candidate | None = None
        self.window_start = 0.0

    def _same(self, a: Candidate, b: Candidate) -> bool:
        return self.similarity(a.signature, b.signature) >= self.threshold

    def _keep(self, candidate: Candidate) -> list[Candidate]:
        self.reference, self.pending = candidate, None
        return [candidate]

    def _open(self, candidate: Candidate) -> None:
        self.pending, self.window_start = candidate, candidate.time

    def push(self, c: Candidate) -> list[Candidate]:
        p, ref = self.pending, self.reference
        if p is None:
            if ref is None or not self._same(ref, c):
                self._open(c)
            return []
        if self._same(p, c) and (ref is None or step_share(ref.small, p.small, c.small) <= self.settle_share):
            return self._keep(p)
        if ref is not None and self._same(ref, c):
            self.pending = None  # back to the kept state: a flash, not a state
            return []
        if ref is not None and outside_share(ref.small, p.small, c.small) <= self.transition_share:
            if c.time - self.window_start >= self.max_window:
                return self._keep(c)  # still changing after a whole window: keep the newest picture
            self.pending = c  # a transition frame: the window goes on
            return []
        kept = self._keep(p)  # a real state shown briefly
        self._open(c)
        return kept

    def flush(self) -> list[Candidate]:
        """The pending frame at the end of the input (or of a clip, with per-clip reset): kept."""
        return self._keep(self.pending) if self.pending is not None else []

    def reset(self) -> None:
        self.reference, self.pending = None, None
