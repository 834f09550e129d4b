"""The artifact store interface shared by the local folder and S3."""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

_KEY_PART = re.compile(r"^[A-Za-z0-9_.@#=+-]+$")


class MissingArtifact(FileNotFoundError):
    """A key was read that no stage has written (or that was removed)."""


def check_key(key: str) -> str:
    """Keys are relative, '/'-separated, and can never climb out of the store's root."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") or not _KEY_PART.match(p) for p in parts):
        raise ValueError(f"invalid artifact key {key!r}")
    return key


@dataclass(frozen=True)
class ArtifactRef:
    key: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "sha256": self.sha256, "size": self.size}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ArtifactStore(ABC):
    """Writes are atomic: a reader sees the whole artifact or none of it."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> ArtifactRef: ...

    @abstractmethod
    def put_file(self, key: str, path: Path) -> ArtifactRef: ...

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def list(self, prefix: str) -> Iterator[str]: ...

    @abstractmethod
    def local_path(self, key: str) -> AbstractContextManager[Path]:
        """A readable local file for tools that need a path (ffmpeg, tesseract)."""

    @abstractmethod
    def checksum(self, key: str) -> str: ...

    @abstractmethod
    def url(self, key: str) -> str:
        """Where a person (or a browser) can fetch the artifact."""

    def put_json(self, key: str, obj: Any) -> ArtifactRef:
        data = json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=1).encode()
        return self.put_bytes(key, data)

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))
