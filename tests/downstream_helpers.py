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


COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30),
           "purple": (140, 30, 160), "orange": (240, 140, 20)}
SHAPES = ["circle", "square", "triangle", "star"]


def _class_tile(c: int, variant: int) -> Image.Image:
    """Class ``c`` (its colour and its dot count), ``variant`` a small shift: near duplicates per class."""
    colour = list(COLOURS.values())[c % len(COLOURS)]
    img = Image.new("RGB", (32, 32), colour)
    draw = ImageDraw.Draw(img)
    for d in range(1 + c % 4):
        x = 3 + d * 7 + variant % 2
        draw.ellipse([x, 20 + variant % 3, x + 4, 24 + variant % 3], fill=(255, 255, 255))
    return img


def write_tinybench(root: Path, classes: int = 6, per_class_test: int = 2, per_class_pool: int = 2) -> dict:
    """okvqa (colour, 10 answers), scienceqa_img (letter of the colour), mathvista/mathvision (dot count).

    Pools hold same-class near duplicates (what RICES must retrieve) and one planted exact duplicate of
    a test image under another id (what RICES must exclude). Returns the planted duplicate's ids."""
    names = list(COLOURS)

    def write(task: str, split: str, rows: list[tuple[str, int, int]]) -> None:
        folder = root / task
        (folder / "img").mkdir(parents=True, exist_ok=True)
        lines = []
        for item_id, c, variant in rows:
            rel = f"img/{split}_{item_id}.png"
            _class_tile(c, variant).save(folder / rel)
            colour = names[c % len(names)]
            if task == "okvqa":
                item = {"question": "What colour is the tile?", "answers": [colour] * 10, "answer": colour}
            elif task == "scienceqa_img":
                options = names[:4] if c % len(names) < 4 else names[2:6]
                item = {"question": "Which colour is the tile?", "choices": options,
                        "answer": "ABCD"[options.index(colour)]}
            else:
                item = {"question": "How many dots are there?", "answers": [str(1 + c % 4)], "answer": str(1 + c % 4)}
            lines.append({"id": item_id, "image": rel, **item})
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))

    test = [(f"t{c}_{v}", c, v) for c in range(classes) for v in range(per_class_test)]
    pool = [(f"p{c}_{v}", c, 10 + v) for c in range(classes) for v in range(per_class_pool)]
    planted = ("dup_of_t0_0", 0, 0)  # byte-identical to test item t0_0
    for task in ("okvqa", "scienceqa_img"):
        write(task, "test", test)
        write(task, "train", pool + [planted])
    write("mathvista", "test", test)
    write("mathvision", "test", [(f"mv{c}_{v}", c, 20 + v) for c in range(classes) for v in range(per_class_pool)])
    return {"planted": planted[0], "duplicate_of": "t0_0", "test_items": len(test)}
