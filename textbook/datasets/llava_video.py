"""LLaVA-Video-178K ("Video Instruction Tuning with Synthetic Data"): three-level recurrent captions
of segments at 1 fps, then open-ended and multiple-choice questions of 16 types.

Stages ``video_captions`` and ``video_qa`` (textbook.stages.llava_video), the ``llava_video/``
view (textbook.export.llava_video) and the report's captions page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textbook.config import ModelSettings, knob
from textbook.datasets import Dataset
from textbook.taskspec import TaskSpec

if TYPE_CHECKING:
    from textbook.models import ModelUse


@dataclass(frozen=True)
class VideoCaptionSettings:
    """LLaVA-Video-178K's three-level recurrent captions of segments of at most ``max_segment_s``
    (the release's videos are 0-3 min), sampled at 1 fps. Backend none: not captioned, and said."""

    vlm: ModelSettings = field(default_factory=ModelSettings)
    enabled: bool = knob(True)  # for every video (with a VLM); off: only for the knowledge points below
    knowledge_points: tuple[str, ...] = knob(())
    grounding: bool = knob(False)  # beyond the paper: the interval's narration and OCR in level-1 prompts
    max_segment_s: float = knob(180.0, gt=0, le=600)


@dataclass(frozen=True)
class VideoQaSettings:
    """LLaVA-Video-178K's 16 question types, open-ended and multiple choice, from each segment's
    final caption; near-duplicate questions (MiniLM cosine) removed."""

    llm: ModelSettings = field(default_factory=lambda: ModelSettings(max_new_tokens=400))
    embedder: ModelSettings = field(default_factory=lambda: ModelSettings(backend="minilm"))
    dedup_threshold: float = knob(0.9, ge=-1, le=1)


def caption_use(settings: Any) -> ModelUse:
    """The VLM of the recurrent captions."""
    from textbook.models import ModelUse

    return ModelUse("vlm", settings.video_captions.vlm, "video_captions.vlm")


def qa_uses(settings: Any) -> tuple[ModelUse, ModelUse]:
    """The LLM that asks the questions from a final caption, and the embedder deduplicating them."""
    from textbook.models import ModelUse

    q = settings.video_qa
    return ModelUse("llm", q.llm, "video_qa.llm"), ModelUse("text_embedder", q.embedder, "video_qa.embedder")


def model_uses(settings: Any) -> list[ModelUse]:
    """The captioner where one is set, and the question models where they have captions to read."""
    if settings.video_captions.vlm.backend == "none":
        return []
    return [caption_use(settings), *(qa_uses(settings) if settings.video_qa.llm.backend != "none" else ())]


DATASET = Dataset(
    "llava_video",
    view="textbook.export.llava_video:LlavaVideoView",
    stages=("textbook.stages.llava_video:CAPTIONS", "textbook.stages.llava_video:QA"),
    tasks=(TaskSpec(("video_captions", "video_qa"), queue="gpu", network=True),),  # a VLM, then an LLM
    settings={"video_captions": VideoCaptionSettings, "video_qa": VideoQaSettings},
    models="textbook.datasets.llava_video:model_uses",
    report="textbook.report.video_captions:PAGE",
)
