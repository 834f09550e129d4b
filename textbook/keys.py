"""Artifact keys: one place that knows where each stage's output lives in the store."""

from __future__ import annotations

from textbook.records import check_video_id


def _v(video_id: str) -> str:
    return f"videos/{check_video_id(video_id)}"


def info(video_id: str) -> str:
    return f"{_v(video_id)}/info.json"


def media(video_id: str, ext: str = "mp4") -> str:
    return f"{_v(video_id)}/media.{ext}"


def captions(video_id: str, lang: str, kind: str, ext: str) -> str:
    return f"{_v(video_id)}/captions.{kind}.{lang}.{ext}"


def audio(video_id: str) -> str:
    return f"{_v(video_id)}/audio.wav"


def stage_output(video_id: str, stage: str) -> str:
    """The JSON document a stage writes for a video (transcript.json, clips.json, ...)."""
    return f"{_v(video_id)}/{stage}.json"


def clip_stem(video_id: str, start: float, end: float) -> str:
    return f"{check_video_id(video_id)}@{start:.1f}_{end:.1f}"


def keyframe(video_id: str, start: float, end: float, k: int) -> str:
    """FORMAT.md section 1: images/<vid>/<vid>@<start>_<end>#<k>.jpg, k from 1 inside its clip."""
    return f"images/{check_video_id(video_id)}/{clip_stem(video_id, start, end)}#{k}.jpg"


def sampled_frame(video_id: str, start: float, end: float, n: int) -> str:
    return f"frames/{check_video_id(video_id)}/{clip_stem(video_id, start, end)}#f{n}.jpg"
