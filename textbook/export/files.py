"""Writing the dataset folder: atomic files, byte-stable JSON, and no stale leftovers.

Every file is written to a temporary name beside its target and renamed over it, so a reader
never sees half a shard. A file whose bytes would not change is left alone. What an earlier export
left in the folders this exporter owns and this export did not write (more shards, images of a
video since dropped) is removed at the end, so the folder always equals what one run produces.
"""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable

from textbook.atomic import atomic_write
from textbook.store import ArtifactStore, check_key

# Folders and top-level files that belong to the exporter; anything else under the root is left alone.
OWNED_FOLDERS = ("obelics", "clips", "images", "frames", "wds")
OWNED_FILES = ("multimodal_textbook.json", "multimodal_textbook_meta_data.json", "videos.jsonl", "README.md")


def dumps(obj: Any) -> str:
    """One JSON document, the same bytes for the same object (no NaN: it is not JSON)."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)


def jsonl(rows: Iterable[Any]) -> bytes:
    return "".join(dumps(r) + "\n" for r in rows).encode()


def json_array(rows: Iterable[Any]) -> bytes:
    """The rows as one JSON array, one row a line (what the release's trainers read)."""
    return ("[" + ",\n".join(dumps(r) for r in rows) + "]\n").encode()


class DatasetWriter:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.written: set[str] = set()
        self.changed: list[str] = []  # files whose bytes this export changed (new, rewritten or removed)

    def path(self, rel: str) -> Path:
        return self.root / check_key(rel)

    def _atomic(self, rel: str, fill: Callable[[Path], None]) -> None:
        atomic_write(self.path(rel), fill)

    def write_bytes(self, rel: str, data: bytes) -> Path:
        target = self.path(rel)
        self.written.add(rel)
        if not (target.is_file() and target.stat().st_size == len(data) and target.read_bytes() == data):
            self._atomic(rel, lambda tmp: tmp.write_bytes(data))
            self.changed.append(rel)
        return target

    def write_json(self, rel: str, obj: Any) -> Path:
        return self.write_bytes(rel, (json.dumps(obj, ensure_ascii=False, allow_nan=False, indent=1) + "\n").encode())

    def write_with(self, rel: str, fill: Callable[[Path], None]) -> Path:
        """A file written by ``fill(temporary path)``, renamed into place (for files too big to hold in memory)."""
        self.written.add(rel)
        self._atomic(rel, fill)
        return self.path(rel)

    def copy_artifact(self, store: ArtifactStore, key: str, rel: str) -> Path:
        """Copy a store artifact into the dataset (skipped when the same bytes are already there)."""
        target = self.path(rel)
        self.written.add(rel)
        with store.local_path(key) as src:
            if not (target.is_file() and filecmp.cmp(src, target, shallow=False)):
                self._atomic(rel, lambda tmp: shutil.copyfile(src, tmp))
                self.changed.append(rel)
        return target

    def remove_stale(self) -> list[str]:
        """Delete what this exporter owns but did not write this time; returns the removed paths."""
        removed = []
        for name in OWNED_FILES:
            if name not in self.written and (self.root / name).is_file():
                (self.root / name).unlink()
                removed.append(name)
        for folder in OWNED_FOLDERS:
            base = self.root / folder
            if not base.is_dir():
                continue
            for path in sorted(base.rglob("*"), reverse=True):
                rel = path.relative_to(self.root).as_posix()
                if path.is_dir():
                    if not any(path.iterdir()):
                        path.rmdir()
                elif rel not in self.written:
                    path.unlink()
                    removed.append(rel)
            if not any(base.iterdir()):
                base.rmdir()
        self.changed += removed
        return removed
