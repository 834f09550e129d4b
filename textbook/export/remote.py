"""Publish the dataset to S3: with ``export.root: s3://bucket/prefix`` the exporter writes the local
folder exactly as always (``validate_dataset`` and the report read it there), then mirrors it.

The mirror covers what the exporter owns (files.owned_folders / owned_files): a file whose sha256
differs from the remote object's is uploaded (verified, like every S3Store upload), a remote file
this export did not produce is deleted, and anything else under the prefix is left alone.

A corpus holds millions of keyframes, so after one complete mirror only what a compaction changed
is uploaded or deleted. ``.textbook/mirror.json`` in the local folder says whether the last mirror
to that URL completed; until one does (the first, or one broken off), the whole folder is
reconciled with the remote listing.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from textbook.export.files import owned_files, owned_folders
from textbook.store import ArtifactStore
from textbook.store.base import sha256_file

if TYPE_CHECKING:
    from textbook.config import Settings
    from textbook.store.s3 import S3Store

SCHEME = "s3://"
MIRROR_STATE = ".textbook/mirror.json"
WORKERS = 8  # uploads and HEADs in flight: S3 latency, not bandwidth, bounds a dataset of small files


@dataclass(frozen=True)
class RemoteTarget:
    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class SyncSummary:
    url: str
    uploaded: int
    unchanged: int
    deleted: int


def remote_target(settings: Settings, store: ArtifactStore) -> RemoteTarget | None:
    """The S3 place ``export.root`` names, or None for a local folder. Raises on an unusable URL."""
    url = settings.export.root
    if not url.startswith(SCHEME):
        return None
    bucket, _, prefix = url[len(SCHEME):].partition("/")
    if not bucket:
        raise ValueError(f"export.root {url!r}: no bucket (expected s3://bucket/prefix)")
    if settings.export.absolute_paths:
        raise ValueError(f"export.absolute_paths: the local paths it writes mean nothing in {url}")
    target = RemoteTarget(bucket, prefix.strip("/"))
    _check_apart_from_store(target, store)
    return target


def _check_apart_from_store(target: RemoteTarget, store: ArtifactStore) -> None:
    """The mirror deletes under images/ and frames/, as the artifact store names its keys: keep it out."""
    from textbook.store.s3 import S3Store

    if isinstance(store, S3Store) and store.bucket == target.bucket and (
            not store.prefix or target.prefix == store.prefix or target.prefix.startswith(store.prefix + "/")):
        raise ValueError(f"export.root {target.url} lies inside the artifact store {store.uri}: "
                         "choose a prefix outside it")


def _owned(rel: str) -> bool:
    return rel in owned_files() or rel.split("/", 1)[0] in owned_folders()


def _local_files(root: Path) -> dict[str, Path]:
    files = {name: root / name for name in owned_files() if (root / name).is_file()}
    for folder in owned_folders():
        for path in (root / folder).rglob("*") if (root / folder).is_dir() else ():
            if path.is_file() and not path.name.startswith(".tmp-"):
                files[path.relative_to(root).as_posix()] = path
    return files


def _target_store(target: RemoteTarget, settings: Settings, store: ArtifactStore) -> S3Store:
    """The artifact store's client when it is on S3 (same credentials), else one from store settings."""
    from textbook.store.s3 import S3Store

    if isinstance(store, S3Store):
        return store.at(target.bucket, target.prefix)
    return S3Store.from_settings(replace(settings.store, bucket=target.bucket, root=target.prefix))


def _mirrored(root: Path, url: str) -> bool:
    try:
        state = json.loads((root / MIRROR_STATE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    return state == {"url": url, "complete": True}


def _record_mirror(root: Path, url: str, complete: bool) -> None:
    path = root / MIRROR_STATE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"url": url, "complete": complete}) + "\n")


def sync_to_s3(root: Path, target: RemoteTarget, settings: Settings, store: ArtifactStore,
               changed: Sequence[str] | None = None) -> SyncSummary:
    """Make ``target`` hold the dataset folder ``root``; files are uploaded before stale ones go.
    ``changed``: the paths the export just wrote or removed (only those are mirrored when the last
    mirror to ``target`` completed); None reconciles everything."""
    remote = _target_store(target, settings, store)
    incremental = changed is not None and _mirrored(root, target.url)
    _record_mirror(root, target.url, complete=False)
    if incremental:
        owned = sorted({rel for rel in changed if _owned(rel)})
        local = {rel: root / rel for rel in owned if (root / rel).is_file()}
        stale = [rel for rel in owned if rel not in local]
        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(lambda rel: remote.put_file(rel, local[rel]), sorted(local)))
            list(pool.map(remote.delete, stale))
        _record_mirror(root, target.url, complete=True)
        return SyncSummary(target.url, uploaded=len(local), unchanged=0, deleted=len(stale))
    local = _local_files(root)
    present = {key for key in remote.list("") if _owned(key)}

    def publish(rel: str) -> bool:
        path = local[rel]
        if rel in present and remote.checksum(rel) == sha256_file(path):
            return False
        remote.put_file(rel, path)
        return True

    stale = sorted(present - set(local))
    with ThreadPoolExecutor(WORKERS) as pool:
        uploaded = sum(pool.map(publish, sorted(local)))
        list(pool.map(remote.delete, stale))
    _record_mirror(root, target.url, complete=True)
    return SyncSummary(target.url, uploaded=uploaded, unchanged=len(local) - uploaded, deleted=len(stale))
