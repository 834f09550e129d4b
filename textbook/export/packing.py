"""Pack videos into samples up to a token budget, deterministically.

Videos are laid end to end, each closed by an End-of-Video entry. A video that fits in the
current sample's room joins it; one that fits an empty sample starts a new one (a video is only
cut when it has to be); one larger than the whole budget is cut at clip boundaries (its first
clips fill the room the current sample has left), and its End-of-Video stays glued to its last
clip. A single clip larger than the budget is never cut.

Every sample must hold an image (the public loader asserts it), so a piece without one is merged
into the sample before it (or, for the very first piece, the one after it): that may overshoot
the budget, but drops no text. Merging with a neighbour keeps the stream order, so every video
still reads chronologically.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Sequence

from textbook.export.interleave import ClipItem, EndOfVideo, Entry

Sample = list[Entry]


@dataclass
class Packing:
    samples: list[Sample]
    unplaced: list[Entry]  # entries no sample with an image could take (the export has no image at all)


def pack(videos: Sequence[Sequence[ClipItem]], budget: int, cost: Callable[[Entry], int]) -> Packing:
    """``videos`` in reading order, each its clips in order; returns samples in the same order."""
    if budget <= 0:
        raise ValueError(f"export.token_budget must be positive, got {budget}")
    samples: list[Sample] = []
    current: Sample = []
    used = 0

    def flush() -> None:
        nonlocal current, used
        if current:
            samples.append(current)
        current, used = [], 0

    for clips in videos:
        if not clips:
            continue
        end = EndOfVideo(clips[-1].video_id, clips[-1].knowledge_point)
        groups: list[list[Entry]] = [[c] for c in clips]
        groups[-1].append(end)
        costs = [sum(cost(e) for e in g) for g in groups]
        total = sum(costs)
        if used + total > budget and total <= budget:
            flush()
        if used + total <= budget:
            current.extend(e for g in groups for e in g)
            used += total
            continue
        for group, group_cost in zip(groups, costs, strict=True):
            if current and used + group_cost > budget:
                flush()
            current.extend(group)
            used += group_cost
    flush()
    return _give_every_sample_an_image(samples)


def _has_image(sample: Sample) -> bool:
    return any(isinstance(e, ClipItem) and e.images for e in sample)


def _give_every_sample_an_image(samples: list[Sample]) -> Packing:
    out: list[Sample] = []
    pending: list[Entry] = []
    for sample in samples:
        if _has_image(sample):
            out.append(pending + sample)
            pending = []
        elif out:
            out[-1].extend(sample)
        else:
            pending.extend(sample)
    return Packing(out, pending)


def order_samples(samples: list[Sample], seed: int, curriculum: bool) -> list[Sample]:
    """Shuffle across videos with a fixed seed, or keep the easy-to-hard order for a curriculum."""
    if curriculum:
        return list(samples)
    shuffled = list(samples)
    random.Random(seed).shuffle(shuffled)
    return shuffled
