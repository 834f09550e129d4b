"""On-screen text of every keyframe (tesseract, or a VLM), with lines repeated from the previous keyframe removed.

Slides build up: the next keyframe usually repeats the title and earlier bullets. ``deduplicated``
keeps only the lines that are new relative to the previous keyframe in the video (compared
fuzzily, since OCR of the same line varies a little between frames), so the textbook does not
repeat the same on-screen text after every image. Light-on-dark text, bullets and template lines
(footers, slide numbers: ``boilerplate``) are handled in ``textbook.slide_ocr``. The ``vlm``
backend (``textbook.vlm_ocr``) reads formulas as LaTeX and, with ``ocr.score_keyframes``, rates
each keyframe: one under ``ocr.min_quality`` is marked ``dropped`` in ocr.json and the export
leaves it out of its clip's images.
"""

from __future__ import annotations

import difflib
import os
import shutil
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from textbook import models
from textbook.artifacts import output_key, read_input
from textbook.context import Context
from textbook.records import ClipFrames, Keyframe, OcrResult, Video
from textbook.slide_ocr import Line, is_boilerplate, read_slide, split_boilerplate
from textbook.stages.base import StageResult, stage
from textbook.vlm_ocr import PROMPT_VERSION, Reading, VlmOcr


class OcrUnavailable(RuntimeError):
    """The OCR engine or its language data is not installed."""


@contextmanager
def omp_threads(n: int) -> Iterator[None]:
    """``OMP_THREAD_LIMIT`` for the tesseract processes started inside: tesseract's OpenMP threads
    cost 3x the CPU for the same text on a small machine where stages run side by side
    (bench/ocr_threads.py). pytesseract passes this process's environment on; set only around
    its calls, so models built in the same process keep their own thread counts."""
    before = os.environ.get("OMP_THREAD_LIMIT")
    os.environ["OMP_THREAD_LIMIT"] = str(n)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("OMP_THREAD_LIMIT", None)
        else:
            os.environ["OMP_THREAD_LIMIT"] = before


class Tesseract:
    """pytesseract bound to one language, checked once when built."""

    def __init__(self, language: str, threads: int = 1) -> None:
        import pytesseract

        if shutil.which(pytesseract.pytesseract.tesseract_cmd) is None:
            raise OcrUnavailable("tesseract is not installed (apt-get install tesseract-ocr)")
        missing = set(language.split("+")) - set(pytesseract.get_languages(config=""))
        if missing:
            raise OcrUnavailable(f"ocr.language {language!r}: tesseract has no data for {', '.join(sorted(missing))} "
                                 f"(apt-get install tesseract-ocr-<lang>)")
        self._tess = pytesseract
        self.language = language
        self.threads = threads

    def read(self, image: Path, min_confidence: float) -> list[Line]:
        """Text lines in reading order, made of the words read with at least ``min_confidence``."""
        with omp_threads(self.threads):
            return read_slide(self._tess, image, self.language, min_confidence)

    def lines(self, image: Path, min_confidence: float) -> list[str]:
        return [line.text for line in self.read(image, min_confidence)]


def _norm(line: str) -> str:
    return " ".join(line.lower().split())


def new_lines(lines: list[str], previous: list[str], ratio: float) -> list[str]:
    """The lines that match no line of ``previous`` (difflib ratio under ``ratio``)."""
    before = [_norm(p) for p in previous]
    return [line for line in lines
            if not any(difflib.SequenceMatcher(None, _norm(line), p).ratio() >= ratio for p in before)]


@dataclass
class Read:
    """One keyframe's OCR before dedup: content lines, their confidences, template lines, and the VLM's score."""

    lines: list[str]
    confidence: list[float]
    boilerplate: list[str]
    reading: Reading | None = None  # the vlm backend's answer


def read_tesseract(engine: Tesseract, keyframes: list[Keyframe], ctx: Context) -> list[Read]:
    cfg = ctx.settings.ocr
    found: list[list[Line]] = []
    for keyframe in keyframes:
        with ctx.store.local_path(keyframe.key) as image:
            found.append(engine.read(image, cfg.min_confidence))
    template = split_boilerplate(found, cfg.boilerplate_share, cfg.boilerplate_min_keyframes)
    out = []
    for lines in found:
        content = [line for line in lines if not is_boilerplate(line, template)]
        out.append(Read([line.text for line in content], [line.confidence for line in content],
                        [line.text for line in lines if is_boilerplate(line, template)]))
    return out


