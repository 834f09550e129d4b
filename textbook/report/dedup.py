"""Near-duplicate images by perceptual hash (dHash), within one video and across videos.

SSIM keeps a keyframe when the picture changed against the last kept one, so a slide shown again
later, or the same intro card in every video of a channel, ships more than once. A 64-bit
difference hash (brightness gradients of a 9x8 grayscale thumbnail) survives re-encoding and
resizing; two images whose hashes differ in at most ``MAX_DISTANCE`` bits are reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

MAX_DISTANCE = 4  # of 64 bits: re-encoded copies differ by 0-2, one added bullet line by more
_POPCOUNT = np.array([n.bit_count() for n in range(256)], dtype=np.uint8)


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
    pairs: list[Pair]  # every near-duplicate pair, closest first

    def share(self, across: bool) -> float:
        """Share of the images with a near-duplicate in the same video (or in another one)."""
        hit = {p for pair in self.pairs if pair.across == across for p in (pair.a, pair.b)}
        return len(hit) / self.images if self.images else 0.0


def video_of(path: str) -> str:
    """images/<video_id>/<file> -> video_id."""
    return path.split("/")[-2]


def audit(root: Path, paths: list[str]) -> Audit:
    """Hash every image (dataset-relative paths) and pair those within ``MAX_DISTANCE`` bits."""
    paths = sorted(set(paths))
    if not paths:
        return Audit(0, [])
    hashes = np.array([dhash(root / p) for p in paths], dtype=np.uint64)
    as_bytes = hashes.view(np.uint8).reshape(-1, 8)
    pairs = []
    for i in range(len(paths) - 1):  # one row of the distance matrix at a time: memory stays linear
        distance = _POPCOUNT[as_bytes[i] ^ as_bytes[i + 1:]].sum(axis=1)
        for j in np.nonzero(distance <= MAX_DISTANCE)[0]:
            pairs.append(Pair(paths[i], paths[i + 1 + int(j)], int(distance[j])))
    pairs.sort(key=lambda p: (p.distance, p.a, p.b))
    return Audit(len(paths), pairs)
