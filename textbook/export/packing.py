"""Pack videos into samples up to a token budget, deterministically, one video at a time.

Videos are laid end to end, each closed by an End-of-Video entry. A video that fits in the
current sample's room joins it; one that fits an empty sample starts a new one (a video is only
cut when it has to be); one larger than the whole budget is cut at clip boundaries (its first
clips fill the room the current sample has left), and its End-of-Video stays glued to its last
clip. A single clip larger than the budget is never cut.

Every sample must hold an image (the public loader asserts it), so a piece without one is merged
into the sample before it (or, for the very first piece, the one after it): that may overshoot
the budget, but drops no text. Merging with a neighbour keeps the stream order, so every video
still reads chronologically.

The packer streams: it holds the sample being filled and the last finished one (which an
image-less successor may still join), never the corpus, so compaction runs in bounded memory.
"""

from __future__ import annotations

import random
from typing import Callable, Iterator, Sequence

from textbook.export.interleave import ClipItem, EndOfVideo, Entry

Sample = list[Entry]


def _has_image(sample: Sample) -> bool:
    return any(isinstance(e, ClipItem) and e.images for e in sample)


class Packer:
    """``add`` each video's clips in reading order; it yields the samples that are final."""

    def __init__(self, budget: int, cost: Callable[[Entry], int]) -> None:
        if budget <= 0:
            raise ValueError(f"export.token_budget must be positive, got {budget}")
        self.budget, self.cost = budget, cost
        self.current: Sample = []
        self.used = 0
        self.held: Sample | None = None  # the last sample with an image: image-less ones join it
        self.pending: Sample = []  # image-less pieces before the first sample with an image

    def _flush(self) -> Iterator[Sample]:
        sample, self.current, self.used = self.current, [], 0
        if not sample:
            return
        if not _has_image(sample):
            if self.held is not None:
                self.held.extend(sample)
            else:
                self.pending.extend(sample)
            return
        if self.held is not None:
            yield self.held
        self.held, self.pending = self.pending + sample, []

    def add(self, clips: Sequence[ClipItem]) -> Iterator[Sample]:
        if not clips:
            return
        end = EndOfVideo(clips[-1].video_id, clips[-1].knowledge_point)
        groups: list[list[Entry]] = [[c] for c in clips]
        groups[-1].append(end)
        costs = [sum(self.cost(e) for e in g) for g in groups]
        total = sum(costs)
        if self.used + total > self.budget and total <= self.budget:
            yield from self._flush()
        if self.used + total <= self.budget:
            self.current.extend(e for g in groups for e in g)
            self.used += total
            return
        for group, group_cost in zip(groups, costs, strict=True):
            if self.current and self.used + group_cost > self.budget:
                yield from self._flush()
            self.current.extend(group)
            self.used += group_cost

    def finish(self) -> Iterator[Sample]:
        """The last samples. Afterwards ``unplaced`` holds what no sample with an image could take."""
        yield from self._flush()
        if self.held is not None:
            yield self.held
            self.held = None

    @property
    def unplaced(self) -> Sample:
        """Entries of a stream that has no image at all: they cannot form a valid sample."""
        return self.pending


def sample_order(count: int, seed: int, curriculum: bool) -> list[int]:
    """The published position of each packed sample: shuffled across videos with a fixed seed, or
    the easy-to-hard order for a curriculum. ``order[k]`` is the packed index of the k-th sample."""
    order = list(range(count))
    if not curriculum:
        random.Random(seed).shuffle(order)
    return order
