"""Writing the dataset folder: atomic files, byte-stable JSON, and no stale leftovers.

Every file is written to a temporary name beside its target and renamed over it, so a reader
never sees half a shard. A file whose bytes would not change is left alone. What an earlier export
left in the folders this exporter owns and this export did not write (more shards, images of a
video since dropped) is removed at the end, so the folder always equals what one run produces.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable

from textbook.atomic import atomic_write
from textbook.store import ArtifactStore, check_key

# Folders of one subfolder per video; ``remove_stale_videos`` keeps them, a video at a time.
VIDEO_FOLDERS = ("images", "frames")


def owned_folders() -> tuple[str, ...]:
    """Folders that belong to the exporter (the per-video ones and every view's); anything else
    under the root is left alone."""
    from textbook.export.views import registered

    return VIDEO_FOLDERS + tuple(f for view in registered() for f in view.folders)


def owned_files() -> tuple[str, ...]:
    from textbook.export.views import registered

    return ("videos.jsonl", "README.md") + tuple(dict.fromkeys(f for view in registered() for f in view.files))


def dumps(obj: Any) -> str:
    """One JSON document, the same bytes for the same object (no NaN: it is not JSON)."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)


def _linked(src: Path, target: Path, fresh: bool) -> bool:
    """Hard-link ``src`` at ``target``: straight there when nothing is (``fresh``), else through a
    temporary name renamed over what is there; False where the filesystem cannot (another device,
    no hard links)."""
    if fresh:
        try:
            os.link(src, target)
            return True
        except FileExistsError:  # appeared since the folder was listed: replace it as below
            pass
        except OSError:
            return False
    tmp = target.with_name(f".tmp-{os.getpid()}-{target.name}")
    try:
        os.link(src, tmp)
    except OSError:
        return False
    os.replace(tmp, target)
    return True


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
        """A file written by ``fill(temporary path)``, renamed into place unless its bytes equal
        the file already there (for files too big to hold in memory)."""
        self.written.add(rel)
        if atomic_write(self.path(rel), fill, unless_same=True):
            self.changed.append(rel)
        return self.path(rel)

    def write_lines(self, rel: str, lines: Iterable[bytes]) -> Path:
        def fill(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                for line in lines:
                    fh.write(line)

        return self.write_with(rel, fill)

    def _place(self, store: ArtifactStore, key: str, target: Path, present: bool) -> bool:
        """Put a store artifact at ``target``; False when the same bytes are already there.

        A hard link where the store's file is on the same filesystem: artifacts under a
        fingerprint never change in place, and a corpus has millions of keyframes, which copying
        and syncing one by one would take hours. A copy, renamed into place, anywhere else.
        """
        with store.local_path(key) as src:
            if present and (os.path.samefile(src, target) or filecmp.cmp(src, target, shallow=False)):
                return False
            if not _linked(src, target, fresh=not present):  # synced with the rest by ``sync``
                atomic_write(target, lambda tmp: shutil.copyfile(src, tmp), durable=False)
        return True

    def copy_artifact(self, store: ArtifactStore, key: str, rel: str) -> Path:
        """One store artifact at ``rel`` (as ``_place`` puts it), counted as written this time."""
        target = self.path(rel)
        self.written.add(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        if self._place(store, key, target, target.is_file()):
            self.changed.append(rel)
        return target

    @staticmethod
    def sync() -> None:
        """Flush what was written without an fsync of its own (keyframe copies) to disk."""
        os.sync()

    def _video_files(self, video_id: str) -> dict[str, Path]:
        """The files in a video's folders now, by dataset-relative path: one listing per folder,
        not a stat per keyframe."""
        found = {}
        for folder in VIDEO_FOLDERS:
            base = self.root / folder / video_id
            if base.is_dir():
                with os.scandir(base) as it:
                    found.update({f"{folder}/{video_id}/{e.name}": Path(e.path) for e in it if e.is_file()})
        return found

    def copy_video_files(self, store: ArtifactStore, video_id: str, files: Iterable[tuple[str, str]]) -> int:
        """Copy a video's keyframes (store key, dataset path) and remove the other files of its
        folders, so they hold exactly this video's files; returns how many it wrote."""
        present = self._video_files(video_id)
        before = len(self.changed)
        wanted: set[str] = set()
        folders: set[Path] = set()
        for key, rel in files:
            target = self.path(rel)
            if target.parent not in folders:
                target.parent.mkdir(parents=True, exist_ok=True)
                folders.add(target.parent)
            if self._place(store, key, target, rel in present):
                self.changed.append(rel)
            wanted.add(rel)
        for rel in sorted(present.keys() - wanted):
            present[rel].unlink()
            self.changed.append(rel)
        for folder in VIDEO_FOLDERS:
            base = self.root / folder / video_id
            if base.is_dir() and not any(base.iterdir()):
                base.rmdir()
        return len(self.changed) - before

    def remove_stale_videos(self, keep: set[str]) -> None:
        """Delete the per-video folders of every video not in ``keep``."""
        for folder in VIDEO_FOLDERS:
            base = self.root / folder
            if not base.is_dir():
                continue
            with os.scandir(base) as it:
                gone = sorted(e.name for e in it if e.name not in keep)
            for name in gone:
                path = base / name
                if path.is_dir():
                    self.changed += [p.relative_to(self.root).as_posix() for p in sorted(path.rglob("*")) if p.is_file()]
                    shutil.rmtree(path)
                else:
                    path.unlink()
                    self.changed.append(path.relative_to(self.root).as_posix())
            if not any(base.iterdir()):
                base.rmdir()

    def remove_stale(self) -> list[str]:
        """Delete what this exporter owns but did not write this time (the per-video folders are
        kept by ``remove_stale_videos``); returns the removed paths."""
        removed = []
        for name in owned_files():
            if name not in self.written and (self.root / name).is_file():
                (self.root / name).unlink()
                removed.append(name)
        for folder in owned_folders():
            base = self.root / folder
            if folder in VIDEO_FOLDERS or not base.is_dir():
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
