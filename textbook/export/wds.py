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
from typing import Any, Sequence

from textbook.config import ExportSettings
from textbook.export.files import DatasetWriter, dumps
from textbook.export.spool import Ordered

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


def write_wds_view(writer: DatasetWriter, rows: Ordered, exp: ExportSettings) -> list[str]:
    """The view of the OBELICS rows in published order (so keys equal OBELICS global indices),
    when export.webdataset is on; returns the shard names."""
    if not exp.webdataset:
        return []
    return write_wds(writer, rows, exp.wds_shard_size)