def read_vlm(engine: VlmOcr, keyframes: list[Keyframe], ctx: Context) -> list[Read]:
    """The keyframes a batch at a time (``ocr.vlm.batch_size``), so a store downloads only that many at once."""
    vlm = models.ocr_vlm_use(ctx.settings).load(ctx)
    step = ctx.settings.ocr.vlm.batch_size
    out = []
    for start in range(0, len(keyframes), step):
        with ExitStack() as stack:
            images = [stack.enter_context(ctx.store.local_path(k.key)) for k in keyframes[start:start + step]]
            out += [Read(r.lines, [], [], r) for r in engine.read(vlm, images)]
    return out


def drop_reason(reading: Reading | None, min_quality: int) -> str:
    if reading is None or reading.quality is None or reading.quality >= min_quality:
        return ""
    return f"quality {reading.quality} under ocr.min_quality {min_quality}" + (
        f": {', '.join(reading.issues)}" if reading.issues else "")


@stage("ocr", sections=("ocr",), requires=("keyframes",), version="2")
def run(video: Video, ctx: Context) -> StageResult:
    cfg = ctx.settings.ocr
    if cfg.score_keyframes and cfg.backend != "vlm":
        raise models.BackendError(f"ocr.score_keyframes needs ocr.backend vlm (it is {cfg.backend!r})")
    engine: Tesseract | VlmOcr | None = models.load(ctx, "ocr", cfg, "ocr")  # None: ocr.backend none
    vid, store = video.video_id, ctx.store
    clip_frames = [ClipFrames.from_dict(c) for c in read_input(ctx, vid, "keyframes")["clips"]]
    keyframes = sorted((k for c in clip_frames for k in c.keyframes), key=lambda k: (k.time, k.clip_index, k.k))

    if engine is None:
        read = [Read([], [], []) for _ in keyframes]
    elif isinstance(engine, VlmOcr):
        read = read_vlm(engine, keyframes, ctx)
    else:
        read = read_tesseract(engine, keyframes, ctx)
    results: list[OcrResult] = []
    previous: list[str] = []
    for keyframe, r in zip(keyframes, read, strict=True):
        fresh = new_lines(r.lines, previous, cfg.dedup_ratio)
        score = r.reading
        dropped = drop_reason(score, cfg.min_quality)
        results.append(OcrResult(keyframe.key, "\n".join(r.lines), "\n".join(fresh), r.confidence, r.boilerplate,
                                 score.quality if score else None, list(score.issues) if score else [],
                                 score.scoring if score else "", dropped))
        if not dropped:  # a dropped keyframe never ships, so the next one is compared with the last one that does
            previous = r.lines

    boilerplate = sorted({line for r in results for line in r.boilerplate})
    doc: dict[str, Any] = {"results": [r.to_dict() for r in results], "ocr_boilerplate": boilerplate}
    if isinstance(engine, VlmOcr):
        doc["engine"] = {"backend": "vlm", "vlm": f"{cfg.vlm.backend}:{cfg.vlm.model}",
                         "prompt_version": PROMPT_VERSION, "score_keyframes": cfg.score_keyframes,
                         "min_quality": cfg.min_quality}
    ref = store.put_json(output_key(ctx, vid, "ocr", "ocr.json"), doc)
    chars = sum(len(r.text) for r in results)
    summary: dict[str, Any] = {"keyframes": len(results), "chars": chars,
                               "deduplicated_chars": sum(len(r.deduplicated) for r in results),
                               "boilerplate_lines": len(boilerplate)}
    if engine is None:
        summary["skipped"] = "ocr.backend: none (no OCR; the paper's w/o-OCR ablation)"
    if cfg.score_keyframes:
        summary["dropped_keyframes"] = sum(bool(r.dropped) for r in results)
        summary["unparseable"] = sum(r.scoring == "unparseable" for r in results)
    return StageResult(artifacts=[ref], summary=summary)


STAGE = run
