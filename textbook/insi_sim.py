"""InSI-SIM, the paper's in-sample image similarity (Table 1): how alike the images of a sample are.

By the paper's formula, for each pair of images in a sample: the mean of SSIM and of the CLIP
image-image cosine normalised to [0, 1] as (cos + 1) / 2; a sample's score is the mean over its
pairs; a figure for L is the mean over the samples holding exactly L images (the paper: L = 4 ... 8).

The official script (``llava/dataset/check_inbatchsim.py`` of DAMO-NLP-SG/multimodal_textbook)
does not compute that: ``inbatch_clip_score.py`` stores a sample's *sum* over pairs of
(cos + 1) / 2, and the check normalises that sum once more, (sum + 1) / 2, before it averages with
the SSIM sum and divides by the number of pairs. Its CLIP term so weighs 1/4 instead of 1/2, plus
1 / (4 x pairs). ``arithmetic="official_script"`` reproduces it, to compare with the paper's
figures; ``"paper"`` is the formula.

Without a CLIP model (nothing can be downloaded offline) the score is the SSIM term alone, and
every figure says so. SSIM follows the official script: grayscale, the second image resized to the
first one's size when they differ, scikit-image's 7 x 7 window, through the keyframe stage's
``ssim``; the images are scaled to ``ssim_width`` first (0: as stored, as the script does).

Which samples are measured is a seeded hash of their image paths: the ``count`` samples with the
smallest hash, kept in a bounded heap while the samples stream past, so the same corpus always
gives the same choice whatever order it is read in, and a growing corpus keeps most of it.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from textbook.clip_images import ClipImages, clip_images
from textbook.stages.keyframes import compare_image, ssim

ARITHMETICS = ("paper", "official_script")
PAPER_COUNTS = (4, 5, 6, 7, 8)  # the image counts L the paper reports
# Table 1 of arXiv 2501.00958, overall figures (CLIP + SSIM, as its script computes them).
PAPER_FIGURES = (("Multimodal textbook (paper)", 0.686), ("OBELICS (paper)", 0.345), ("MMC4 (paper)", 0.319))
SSIM_WINDOW = 7  # scikit-image's default window: no image side may be shorter
DIGITS = 6


@dataclass(frozen=True)
class Method:
    """How the score is made; ``clip_model`` is a local model folder, empty for the SSIM term alone."""

    clip_model: str = ""
    arithmetic: str = "paper"
    ssim_width: int = 320

    def __post_init__(self) -> None:
        if self.arithmetic not in ARITHMETICS:
            raise ValueError(f"InSI-SIM arithmetic must be one of {', '.join(ARITHMETICS)}, got {self.arithmetic!r}")
        if self.arithmetic == "official_script" and not self.clip_model:
            raise ValueError("the official script's arithmetic is about its CLIP term: it needs a CLIP model "
                             "folder (export.insi_sim_clip_model)")

    @property
    def label(self) -> str:
        if not self.clip_model:
            return "SSIM only (no CLIP model)"
        if self.arithmetic == "official_script":
            return "CLIP + SSIM, the official script's arithmetic (CLIP term normalised twice)"
        return "CLIP + SSIM (the paper's formula)"

    def describe(self) -> str:
        size = (f"scaled to {self.ssim_width} px wide (SSIM depends on the scale: the official script compares "
                "images at their stored size, export.insi_sim_ssim_width: 0)" if self.ssim_width
                else "at their stored size, as the official script")
        clip = (f"CLIP image embeddings of `{Path(self.clip_model).name}` (a local folder)" if self.clip_model
                else "no CLIP model (export.insi_sim_clip_model is empty), so the CLIP term is left out")
        return f"{self.label}: SSIM on grayscale images {size}; {clip}."


@dataclass(frozen=True)
class Pair:
    i: int  # positions among the sample's images
    j: int
    ssim: float
    clip_cosine: float | None  # raw cosine in [-1, 1]; None without a CLIP model

    def to_json(self) -> dict[str, Any]:
        return {"i": self.i, "j": self.j, "ssim": self.ssim, "clip_cosine": self.clip_cosine}


def sample_score(pairs: Sequence[Pair], arithmetic: str = "paper") -> float:
    """One sample's InSI-SIM from its pairs (see the module's docstring for the two arithmetics)."""
    if not pairs:
        raise ValueError("a sample needs two images to have a pair")
    n = len(pairs)
    ssim_sum = sum(p.ssim for p in pairs)
    if any(p.clip_cosine is None for p in pairs):
        return ssim_sum / n
    clip_sum = sum((p.clip_cosine + 1) / 2 for p in pairs)
    if arithmetic == "official_script":
        return (ssim_sum + (clip_sum + 1) / 2) / 2 / n
    return (ssim_sum + clip_sum) / 2 / n


def grey(image: Image.Image, width: int) -> np.ndarray:
    """The grayscale array SSIM compares: ``width`` px wide (never enlarged), or as stored for 0."""
    rgb = np.asarray(image.convert("RGB"))
    if width and width < image.width:
        return compare_image(rgb, width)
    return np.asarray(image.convert("L"))


def pair_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two grayscale arrays, ``b`` resized to ``a``'s size when they differ (the official script)."""
    if b.shape != a.shape:
        b = np.asarray(Image.fromarray(b).resize((a.shape[1], a.shape[0]), Image.Resampling.BOX))
    if min(a.shape) < SSIM_WINDOW:
        raise ValueError(f"an image of {a.shape[1]}x{a.shape[0]} px is smaller than SSIM's "
                         f"{SSIM_WINDOW} px window")
    return ssim(a, b)


