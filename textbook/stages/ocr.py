"""On-screen text of every keyframe (tesseract), with lines repeated from the previous keyframe removed.

Slides build up: the next keyframe usually repeats the title and earlier bullets. ``deduplicated``
keeps only the lines that are new relative to the previous keyframe in the video (compared
fuzzily, since OCR of the same line varies a little between frames), so the textbook does not
repeat the same on-screen text after every image. Light-on-dark text, bullets and template lines
(footers, slide numbers: ``boilerplate``) are handled in ``textbook.slide_ocr``.
"""

from __future__ import annotations

import difflib
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from textbook import models
from textbook.artifacts import output_key, read_input
from textbook.context import Context
from textbook.records import ClipFrames, OcrResult, Video
from textbook.slide_ocr import Line, is_boilerplate, read_slide, split_boilerplate
from textbook.stages.base import StageResult, stage


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


@stage("ocr", sections=("ocr",), requires=("keyframes",), version="2")
def run(video: Video, ctx: Context) -> StageResult:
    cfg = ctx.settings.ocr
    engine: Tesseract | None = models.load(ctx, "ocr", cfg, "ocr")  # None: ocr.backend none
    vid, store = video.video_id, ctx.store
    clip_frames = [ClipFrames.from_dict(c) for c in read_input(ctx, vid, "keyframes")["clips"]]
    keyframes = sorted((k for c in clip_frames for k in c.keyframes), key=lambda k: (k.time, k.clip_index, k.k))

    read: list[list[Line]] = []
    for keyframe in keyframes:
        if engine is None:
            read.append([])
            continue
        with store.local_path(keyframe.key) as image:
            read.append(engine.read(image, cfg.min_confidence))
    template = split_boilerplate(read, cfg.boilerplate_share, cfg.boilerplate_min_keyframes)
    results: list[OcrResult] = []
    previous: list[str] = []
    for keyframe, found in zip(keyframes, read):
        content = [line for line in found if not is_boilerplate(line, template)]
        lines = [line.text for line in content]
        fresh = new_lines(lines, previous, cfg.dedup_ratio)
        results.append(OcrResult(keyframe.key, "\n".join(lines), "\n".join(fresh),
                                 [line.confidence for line in content],
                                 [line.text for line in found if is_boilerplate(line, template)]))
        previous = lines

    boilerplate = sorted({line for r in results for line in r.boilerplate})
    ref = store.put_json(output_key(ctx, vid, "ocr", "ocr.json"),
                         {"results": [r.to_dict() for r in results], "ocr_boilerplate": boilerplate})
    chars = sum(len(r.text) for r in results)
    return StageResult(artifacts=[ref], summary={"keyframes": len(results), "chars": chars,
                                                 "deduplicated_chars": sum(len(r.deduplicated) for r in results),
                                                 "boilerplate_lines": len(boilerplate),
                                                 **({"skipped": "ocr.backend: none (no OCR; the paper's w/o-OCR "
                                                    "ablation)"} if engine is None else {})})


STAGE = run
