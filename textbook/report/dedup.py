"""Near-duplicate images by perceptual hash (dHash), within one video and across videos.

SSIM keeps a keyframe when the picture changed against the last kept one, so a slide shown again
later, or the same intro card in every video of a channel, ships more than once. A 64-bit
difference hash (brightness gradients of a 9x8 grayscale thumbnail) survives re-encoding and
resizing; two images whose hashes differ in at most ``MAX_DISTANCE`` bits are reported. Pairs are
found through bands of the hash, so a report of many thousand keyframes takes seconds.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import combinations, islice, product
from pathlib import Path

import numpy as np
from PIL import Image

MAX_DISTANCE = 4  # of 64 bits: re-encoded copies differ by 0-2, one added bullet line by more


def dhash(path: Path) -> int:
    """64-bit difference hash: is each pixel of a 9x8 grayscale thumbnail brighter than its right neighbour."""
    with Image.open(path) as img:
        small = np.asarray(img.convert("L").resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int(sum(1 << n for n, bit in enumerate(bits) if bit))


@dataclass(frozen=True)
class Pair:
    a: str  # dataset-relative image paths, a < b
    b: str
    distance: int  # differing hash bits

    @property
    def across(self) -> bool:
        return video_of(self.a) != video_of(self.b)


@dataclass(frozen=True)
class Audit:
    images: int  # images hashed
    pairs: list[Pair]  # near-duplicate pairs, closest first (at most EXAMPLES: a corpus can have millions)
    counts: dict[bool, int]  # across -> how many near-duplicate pairs there are in all
    shares: dict[bool, float]  # across -> share of the images with a near-duplicate (in the same / another video)

    def pair_count(self, across: bool) -> int:
        return self.counts[across]

    def share(self, across: bool) -> float:
        """Share of the images with a near-duplicate in the same video (or in another one)."""
        return self.shares[across]


EXAMPLES = 10_000
BANDS = ((0, 13), (13, 26), (26, 39), (39, 52), (52, 64))  # hashes within MAX_DISTANCE bits share a band


def video_of(path: str) -> str:
    """images/<video_id>/<file> -> video_id."""
    return path.split("/")[-2]


def _near(hashes: list[int]) -> list[tuple[int, int, int]]:
    """(i, j, distance) for every pair of distinct hashes within MAX_DISTANCE bits, found through
    the bands (two hashes that close agree on at least one of the five), not by all pairs."""
    found: dict[tuple[int, int], int] = {}
    for low, high in BANDS:
        mask = (1 << (high - low)) - 1
        groups: dict[int, list[int]] = {}
        for i, h in enumerate(hashes):
            groups.setdefault((h >> low) & mask, []).append(i)
        for members in groups.values():
            for x, i in enumerate(members):
                for j in members[x + 1:]:
                    if (i, j) not in found and (d := (hashes[i] ^ hashes[j]).bit_count()) <= MAX_DISTANCE:
                        found[(i, j)] = d
    return [(i, j, d) for (i, j), d in found.items()]


def audit(root: Path, paths: list[str]) -> Audit:
    """Hash every image (dataset-relative paths) and find those within ``MAX_DISTANCE`` bits."""
    paths = sorted(set(paths))
    by_hash: dict[int, list[str]] = {}
    for p in paths:
        by_hash.setdefault(dhash(root / p), []).append(p)
    hashes = sorted(by_hash)
    links = [(i, i, 0) for i in range(len(hashes))] + _near(hashes)
    neighbours: dict[int, list[int]] = {i: [] for i in range(len(hashes))}
    for i, j, _ in links:
        neighbours[i].append(j)
        if i != j:
            neighbours[j].append(i)
    per_video = [Counter(video_of(p) for p in by_hash[h]) for h in hashes]
    counts = {False: 0, True: 0}
    examples: list[Pair] = []
    for i, j, d in sorted(links, key=lambda link: link[2]):
        same = sum(n * (n - 1) // 2 for n in per_video[i].values()) if i == j else \
            sum(n * per_video[j][v] for v, n in per_video[i].items())
        total = len(by_hash[hashes[i]]) * (len(by_hash[hashes[i]]) - 1) // 2 if i == j else \
            len(by_hash[hashes[i]]) * len(by_hash[hashes[j]])
        counts[False] += same
        counts[True] += total - same
        if len(examples) < EXAMPLES:
            combos = combinations(by_hash[hashes[i]], 2) if i == j else product(by_hash[hashes[i]], by_hash[hashes[j]])
            examples += [Pair(*sorted((a, b)), d) for a, b in islice(combos, EXAMPLES - len(examples))]
    hit = {False: 0, True: 0}
    for i, h in enumerate(hashes):
        near = Counter()
        for j in neighbours[i]:
            near.update(per_video[j])
        for p in by_hash[h]:
            video = video_of(p)
            hit[False] += near[video] > 1  # another image of its own video (itself counted once)
            hit[True] += sum(near.values()) > near[video]
    examples.sort(key=lambda p: (p.distance, p.a, p.b))
    shares = {k: hit[k] / len(paths) if paths else 0.0 for k in hit}
    return Audit(len(paths), examples, counts, shares)