def measure_images(images: Sequence[Image.Image], method: Method, clip: ClipImages | None) -> list[Pair]:
    """Every pair of ``images`` (in order: (0, 1), (0, 2), ...), values rounded to 6 digits."""
    greys = [grey(im, method.ssim_width) for im in images]
    embeddings = clip.embed(images) if clip is not None else None
    pairs = []
    for i, j in combinations(range(len(images)), 2):
        cosine = None if embeddings is None else round(float(np.clip(embeddings[i] @ embeddings[j], -1, 1)), DIGITS)
        pairs.append(Pair(i, j, round(pair_ssim(greys[i], greys[j]), DIGITS), cosine))
    return pairs


def load_images(paths: Iterable[Path]) -> list[Image.Image]:
    out = []
    for path in paths:
        with Image.open(path) as image:
            out.append(image.convert("RGB"))
    return out


@dataclass(frozen=True)
class SampleResult:
    index: int  # the sample's position in the corpus (its global index in the OBELICS shards)
    images: tuple[str, ...]  # as the sample writes them
    pairs: tuple[Pair, ...]
    score: float

    @property
    def image_num(self) -> int:
        return len(self.images)

    def to_json(self) -> dict[str, Any]:
        return {"sample": self.index, "image_num": self.image_num, "score": self.score,
                "images": list(self.images), "pairs": [p.to_json() for p in self.pairs]}


def measure_sample(index: int, images: Sequence[str], root: Path, method: Method,
                   clip: ClipImages | None) -> SampleResult:
    """A sample whose image paths are relative to ``root`` (or absolute)."""
    pairs = measure_images(load_images(root / p for p in images), method, clip)
    return SampleResult(index, tuple(images), tuple(pairs), round(sample_score(pairs, method.arithmetic), DIGITS))


def selection_key(seed: int, images: Sequence[str]) -> int:
    digest = hashlib.sha256("\0".join([str(seed), *images]).encode()).hexdigest()
    return int(digest[:16], 16)


class Chooser:
    """The ``count`` samples with two images or more whose seeded hash is smallest, in bounded memory."""

    def __init__(self, count: int, seed: int) -> None:
        self.count, self.seed = count, seed
        self.eligible = 0  # samples seen with two images or more
        self._heap: list[tuple[int, int, tuple[str, ...]]] = []  # (-key, index, images): the largest key on top

    def offer(self, index: int, images: Sequence[str]) -> None:
        if len(images) < 2:
            return
        self.eligible += 1
        item = (-selection_key(self.seed, images), index, tuple(images))
        if len(self._heap) < self.count:
            heapq.heappush(self._heap, item)
        elif self.count and item > self._heap[0]:
            heapq.heapreplace(self._heap, item)

    def chosen(self) -> list[tuple[int, tuple[str, ...]]]:
        """(index, images) of the chosen samples, by index."""
        return sorted((index, images) for _, index, images in self._heap)


