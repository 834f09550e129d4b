"""What a stage gets besides the video: settings, the store, the database and lazily built models.

Backends are built on first use and cached on the context, so a long-lived worker loads each model
once and reuses it across videos.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

from textbook.config import Settings, load_settings
from textbook.state import StateDB
from textbook.store import ArtifactStore, open_store


@dataclass
class Context:
    settings: Settings
    store: ArtifactStore
    db: StateDB
    _backends: dict[str, Any] = field(default_factory=dict, repr=False)
    backend_builds: dict[str, int] = field(default_factory=dict, repr=False)  # how often each was built
    fingerprints: dict[str, str] = field(default_factory=dict, repr=False)  # stage name -> config fingerprint

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "Context":
        settings = settings or load_settings()
        db = StateDB(settings.db_url, retry_seconds=settings.database.retry_seconds,
                     lease_seconds=settings.database.lease_seconds)
        db.create_schema()
        return cls(settings=settings, store=open_store(settings), db=db)

    def backend(self, name: str, build: Callable[[], Any]) -> Any:
        """The backend cached under ``name``, built by ``build`` the first time."""
        if name not in self._backends:
            self._backends[name] = build()
            self.backend_builds[name] = self.backend_builds.get(name, 0) + 1
        return self._backends[name]

    def knowledge_point_path(self, video: Any) -> str:
        """The path of the knowledge point that found ``video`` (its search keyword when unlinked):
        what the LLM rules judge relevance to."""
        for link in self.db.links(video.video_id):
            kp = self.db.knowledge_point(link.kp_id)
            if kp is not None:
                return kp.path
        return video.search_keyword

    def close(self) -> None:
        """Release database connections (a long-lived process keeps its context instead)."""
        self.db.engine.dispose()

    @cached_property
    def taxonomy(self):  # noqa: ANN201 - Taxonomy, imported lazily
        from textbook.taxonomy import load_taxonomy

        return load_taxonomy(self.settings.taxonomy_dir or None)
