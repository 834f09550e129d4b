"""OCR cost per keyframe with tesseract's OpenMP threads capped (``ocr.threads``, default 1) and
with tesseract's own default, on rendered 1280x720 slides; the text must not change.

Prints wall and CPU seconds per keyframe (CPU of the tesseract children, both passes of
``textbook.slide_ocr.read_slide``) and whether every slide read the same.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

SLIDES = [("Newton's second law", ["Force equals mass times acceleration", "Units: newton = kg m / s^2"]),
          ("Photosynthesis", ["Light energy becomes chemical energy", "Chlorophyll absorbs red and blue"]),
          ("Binary search", ["Halve the interval each step", "O(log n) comparisons"]),
          ("The water cycle", ["Evaporation, condensation, precipitation", "Collection in oceans and lakes"])]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(engine, images: list[Path], rounds: int) -> tuple[float, float, list[list[str]]]:  # noqa: ANN001
    texts = []
    wall, cpu = time.perf_counter(), _children_cpu()
    for _ in range(rounds):
        texts = [[line.text for line in engine.read(image, 60.0)] for image in images]
    n = rounds * len(images)
    return (time.perf_counter() - wall) / n, (_children_cpu() - cpu) / n, texts


def main() -> None:
    from slide_helpers import slide
    from textbook.stages.ocr import Tesseract

    rounds = int(os.environ.get("BENCH_OCR_ROUNDS", "3"))
    with tempfile.TemporaryDirectory() as tmp:
        images = []
        for n, (title, bullets) in enumerate(SLIDES):
            path = Path(tmp) / f"slide{n}.png"
            slide(title, bullets, (1280, 720)).save(path)
            images.append(path)
        capped = measure(Tesseract("eng", threads=1), images, rounds)
        default = measure(Tesseract("eng", threads=os.cpu_count() or 1), images, rounds)
    print(f"| tesseract threads | wall s / keyframe | CPU s / keyframe |  ({len(images)} slides x {rounds} rounds)")
    print("|---|---|---|")
    print(f"| 1 (ocr.threads default) | {capped[0]:.3f} | {capped[1]:.3f} |")
    print(f"| {os.cpu_count()} (tesseract's own default here) | {default[0]:.3f} | {default[1]:.3f} |")
    print(f"same text: {capped[2] == default[2]}; CPU ratio {default[1] / capped[1]:.2f}x")


if __name__ == "__main__":
    main()