@dataclass
class Measurement:
    method: Method
    seed: int
    requested: int
    eligible: int  # samples of the corpus with two images or more
    results: list[SampleResult] = field(default_factory=list)

    def mean(self, count: int | None = None) -> tuple[float | None, int]:
        """Mean score and number of the measured samples with ``count`` images (None: all of them)."""
        scores = [r.score for r in self.results if count is None or r.image_num == count]
        return (sum(scores) / len(scores) if scores else None), len(scores)

    def lines(self) -> Iterator[bytes]:
        """``insi_sim.jsonl``: one measured sample a line, by index."""
        for result in self.results:
            yield (json.dumps(result.to_json(), ensure_ascii=False, allow_nan=False) + "\n").encode()

    def table(self) -> list[list[str]]:
        """The Table 1 row for this corpus, then the paper's overall figures."""
        def cell(count: int | None) -> str:
            value, n = self.mean(count)
            return "-" if value is None else f"{value:.3f} ({n})"

        ours = ["This corpus", self.method.label, str(len(self.results)), *map(cell, PAPER_COUNTS), cell(None)]
        paper = [[name, "CLIP + SSIM (the official script)", "", *["n/a"] * len(PAPER_COUNTS), f"{value:.3f}"]
                 for name, value in PAPER_FIGURES]
        return [ours, *paper]

    @staticmethod
    def header() -> list[str]:
        return ["Corpus", "Method", "Samples measured", *(f"L = {n}" for n in PAPER_COUNTS), "All measured"]

    def notes(self) -> list[str]:
        return [
            f"- {self.method.describe()}",
            f"- Measured on {len(self.results)} of the {self.eligible} sample(s) with two images or more, chosen by "
            f"a hash of their image paths seeded with {self.seed} (at most {self.requested}); a cell gives the mean "
            "over the measured samples with exactly L images, and their number in brackets.",
            "- The paper's rows are its overall figures (Table 1, CLIP + SSIM as its script computes them, on its "
            "own sample of each corpus); its per-L figures are not reproduced here. An SSIM-only figure is not "
            "comparable with them.",
        ]


def iter_samples(source: Path) -> Iterator[dict[str, Any]]:
    """OBELICS-format samples in corpus order from a dataset folder (``obelics/part-*.jsonl``), a
    folder of ``.jsonl`` shards, a ``.jsonl`` file, or a ``.json`` array (read whole)."""
    if source.is_dir():
        folder = source / "obelics" if (source / "obelics").is_dir() else source
        files = sorted(folder.glob("*.jsonl"))
        if not files:
            raise FileNotFoundError(f"{source}: no obelics/ shards and no .jsonl files")
    else:
        files = [source]
    for path in files:
        if path.suffix == ".json":
            yield from json.loads(path.read_text())
            continue
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)


def sample_images(sample: dict[str, Any]) -> list[str]:
    return [p for p in sample.get("images") or [] if p is not None]


def measure_chosen(chooser: Chooser, root: Path, method: Method, device: str = "cpu",
                   index_of: dict[int, int] | None = None) -> Measurement:
    """Measure the chooser's samples, their images read under ``root``; ``index_of`` maps the
    chooser's indices to the ones reported (default: the same)."""
    clip = clip_images(method.clip_model, device) if method.clip_model else None
    chosen = sorted(((index_of or {}).get(i, i), images) for i, images in chooser.chosen())
    results = [measure_sample(index, images, root, method, clip) for index, images in chosen]
    return Measurement(method, chooser.seed, chooser.count, chooser.eligible, results)


def measure_corpus(source: Path, method: Method, count: int, seed: int, device: str = "cpu",
                   images_root: Path | None = None) -> Measurement:
    """InSI-SIM of an OBELICS-format corpus; relative image paths are read under ``images_root``
    (default: the dataset folder, or the folder of a single file)."""
    chooser = Chooser(count, seed)
    for index, sample in enumerate(iter_samples(source)):
        chooser.offer(index, sample_images(sample))
    root = images_root or (source if source.is_dir() else source.parent)
    return measure_chosen(chooser, root, method, device)
