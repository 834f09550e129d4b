"""Instruction tuning on the corpus's instruction views: loss on the assistant's turns only.

Views (``data.view``): ``m4`` (M4-Instruct records as exported) and ``sos`` (the SoSVQA cycles of
``sos/grpo.jsonl``, a pause's frames, then the context and the question; the answer the video gave).

A record is ``{"image": [...], "conversations": [{"from": "human"|"gpt", "value": ...}]}`` with
one ``<image>`` per path in the human turns, in order. It is laid out in the LLaVA-1.5
conversation form (``USER: ... ASSISTANT: ...``); each turn is encoded with its own images and
the pieces are joined, so the label mask follows the turns exactly: a human turn, with its image
tokens, never carries loss, an assistant turn and the end-of-sequence after it always do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

RECORD_IMAGE = "<image>"
SFT_VIEWS = {"m4": "m4_textbook_annotations.jsonl", "sos": "grpo.jsonl"}  # view (its folder) -> its file


def as_record(view: str, raw: dict[str, Any]) -> dict[str, Any]:
    """A line of the view as an M4-shaped record: ``image`` paths and human/gpt ``conversations``."""
    if view == "m4":
        return raw
    text = next(p["text"] for p in raw["prompt"][0]["content"] if p["type"] == "text")
    return {"image": raw["images"], "conversations": [
        {"from": "human", "value": f"{RECORD_IMAGE}\n" * len(raw["images"]) + text},
        {"from": "gpt", "value": raw["answer"]}]}


@dataclass(frozen=True)
class Turn:
    assistant: bool
    text: str  # with the family's placeholder for each image
    images: tuple[str, ...]


def turns(record: dict[str, Any], placeholder: str) -> list[Turn]:
    """The record's turns in the conversation form, each with the images its placeholders name."""
    images = iter(record["image"])
    out: list[Turn] = []
    for turn in record["conversations"]:
        value = turn["value"]
        if turn["from"] == "human":
            n = value.count(RECORD_IMAGE)
            out.append(Turn(False, f"USER: {value.replace(RECORD_IMAGE, placeholder)}\nASSISTANT: ",
                            tuple(next(images) for _ in range(n))))
        else:
            out.append(Turn(True, value, ()))
    return out


def read_records(root: Path, view: str) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(line number, byte offset, record) of the view's JSON Lines file."""
    path = root / view / SFT_VIEWS[view]
    if not path.is_file():
        from textbook.train.data import CorpusError

        why = "export with export.m4 on" if view == "m4" else "no exported video had a question-pause-answer cycle"
        raise CorpusError(f"{root}: no {view}/{SFT_VIEWS[view]}: {why}")
    offset = 0
    with open(path, "rb") as fh:
        for n, line in enumerate(fh):
            if line.strip():
                yield n, offset, as_record(view, json.loads(line))
            offset += len(line)


def build_sft_index(root: Path, cost: Callable[[str | None, str | None], int], *, max_length: int,
                    max_images: int, view: str = "m4") -> tuple[list[dict], dict[str, Any]]:
    """One entry per record that fits ``max_length`` and ``max_images``; the rest are counted."""
    entries, too_long, missing = [], 0, set()
    for line, offset, record in read_records(root, view):
        images = record["image"]
        tokens = len(images) * cost("image", None) + sum(
            cost(None, t["value"].replace(RECORD_IMAGE, "")) for t in record["conversations"])
        if tokens > max_length or len(images) > max_images:
            too_long += 1
            continue
        missing.update(i for i in images if not (Path(i) if Path(i).is_absolute() else root / i).is_file())
        entries.append({"shard": SFT_VIEWS[view], "line": line, "offset": offset, "images": images,
                        "image_num": len(images), "tokens": tokens})
    return entries, {"records_too_long": too_long, "missing_images": sorted(missing)}


class SftDataset:
    """Map-style dataset over an SFT index: entry -> family-encoded conversation."""

    def __init__(self, root: Path, entries: list[dict], family: Any, *, max_length: int, view: str = "m4") -> None:
        self.root, self.entries, self.family, self.max_length = Path(root), entries, family, max_length
        self.view = view

    def __len__(self) -> int:
        return len(self.entries)

    def record(self, i: int) -> dict[str, Any]:
        with open(self.root / self.view / self.entries[i]["shard"], "rb") as fh:
            fh.seek(self.entries[i]["offset"])
            return as_record(self.view, json.loads(fh.readline()))

    def _image(self, rel: str) -> Any:
        from PIL import Image

        path = Path(rel) if Path(rel).is_absolute() else self.root / rel
        with Image.open(path) as im:
            return im.convert("RGB")

    def __getitem__(self, i: int) -> Any:
        return self.family.encode_turns(turns(self.record(i), self.family.placeholder), self._image, self.max_length)
