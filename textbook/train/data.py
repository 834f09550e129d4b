"""From an exported corpus to a training index, and from the index to encoded samples.

The corpus is read through ``length.json`` (shard order) so the order is the export's and never a
directory listing's. ``build_index`` re-packs every sample for the target model and records, per
training sample, its source (shard, byte offset, slots) and, for the shuffle ablation, the image
order: a derived index, never a second corpus. ``IndexedDataset`` reads one line by offset.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from textbook.train.samples import document, from_clip_view, repack, shuffle_images
from textbook.train.sft import SFT_VIEWS, build_sft_index

OBELICS = "obelics"
VIEWS = ("obelics", "clips", *SFT_VIEWS)  # the folder of each view in an export (m4, sos: instructions, sft.py)


class CorpusError(ValueError):
    """The corpus folder is not an export this code can read; the message says what is wrong."""


def shard_names(root: Path, view: str = OBELICS) -> list[str]:
    """The shards in the export's order: ``length.json``'s (OBELICS), the part numbers (clip view)."""
    if view not in VIEWS:
        raise CorpusError(f"data.view must be one of {', '.join(VIEWS)}, got {view!r}")
    lengths = root / OBELICS / "length.json"
    if not lengths.is_file():
        raise CorpusError(f"{root}: no {OBELICS}/length.json: not an exported textbook corpus")
    return list(json.loads(lengths.read_text())) if view == OBELICS else sorted(
        p.name for p in (root / view).glob("part-*.jsonl"))


def parse_line(line: bytes, view: str, end_of_video: str) -> dict[str, Any]:
    sample = json.loads(line)
    return from_clip_view(sample, end_of_video) if view == "clips" else sample


def read_shard(root: Path, name: str, view: str = OBELICS,
               end_of_video: str = "<|end_of_video|>") -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(line number, byte offset, sample as OBELICS) of every line of one shard."""
    offset = 0
    with open(root / view / name, "rb") as fh:
        for n, line in enumerate(fh):
            if line.strip():
                yield n, offset, parse_line(line, view, end_of_video)
            offset += len(line)


def corpus_fingerprint(root: Path) -> str:
    """A hash of what training reads: the shard list, every shard's bytes and every image's bytes."""
    digest = hashlib.sha256()
    for meta in ("length.json", "shard_id_range.json"):
        path = root / OBELICS / meta
        digest.update(path.read_bytes() if path.is_file() else b"")
    images: set[str] = set()
    for name in shard_names(root):
        data = (root / OBELICS / name).read_bytes()
        digest.update(name.encode() + hashlib.sha256(data).digest())
        for line in data.splitlines():
            if line.strip():
                images.update(i for i in json.loads(line)["images"] if i)
    for rel in sorted(images):
        path = Path(rel) if Path(rel).is_absolute() else root / rel
        digest.update(rel.encode() + (hashlib.sha256(path.read_bytes()).digest() if path.is_file() else b"-"))
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class IndexReport:
    source_samples: int
    train_samples: int
    split_samples: int  # source samples re-packed into more than one piece
    images: int
    tokens: int
    shuffled: list[int]  # training-sample indices whose images were permuted (ablation)
    missing_images: list[str]

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__ | {"shuffled_count": len(self.shuffled)}


def build_index(root: Path, cost: Callable[[str | None, str | None], int], *, max_length: int, max_images: int,
                end_of_video: str, shuffle_ratio: float = 0.0, seed: int = 42,
                view: str = OBELICS) -> tuple[list[dict], IndexReport]:
    if view in SFT_VIEWS:
        entries, found = build_sft_index(root, cost, max_length=max_length, max_images=max_images, view=view)
        return entries, IndexReport(len(entries) + found["records_too_long"], len(entries), 0,
                                    sum(e["image_num"] for e in entries), sum(e["tokens"] for e in entries), [],
                                    found["missing_images"])
    entries: list[dict[str, Any]] = []
    pieces_total = split = 0
    missing: set[str] = set()
    for name in shard_names(root, view):
        for line, offset, sample in read_shard(root, name, view, end_of_video):
            pieces_total += 1
            # repack works on slot indices: tag every slot with its index in the source line
            tagged = dict(sample, metadata=[dict(m or {}, _slot=i) for i, m in enumerate(sample["metadata"])])
            pieces = repack(tagged, cost, max_length=max_length, max_images=max_images, end_of_video=end_of_video)
            split += len(pieces) > 1
            for piece in pieces:
                slots = [m["_slot"] for m in piece["metadata"]]
                images = [i for i in piece["images"] if i is not None]
                missing.update(i for i in images if not (Path(i) if Path(i).is_absolute() else root / i).is_file())
                tokens = sum(cost(piece["images"][k], piece["texts"][k]) for k in range(len(slots)))
                entries.append({"shard": name, "line": line, "offset": offset, "slots": slots,
                                "images": images, "image_num": len(images), "tokens": tokens})
    shuffled_view, chosen = shuffle_images([{"images": e["images"]} for e in entries], shuffle_ratio, seed)
    for e, view in zip(entries, shuffled_view, strict=True):
        e["images"] = view["images"]
    report = IndexReport(pieces_total, len(entries), split, sum(e["image_num"] for e in entries),
                         sum(e["tokens"] for e in entries), chosen, sorted(missing))
    return entries, report


def write_index(path: Path, entries: list[dict]) -> None:
    path.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))


def read_index(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class IndexedDataset:
    """Map-style dataset over a training index: entry -> family-encoded sample (deterministic)."""

    def __init__(self, root: Path, entries: list[dict], family: Any, *, text_field: str, max_length: int,
                 max_images: int, view: str = OBELICS, end_of_video: str = "<|end_of_video|>") -> None:
        self.root, self.entries, self.family = Path(root), entries, family
        self.text_field, self.max_length, self.max_images = text_field, max_length, max_images
        self.view, self.end_of_video = view, end_of_video

    def __len__(self) -> int:
        return len(self.entries)

    def sample(self, i: int) -> dict[str, Any]:
        e = self.entries[i]
        with open(self.root / self.view / e["shard"], "rb") as fh:
            fh.seek(e["offset"])
            src = parse_line(fh.readline(), self.view, self.end_of_video)
        out = {f: [src[f][k] for k in e["slots"]] for f in ("images", "texts", "text_ocr_list", "metadata")}
        order = iter(e["images"])  # the ablation's image order, slot by slot
        out["images"] = [next(order) if im is not None else None for im in out["images"]]
        return out

    def _image(self, rel: str) -> Any:
        from PIL import Image

        path = Path(rel) if Path(rel).is_absolute() else self.root / rel
        with Image.open(path) as im:
            return im.convert("RGB")

    def __getitem__(self, i: int) -> Any:
        doc = document(self.sample(i), text_field=self.text_field, placeholder=self.family.placeholder,
                       max_images=self.max_images)
        return self.family.encode(doc, self._image, self.max_length)
