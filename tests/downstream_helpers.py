"""Small OBELICS corpora (FORMAT.md section 2) and benchmark copies written directly by the tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

EOV = "<|end_of_video|>"
SENTENCES = [
    "the triangle has three sides and three angles",
    "a square has four equal sides",
    "the area of a circle is pi times the radius squared",
    "water boils at one hundred degrees",
    "the derivative of x squared is two x",
]


def tile(colour: tuple[int, int, int], mark: int = 0, size: int = 32) -> Image.Image:
    img = Image.new("RGB", (size, size), colour)
    ImageDraw.Draw(img).rectangle([mark % 4 * 6, 2, mark % 4 * 6 + 5, 7], fill=(255 - colour[0], 255, 0))
    return img


def _clip(vid: str, start: float, k_images: int, text: str, ocr: str, root: Path, rng: random.Random,
          kp: str = "kp1") -> list[tuple]:
    end = start + 10.0
    slots = []
    for k in range(1, k_images + 1):
        rel = f"images/{vid}/{vid}@{start:.1f}_{end:.1f}#{k}.jpg"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        tile((rng.randrange(256), rng.randrange(256), rng.randrange(256)), k).save(root / rel, quality=90)
        slots.append((rel, None, None, {"video_id": vid, "clip_start": start, "clip_end": end, "kind": "keyframe",
                                        "knowledge_point": kp}))
    slots.append((None, text, f"{text} {ocr}".strip(), {"video_id": vid, "clip_start": start, "clip_end": end,
                                                         "kind": "text", "knowledge_point": kp}))
    return slots


def write_corpus(root: Path, samples: int = 12, seed: int = 0, shard_size: int = 5) -> Path:
    """``samples`` samples of two videos each (two clips, then End-of-Video, then one clip)."""
    rng = random.Random(seed)
    rows = []
    for n in range(samples):
        slots = []
        for v in range(2):
            vid = f"v{n:02d}{v}"
            for c in range(2 if v == 0 else 1):
                sentence = SENTENCES[(n + v + c) % len(SENTENCES)]
                slots += _clip(vid, 10.0 * c, 1 + (c % 2), sentence, f"slide {c + 1}", root, rng)
            if v == 0:
                slots.append((None, EOV, EOV, {"video_id": vid, "clip_start": None, "clip_end": None,
                                               "kind": "text", "knowledge_point": "kp1"}))
        rows.append({"images": [s[0] for s in slots], "texts": [s[1] for s in slots],
                     "text_ocr_list": [s[2] for s in slots], "metadata": [s[3] for s in slots],
                     "image_num": sum(1 for s in slots if s[0]), "text_num": 0, "token_num": 0})
    (root / "obelics").mkdir(parents=True, exist_ok=True)
    lengths, ranges = {}, {}
    for i, start in enumerate(range(0, len(rows), shard_size)):
        name = f"part-{i:05d}.jsonl"
        part = rows[start:start + shard_size]
        (root / "obelics" / name).write_text("".join(json.dumps(r) + "\n" for r in part))
        lengths[name], ranges[name] = len(part), [start, start + len(part)]
    (root / "obelics" / "length.json").write_text(json.dumps(lengths))
    (root / "obelics" / "shard_id_range.json").write_text(json.dumps(ranges))
    return root
