"""Benchmark items from local copies: the canonical JSONL, and VLMEvalKit TSVs (base64 images).

Canonical layout: ``<data_root>/<task>/<split>.jsonl``, one item per line::

    {"id", "image": path relative to the file, "question", "answers": [...] (VQA: the 10 human
     answers), "choices": [...] | null, "answer": "B" | text, "ocr_tokens": [...] | null}

A VLMEvalKit ``<data_root>/<task>/<split>.tsv`` (columns ``index, image`` (base64) or
``image_path``, ``question, A, B, ..., answer``) is converted on first read into that layout. Nothing
ever calls a hub.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import string
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class BenchmarkDataError(ValueError):
    """A benchmark copy is missing or malformed; the message names the file and the line."""


@dataclass(frozen=True)
class Item:
    id: str
    task: str
    image: Path
    question: str
    answers: tuple[str, ...]
    answer: str
    choices: tuple[str, ...] | None = None
    ocr_tokens: tuple[str, ...] | None = None

    @property
    def image_sha(self) -> str:
        return _sha(self.image)

    @property
    def demo_answer(self) -> str:
        """What a demonstration shows as its answer: the letter, else the first gold answer."""
        return self.answer if self.choices else (self.answers[0] if self.answers else self.answer)


_SHA: dict[Path, str] = {}


def _sha(path: Path) -> str:
    if path not in _SHA:
        _SHA[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _SHA[path]


def _item(raw: dict[str, Any], task: str, base: Path, where: str) -> Item:
    try:
        answers = tuple(str(a) for a in (raw.get("answers") or [raw["answer"]]))
        return Item(str(raw["id"]), task, (base / raw["image"]).resolve(), str(raw["question"]), answers,
                    str(raw.get("answer", answers[0])),
                    tuple(str(c) for c in raw["choices"]) if raw.get("choices") else None,
                    tuple(str(t) for t in raw["ocr_tokens"]) if raw.get("ocr_tokens") else None)
    except (KeyError, TypeError, IndexError) as exc:
        raise BenchmarkDataError(f"{where}: {type(exc).__name__}: {exc}") from None


def tsv_to_jsonl(tsv: Path, out: Path) -> Path:
    """VLMEvalKit TSV -> canonical JSONL beside it, images decoded into ``<split>_images/``."""
    csv.field_size_limit(sys.maxsize)
    images = out.parent / f"{out.stem}_images"
    images.mkdir(parents=True, exist_ok=True)
    lines = []
    with tsv.open(newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if row.get("image_path"):
                rel = str(Path(row["image_path"]))
            else:
                rel = f"{images.name}/{row['index']}.jpg"
                (out.parent / rel).write_bytes(base64.b64decode(row["image"]))
            choices = [row[c] for c in string.ascii_uppercase if row.get(c) not in (None, "", "nan")]
            question = row["question"] if not row.get("hint") or row["hint"] == "nan" else f"{row['hint']}\n{row['question']}"
            lines.append({"id": row["index"], "image": rel, "question": question, "answers": [row["answer"]],
                          "choices": choices or None, "answer": row["answer"]})
    out.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return out


def load_split(data_root: Path, task: str, split: str) -> list[Item] | None:
    """The items of ``task``'s ``split``; None when no local copy exists."""
    folder = Path(data_root) / task
    path = folder / f"{split}.jsonl"
    if not path.is_file() and (folder / f"{split}.tsv").is_file():
        tsv_to_jsonl(folder / f"{split}.tsv", path)
    if not path.is_file():
        return None
    items = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BenchmarkDataError(f"{path}:{n}: not JSON: {exc}") from None
            items.append(_item(raw, task, path.parent, f"{path}:{n}"))
    missing = [i.image for i in items if not i.image.is_file()]
    if missing:
        raise BenchmarkDataError(f"{path}: {len(missing)} image(s) missing, e.g. {missing[0]}")
    return items
