"""Where a stage writes its outputs and where it finds its inputs.

Outputs go under a folder named by the stage's fingerprint (``videos/<id>/<stage>/<fp>/``), so a
re-run under other settings writes beside the published result instead of over it. Inputs are
found through the producing stage's recorded run, never by rebuilding a key by hand, so a stage
reads exactly what its input stage finished with (also runs recorded before this layout).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Iterable

from textbook import keys
from textbook.store import MissingArtifact

if TYPE_CHECKING:
    from textbook.context import Context


def output_key(ctx: Context, video_id: str, stage: str, name: str) -> str:
    from textbook.pipeline import stage_by_name
    from textbook.runner import fingerprint

    return f"{keys.stage_dir(video_id, stage, fingerprint(stage_by_name(stage), ctx))}/{name}"


def find_key(artifacts: Iterable[dict[str, Any]], name: str) -> str | None:
    """The recorded artifact whose file name is ``name``."""
    return next((a["key"] for a in artifacts if PurePosixPath(a["key"]).name == name), None)


def input_key(ctx: Context, video_id: str, stage: str, name: str) -> str:
    run = ctx.db.run(video_id, stage)
    key = find_key(run.artifacts if run is not None and run.status == "done" else [], name)
    if key is None:
        raise MissingArtifact(f"{video_id}: stage {stage!r} has recorded no {name}")
    return key


def read_input(ctx: Context, video_id: str, stage: str, name: str | None = None) -> Any:
    """The JSON document ``stage`` wrote for the video (``<stage>.json`` unless ``name`` says)."""
    return ctx.store.get_json(input_key(ctx, video_id, stage, name or f"{stage}.json"))
