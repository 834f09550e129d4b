"""The WebDataset view (FORMAT.md section 3b): the OBELICS samples as tar shards, for streaming.

One member group per sample, keyed by the sample's global index: ``<key>.json`` (the sample with
each image entry replaced by its member name) and ``<key>.<k>.jpg`` for its images, ``k`` counting
the sample's images from 0. ``wds/index.json`` lists each shard with its sample count and SHA-256.
Tar headers carry no clock, owner or mode of this machine, so the same input gives the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from textbook.config import ExportSettings
from textbook.export.files import DatasetWriter, dumps
from textbook.export.obelics import obelics_sample
from textbook.export.packing import Sample
from textbook.export.spool import Ordered, Spool
from textbook.export.views import View, ViewContext

if TYPE_CHECKING:
    from textbook.export.validate import Checker

FOLDER = "wds"
INDEX = f"{FOLDER}/index.json"


def shard_name(n: int) -> str:
    return f"shard-{n:06d}.tar"


def sample_key(index: int) -> str:
    return f"{index:09d}"


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def _write_shard(path: Path, rows: Sequence[dict[str, Any]], first: int, root: Path) -> None:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for offset, row in enumerate(rows):
            key = sample_key(first + offset)
            images: list[str | None] = []
            files: list[tuple[str, Path]] = []
            for image in row["images"]:
                if image is None:
                    images.append(None)
                    continue
                name = f"{key}.{len(files)}.jpg"
                files.append((name, root / image))
                images.append(name)
            _member(tar, f"{key}.json", dumps({**row, "images": images}).encode())
            for name, source in files:
                _member(tar, name, source.read_bytes())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_wds(writer: DatasetWriter, rows: Ordered, shard_size: int) -> list[str]:
    """``rows``: OBELICS samples (encoded lines) with image paths relative to the dataset root,
    whose images are already written there. Returns the shard names."""
    if shard_size <= 0:
        raise ValueError(f"export.wds_shard_size must be positive, got {shard_size}")
    index = []
    for n, start in enumerate(range(0, len(rows), shard_size)):
        part = [json.loads(line) for line in rows.chunk(start, start + shard_size)]
        rel = f"{FOLDER}/{shard_name(n)}"
        path = writer.write_with(rel, lambda tmp, part=part, start=start: _write_shard(tmp, part, start, writer.root))
        index.append({"shard": shard_name(n), "samples": len(part), "sha256": _sha256(path)})
    if index:
        writer.write_json(INDEX, index)
    return [entry["shard"] for entry in index]


class WdsView(View):
    """Built from its own rows, whose image paths are always relative: tar members are read from
    the dataset folder whatever paths the other views write (export.absolute_paths)."""

    name = "wds"
    folders = (FOLDER,)

    def __init__(self, vc: ViewContext) -> None:
        super().__init__(vc)
        self.spool = Spool(vc.tmp / "wds")

    @classmethod
    def enabled(cls, exp: ExportSettings) -> bool:
        return exp.webdataset

    def add_sample(self, sample: Sample, row: dict[str, Any]) -> None:
        exp = self.vc.export
        if exp.absolute_paths:
            row = obelics_sample(sample, end_of_video=exp.end_of_video, image_tokens=exp.image_tokens, image_path=str)
        self.spool.append((dumps(row) + "\n").encode())

    def write(self, writer: DatasetWriter, order: Sequence[int]) -> None:
        write_wds(writer, Ordered(self.spool, order), self.vc.export.wds_shard_size)

    def card(self) -> list[str]:
        return [f"- `wds/shard-NNNNNN.tar`: the OBELICS samples as WebDataset shards of at most "
                f"{self.vc.export.wds_shard_size} (`<key>.json` with image entries replaced by member names, "
                "`<key>.<k>.jpg`; key = global sample index), listed with sample counts and SHA-256 in `wds/index.json`."]

    @classmethod
    def card_when_off(cls, exp: ExportSettings) -> list[str]:
        return ["- `wds/`: not written (export.webdataset is off)."]

    def close(self) -> None:
        self.spool.close()

    @staticmethod
    def check(checker: Checker) -> None:
        checker.check_wds()
