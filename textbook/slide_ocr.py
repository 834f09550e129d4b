"""Reading slides with tesseract: two passes for light-on-dark text, bullets stripped, template lines set apart.

Tesseract reads dark text on a light page. Slide templates also put titles in white on coloured
boxes, which the plain pass misses or garbles; a second pass on the inverted image (scaled up
when the frame is small) reads those, and the two
passes are merged line by line: where both read the same place, the line read with the higher
mean word confidence wins. The second pass only runs when the picture has enough dark area to
hold light text (a plain white slide costs one pass).

Bullet glyphs come out of tesseract as letters ("e ", "«", "©"): a leading glyph token before a
word is dropped. Lines that recur on most keyframes of a video (footers, slide numbers, logos,
player chrome) in the frame's top or bottom band are template, not content: ``split_boilerplate``
finds them, and the OCR stage moves them to their own field (a title repeated over a build-up,
in the body of the frame, stays content).
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

DARK_LEVEL = 100  # grey level under which a thumbnail pixel is dark (a box or background, not text strokes)
DARK_SHARE = 0.08  # dark area above which the inverted pass runs (body text alone covers far less)
_BULLET = re.compile(r"^(?:[•·▪■◦●○*+«»©®°¢~>]|[eo])\s+(?=[A-Za-z]{2})")
SECOND_PASS_HEIGHT = 720  # the inverted pass reads small frames scaled up to this height
_DIGITS = re.compile(r"\d+")
TOP_BAND, BOTTOM_BAND = 0.05, 0.2  # shares of the frame height: above the usual title, below the usual body
SAME_TEMPLATE = 0.85  # difflib ratio at which two template keys are one line read twice


@dataclass(frozen=True)
class Line:
    text: str
    confidence: float  # mean word confidence, 0-100
    box: tuple[int, int, int, int]  # left, top, right, bottom in pixels
    edge: bool = False  # in the frame's top or bottom band, where templates put footers and chrome


def strip_bullet(text: str) -> str:
    return _BULLET.sub("", text)


def _lines(data: dict[str, list[Any]], min_confidence: float, scale: float = 1.0) -> list[Line]:
    groups: dict[tuple[int, int, int], list[int]] = {}
    for i, word in enumerate(data["text"]):
        if word.strip() and float(data["conf"][i]) >= min_confidence:
            groups.setdefault((data["block_num"][i], data["par_num"][i], data["line_num"][i]), []).append(i)
    out = []
    for idx in groups.values():
        text = strip_bullet(" ".join(data["text"][i].strip() for i in idx))
        if not text:
            continue
        box = (min(data["left"][i] for i in idx), min(data["top"][i] for i in idx),
               max(data["left"][i] + data["width"][i] for i in idx), max(data["top"][i] + data["height"][i] for i in idx))
        box = tuple(round(v / scale) for v in box)
        out.append(Line(text, round(sum(float(data["conf"][i]) for i in idx) / len(idx), 1), box))
    return out


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Vertical overlap of more than half the shorter line, and any horizontal overlap."""
    height = min(a[3] - a[1], b[3] - b[1])
    vertical = min(a[3], b[3]) - max(a[1], b[1])
    return height > 0 and vertical > height / 2 and min(a[2], b[2]) > max(a[0], b[0])


def merge(first: list[Line], second: list[Line]) -> list[Line]:
    """Lines of both passes in reading order; where two overlap, the more confident one."""
    kept = list(first)
    for line in second:
        rivals = [k for k in kept if _overlap(k.box, line.box)]
        if all(line.confidence > r.confidence for r in rivals):
            kept = [k for k in kept if k not in rivals] + [line]
    return sorted(kept, key=lambda l: (l.box[1] // 10, l.box[0]))


def has_dark_area(image: Image.Image) -> bool:
    small = np.asarray(ImageOps.grayscale(image).resize((160, 90)))
    return float(np.mean(small < DARK_LEVEL)) >= DARK_SHARE


def read_slide(tess: Any, path: Path, language: str, min_confidence: float) -> list[Line]:
    """The text lines of a keyframe, from the plain pass and, on dark areas, the inverted pass."""
    image = Image.open(path).convert("RGB")
    lines = _read(tess, image, language, min_confidence)
    top, bottom = image.height * TOP_BAND, image.height * (1 - BOTTOM_BAND)
    return [Line(l.text, l.confidence, l.box, l.box[3] <= top or l.box[1] >= bottom) for l in lines]


def _read(tess: Any, image: Image.Image, language: str, min_confidence: float) -> list[Line]:
    plain = _lines(tess.image_to_data(image, lang=language, output_type=tess.Output.DICT), min_confidence)
    if not has_dark_area(image):
        return plain
    scale = max(1.0, SECOND_PASS_HEIGHT / image.height)
    inverted = ImageOps.invert(ImageOps.grayscale(image))
    if scale > 1:
        inverted = inverted.resize((round(image.width * scale), round(image.height * scale)),
                                   Image.Resampling.LANCZOS)
    data = tess.image_to_data(inverted, lang=language, output_type=tess.Output.DICT)
    return merge(plain, _lines(data, min_confidence, scale))


def _template_key(text: str) -> str:
    """Lines equal up to case, spacing and numbers ("Slide 3 / 18", "Slide 4 / 18") count as one."""
    return _DIGITS.sub("#", " ".join(text.lower().split()))


def _matches(key: str, keys: set[str]) -> bool:
    return key in keys or any(difflib.SequenceMatcher(None, key, k).ratio() >= SAME_TEMPLATE for k in keys)


def split_boilerplate(per_keyframe: list[list[Line]], share: float, min_keyframes: int) -> set[str]:
    """Template keys of the edge lines found on at least ``share`` of the keyframes (when there are enough);
    lines read slightly differently ("slide 5", "slide S") count as one."""
    if len(per_keyframe) < min_keyframes:
        return set()
    counts: Counter[str] = Counter()
    for lines in per_keyframe:
        seen: set[str] = set()
        for line in lines:
            if not line.edge:
                continue
            key = _template_key(line.text)
            known = next((k for k in counts if k == key or difflib.SequenceMatcher(None, key, k).ratio()
                          >= SAME_TEMPLATE), key)
            if known not in seen:
                seen.add(known)
                counts[known] += 1
    return {key for key, n in counts.items() if n >= share * len(per_keyframe)}


def is_boilerplate(line: Line, template: set[str]) -> bool:
    return line.edge and _matches(_template_key(line.text), template)
