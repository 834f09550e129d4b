"""One orchestrator task of the per-video chain, in a module of its own: the DAG files, the
library's task plan and every dataset's declaration name tasks without importing any stage."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSpec:
    """One orchestrator task: a few consecutive stages that belong on the same kind of worker.

    Its id is its stages' names joined (``audio_transcript``), so the library, the DAG, the
    plugin, the CLI and the docs all say which stages a task runs."""

    stages: tuple[str, ...]
    queue: str = "default"  # "gpu" for stages that run a model
    network: bool = False  # talks to the outside world: retried with backoff

    @property
    def task_id(self) -> str:
        return "_".join(self.stages)
