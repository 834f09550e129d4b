"""M4-Instruct (LLaVA-NeXT-Interleave): interleaved multi-image instructions from the corpus.

Its model-free tasks are built at export (textbook.export.m4instruct); the model-based one, text-rich
questions over consecutive slides, is the ``slide_vqa`` stage (textbook.stages.slide_vqa).
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
class SlideVqaSettings:
    """The M4-Instruct view's model-based task: an LLM writes a question over consecutive slides'
    text that two or more of them answer. Backend none: the view has its four model-free tasks."""

    llm: ModelSettings = field(default_factory=lambda: ModelSettings(max_new_tokens=300))
    enabled: bool = knob(True)  # for every video (with an LLM); off: only for the knowledge points below
    knowledge_points: tuple[str, ...] = knob(())
    images_per_item: int = knob(3, ge=2, le=4)
    max_items: int = knob(8, ge=1, le=100)  # a video's questions at most


def llm_use(settings: Any) -> ModelUse:
    """The LLM that writes the multi-slide questions."""
    from textbook.models import ModelUse

    return ModelUse("llm", settings.slide_vqa.llm, "slide_vqa.llm")


def model_uses(settings: Any) -> list[ModelUse]:
    return [llm_use(settings)] if settings.slide_vqa.llm.backend != "none" else []


DATASET = Dataset(
    "m4",
    view="textbook.export.m4instruct:M4View",
    stages=("textbook.stages.slide_vqa:STAGE",),
    tasks=(TaskSpec(("slide_vqa",), queue="gpu", network=True),),  # an LLM, local or behind an endpoint
    settings={"slide_vqa": SlideVqaSettings},
    models="textbook.datasets.m4instruct:model_uses",
    report="textbook.report.instructions:PAGE",
)
