"""Artifacts in a local folder: the embedded default."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from textbook.atomic import atomic_write
from textbook.store.base import ArtifactRef, ArtifactStore, MissingArtifact, check_key, sha256_bytes, sha256_file


class LocalStore(ArtifactStore):
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _atomic(self, key: str, write: Callable[[Path], None]) -> Path:
        atomic_write(self.path(key), write)
        return self.path(key)

    def put_bytes(self, key: str, data: bytes) -> ArtifactRef:
        self._atomic(key, lambda tmp: tmp.write_bytes(data))
        return ArtifactRef(key, sha256_bytes(data), len(data))

    def put_file(self, key: str, path: Path) -> ArtifactRef:
        target = self._atomic(key, lambda tmp: shutil.copyfile(path, tmp))
        return ArtifactRef(key, sha256_file(target), target.stat().st_size)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise MissingArtifact(f"artifact {key!r} not found in {self.root}") from None

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def list(self, prefix: str) -> Iterator[str]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return
        for p in sorted(base.rglob("*")):
            if p.is_file() and not p.name.startswith(".tmp-"):
                yield p.relative_to(self.root).as_posix()

    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        path = self.path(key)
        if not path.is_file():
            raise MissingArtifact(f"artifact {key!r} not found in {self.root}")
        yield path

    def checksum(self, key: str) -> str:
        path = self.path(key)
        if not path.is_file():
            raise MissingArtifact(f"artifact {key!r} not found in {self.root}")
        return sha256_file(path)

    def url(self, key: str) -> str:
        return self.path(key).as_uri()
