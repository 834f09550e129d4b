"""Artifact stores: where media, frames and stage outputs live, addressed by key."""

from textbook.store.base import ArtifactRef, ArtifactStore, MissingArtifact, check_key
from textbook.store.local import LocalStore

__all__ = ["ArtifactRef", "ArtifactStore", "LocalStore", "MissingArtifact", "check_key", "open_store"]


def open_store(settings) -> ArtifactStore:  # noqa: ANN001 - Settings, imported lazily to avoid a cycle
    """The store the configuration names."""
    kind = settings.store.kind
    if kind == "local":
        return LocalStore(settings.artifact_root)
    if kind == "s3":
        from textbook.store.s3 import S3Store

        return S3Store.from_settings(settings.store)
    raise ValueError(f"store.kind: unknown artifact store {kind!r} (expected 'local' or 's3')")
