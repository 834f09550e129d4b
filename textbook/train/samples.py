"""OBELICS samples (FORMAT.md section 2) as training documents: text assembly, re-packing, shuffling.

Text assembly copies the official ``ObelicsFormatDataset``: every image slot becomes the family's
placeholder, text slots are joined by single spaces, no space around a placeholder, images past
``max_images`` are dropped together with their slots. Re-packing splits a sample that is too long
for the target model only between clips (an End-of-Video marker stays with the clip before it),
so an image is never cut from its placeholder nor a clip from its text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Sequence

FIELDS = ("images", "texts", "text_ocr_list", "metadata")
CLIP_VIEW_EOV = "End of a Video"  # the release's spelling of the clip view's video boundary


@dataclass(frozen=True)
class Document:
    """One training sample: text with placeholders, and the images in placeholder order."""

    text: str
    images: tuple[str, ...]


def _slot_count(sample: dict[str, Any]) -> int:
    n = len(sample["images"])
    if any(len(sample.get(f) or [None] * n) != n for f in FIELDS):
        raise ValueError("OBELICS sample: images, texts, text_ocr_list and metadata differ in length")
    return n


def drop_images_over(sample: dict[str, Any], max_images: int) -> dict[str, Any]:
    """Images after the first ``max_images`` go, each with its slot (texts stay)."""
    keep, seen = [], 0
    for i, image in enumerate(sample["images"]):
        if image is not None:
            seen += 1
            if seen > max_images:
                continue
        keep.append(i)
    return _select(sample, keep)


def _select(sample: dict[str, Any], idx: Sequence[int]) -> dict[str, Any]:
    out = {f: [(sample.get(f) or [None] * len(sample["images"]))[i] for i in idx] for f in FIELDS}
    out["image_num"] = sum(1 for i in out["images"] if i is not None)
    return out


def document(sample: dict[str, Any], *, text_field: str, placeholder: str, max_images: int) -> Document:
    """The assembled text and image list of one sample (EOS is the tokenizer's business)."""
    if text_field not in ("texts", "text_ocr_list"):
        raise ValueError(f"text_field must be 'texts' or 'text_ocr_list', got {text_field!r}")
    _slot_count(sample)
    sample = drop_images_over(sample, max_images)
    parts: list[str] = []
    images: list[str] = []
    last_was_text = False
    for image, text in zip(sample["images"], sample[text_field]):
        if image is not None:
            parts.append(placeholder)
            images.append(image)
            last_was_text = False
        elif text is not None and text.strip():
            parts.append((" " if last_was_text else "") + text.strip())
            last_was_text = True
    return Document("".join(parts), tuple(images))


def from_clip_view(sample: dict[str, Any], end_of_video: str) -> dict[str, Any]:
    """A clip-view sample (FORMAT.md section 3) as the OBELICS sample the exporter writes beside it:
    each clip's kept keyframes, then its refined transcript (plus its deduplicated OCR lines, each once,
    in ``text_ocr_list``); the ``End of a Video`` pseudo-clip becomes the End-of-Video text."""
    slots: list[tuple[str | None, str | None, str | None, dict[str, Any]]] = []
    last_vid = None
    for clip in sample["conversations"]:
        if clip.get("vid") == CLIP_VIEW_EOV:
            slots.append((None, end_of_video, end_of_video, {"video_id": last_vid, "clip_start": None,
                                                             "clip_end": None, "kind": "text"}))
            continue
        last_vid = clip["vid"]
        meta = {"video_id": clip["vid"], "clip_start": clip["clip_start"], "clip_end": clip["clip_end"]}
        kept = clip.get("visual_kept", True)
        for image in clip.get("keyframe_ssim") or [] if kept else []:
            slots.append((image, None, None, {**meta, "kind": "keyframe"}))
        lines: list[str] = []
        for text in clip.get("ocr_deduplicates") or [] if kept else []:
            lines += [x.strip() for x in text.splitlines() if x.strip() and x.strip() not in lines]
        asr, ocr = (clip.get("refined_asr") or "").strip(), "\n".join(lines)
        if asr or ocr:
            slots.append((None, asr, f"{asr}\n{ocr}" if asr and ocr else asr or ocr, {**meta, "kind": "text"}))
    return {"images": [s[0] for s in slots], "texts": [s[1] for s in slots],
            "text_ocr_list": [s[2] for s in slots], "metadata": [s[3] for s in slots],
            "image_num": sum(1 for s in slots if s[0] is not None)}


def _units(sample: dict[str, Any], end_of_video: str) -> list[list[int]]:
    """Slot indices grouped by clip; an End-of-Video slot closes the clip before it."""
    units: list[list[int]] = []
    current_key = None
    for i, (text, meta) in enumerate(zip(sample["texts"], sample["metadata"])):
        meta = meta or {}
        if text == end_of_video and sample["images"][i] is None:
            if not units:
                units.append([])
            units[-1].append(i)
            current_key = None
            continue
        key = (meta.get("video_id"), meta.get("clip_start"), meta.get("clip_end"))
        if key != current_key or not units:
            units.append([])
            current_key = key
        units[-1].append(i)
    return units


def repack(sample: dict[str, Any], cost: Callable[[str | None, str | None], int], *, max_length: int,
           max_images: int, end_of_video: str) -> list[dict[str, Any]]:
    """Split ``sample`` between clips so each piece fits ``max_length`` tokens and ``max_images``.

    ``cost(image, text)`` is one slot's tokens in the target model (an image's true token count).
    A single clip larger than the limits stays whole (its trailing images are dropped at encode
    time, with their slots). Pieces without an image are dropped: the loaders need one.
    """
    _slot_count(sample)
    pieces: list[list[int]] = [[]]
    tokens = images = 0
    for unit in _units(sample, end_of_video):
        u_tokens = sum(cost(sample["images"][i], sample["texts"][i]) for i in unit)
        u_images = sum(1 for i in unit if sample["images"][i] is not None)
        if pieces[-1] and (tokens + u_tokens > max_length or images + u_images > max_images):
            pieces.append([])
            tokens = images = 0
        pieces[-1].extend(unit)
        tokens += u_tokens
        images += u_images
    out = [_select(sample, p) for p in pieces if p]
    return [p for p in out if p["image_num"] > 0]


def shuffle_images(samples: list[dict[str, Any]], ratio: float, seed: int) -> tuple[list[dict[str, Any]], list[int]]:
    """The paper's Fig. 3 ablation: in round(ratio * N) samples (a seeded choice), permute the images
    across the sample's image slots; texts stay in place. Returns the samples and the chosen indices."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"shuffle_images_ratio must be within [0, 1], got {ratio}")
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(len(samples)), round(ratio * len(samples))))
    out = list(samples)
    for i in chosen:
        s = dict(out[i])
        slots = [k for k, im in enumerate(s["images"]) if im is not None]
        order = [s["images"][k] for k in slots]
        rng.shuffle(order)
        images = list(s["images"])
        for k, im in zip(slots, order):
            images[k] = im
        s["images"] = images
        out[i] = s
    return out, chosen
