"""Record stages as the runner leaves them, for tests that build a video's state by hand."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from textbook.artifacts import output_key
from textbook.config import output_knobs
from textbook.context import Context
from textbook.pipeline import complete_video, stage_by_name
from textbook.runner import fingerprint


def finish_stage(ctx: Context, video_id: str, stage: str, *, status: str = "done", result: dict | None = None,
                 error: str = "", files: dict[str, Any] | None = None) -> dict[str, str]:
    """Write ``files`` (name -> bytes, a Path, or a JSON document) where ``stage`` writes its outputs
    and record its run finished with them under the current settings. Returns name -> store key."""
    refs, written = [], {}
    for name, content in (files or {}).items():
        key = output_key(ctx, video_id, stage, name)
        if isinstance(content, Path):
            ref = ctx.store.put_file(key, content)
        elif isinstance(content, bytes):
            ref = ctx.store.put_bytes(key, content)
        else:
            ref = ctx.store.put_json(key, content)
        refs.append(ref)
        written[name] = key
    token = uuid.uuid4().hex
    fp = fingerprint(stage_by_name(stage), ctx)
    assert ctx.db.claim(video_id, stage, fp, token)
    if status == "done":
        ctx.db.remember_settings(fp, stage, {s: output_knobs(getattr(ctx.settings, s))
                                             for s in stage_by_name(stage).sections})
    ctx.db.finish(video_id, stage, status, token, artifacts=[r.to_dict() for r in refs], result=result or {},
                  error=error)
    return written


def publish(ctx: Context, video_id: str) -> str:
    """Settle the video's status from its runs; a finished chain becomes its published result."""
    return complete_video(video_id, ctx)
