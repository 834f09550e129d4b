"""Artifact keys and dataset paths: one place that knows how they are spelled.

Store keys of stage outputs live under ``stage_dir`` (one folder per stage and fingerprint; see
``textbook.artifacts``). Dataset paths (FORMAT.md) do not depend on the fingerprint.
"""

from __future__ import annotations

from textbook.records import check_video_id


def stage_dir(video_id: str, stage: str, fingerprint: str) -> str:
    return f"videos/{check_video_id(video_id)}/{stage}/{fingerprint}"


def media_name(ext: str = "mp4") -> str:
    return f"media.{ext}"


def captions_name(lang: str, kind: str, ext: str) -> str:
    return f"captions.{kind}.{lang}.{ext}"


def clip_stem(video_id: str, start: float, end: float) -> str:
    return f"{check_video_id(video_id)}@{start:.1f}_{end:.1f}"


def keyframe_name(video_id: str, start: float, end: float, k: int) -> str:
    return f"{clip_stem(video_id, start, end)}#{k}.jpg"


def keyframe(video_id: str, start: float, end: float, k: int) -> str:
    """FORMAT.md section 1: images/<vid>/<vid>@<start>_<end>#<k>.jpg, k from 1 inside its clip."""
    return f"images/{check_video_id(video_id)}/{keyframe_name(video_id, start, end, k)}"


def sampled_frame_name(video_id: str, start: float, end: float, n: int) -> str:
    return f"{clip_stem(video_id, start, end)}#f{n}.jpg"


def sampled_frame_path(video_id: str, name: str) -> str:
    """Dataset path of a sampled frame (FORMAT.md: frames/<vid>/...)."""
    return f"frames/{check_video_id(video_id)}/{name}"
