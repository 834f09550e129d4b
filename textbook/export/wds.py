"""The WebDataset view (FORMAT.md section 3b): the OBELICS samples as tar shards, for streaming.

One member group per sample, keyed by the sample's global index: ``<key>.json`` (the sample with
each image entry replaced by its member name) and ``<key>.<k>.jpg`` for its images, ``k`` counting
the sample's images from 0. ``wds/index.json`` lists each shard with its sample count and SHA-256.
Tar headers carry no clock, owner or mode of this machine, so the same input gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Sequence

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


BLOCK, RECORD = 512, 20 * 512  # tar's block, and the record size a tar's length rounds up to


def tar_header(name: str, size: int) -> bytes:
    """A ustar header of a regular file with no clock, owner or device: byte for byte what
    ``tarfile`` writes for it, in a fraction of the time (a corpus has millions of members)."""
    raw = name.encode()
    if len(raw) > 100:
        raise ValueError(f"tar member name over 100 bytes: {name!r}")
    head = (raw.ljust(100, b"\0") + b"0000644\0" + b"0000000\0" * 2 + b"%011o\0" % size + b"0" * 11 + b"\0"
            + b" " * 8 + b"0" + b"\0" * 100 + b"ustar\x0000").ljust(BLOCK, b"\0")
    return head[:148] + b"%06o\0 " % sum(head) + head[156:]


class _Tar:
    """A tar written member by member, hashed as it goes."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh, self.size, self.digest = fh, 0, hashlib.sha256()

    def _write(self, data: bytes) -> None:
        self.fh.write(data)
        self.digest.update(data)
        self.size += len(data)

    def add(self, name: str, data: bytes) -> None:
        self._write(tar_header(name, len(data)))
        self._write(data)
        self._write(b"\0" * (-len(data) % BLOCK))

    def close(self) -> None:
        self._write(b"\0" * (2 * BLOCK))
        self._write(b"\0" * (-self.size % RECORD))


def _write_shard(path: Path, rows: Sequence[dict[str, Any]], first: int, root: Path) -> str:
    """Writes the shard; returns its SHA-256."""
    with open(path, "wb") as fh:
        tar = _Tar(fh)
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
            tar.add(f"{key}.json", dumps({**row, "images": images}).encode())
            for name, source in files:
                tar.add(name, source.read_bytes())
        tar.close()
    return tar.digest.hexdigest()


def write_wds(writer: DatasetWriter, rows: Ordered, shard_size: int) -> list[str]:
    """``rows``: OBELICS samples (encoded lines) with image paths relative to the dataset root,
    whose images are already written there. Returns the shard names."""
    if shard_size <= 0:
        raise ValueError(f"export.wds_shard_size must be positive, got {shard_size}")
    index = []
    for n, start in enumerate(range(0, len(rows), shard_size)):
        part = [json.loads(line) for line in rows.chunk(start, start + shard_size)]
        rel = f"{FOLDER}/{shard_name(n)}"
        digest: list[str] = []  # the shard's SHA-256, computed as it is written
        writer.write_with(rel, lambda tmp, part=part, start=start, digest=digest:
                          digest.append(_write_shard(tmp, part, start, writer.root)))
        index.append({"shard": shard_name(n), "samples": len(part), "sha256": digest[0]})
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
