"""Every model the pipeline runs, behind one registry: a name in the settings picks the backend.

Kinds and backends (``backends(kind)`` lists them with what each needs):
llm: ``none`` (offline), ``openai``, ``transformers``; vlm: ``openai``, ``transformers``; text_embedder: ``minilm``
(packaged, offline), ``sentence_transformers``; asr: ``faster_whisper``, ``whisperx``; ocr:
``tesseract``, ``vlm`` (asks the vlm backend ``ocr.vlm``), ``none``. ``configured(settings)`` is what the
model server builds before it reports healthy.
vLLM's offline engine is not a backend here: serve the model with ``vllm serve`` and use ``openai``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from textbook import datasets
from textbook.models import (  # noqa: F401 - each registers its backends
    builtin, embedders, openai, transformers_chat, transformers_vision)
from textbook.models.registry import BackendError, backends, build, cache_key, load, register

__all__ = ["BackendError", "ModelUse", "backends", "build", "cache_key", "configured", "load", "register"]


class ModelUse(NamedTuple):
    """One model a stage loads: its kind, settings, where those sit, and the name's setting if not ``backend``."""

    kind: str
    cfg: Any
    where: str
    name: str | None = None
    setting: str | None = None

    def load(self, ctx: Any) -> Any:
        return load(ctx, self.kind, self.cfg, self.where, self.name, self.setting)


def asr_use(settings: Any) -> ModelUse:
    t = settings.transcript
    return ModelUse("asr", t, "transcript", t.asr_backend, "transcript.asr_backend")


class RefineModels(NamedTuple):
    """The refine stage's models: the refiner, each judge, and the drift guard's embedder."""

    llm: ModelUse
    judges: list[ModelUse]
    embedder: ModelUse


def refine_uses(settings: Any) -> RefineModels:
    r = settings.refine
    return RefineModels(ModelUse("llm", r.llm, "refine.llm"),
                        [ModelUse("llm", j, f"refine.judges[{i}]") for i, j in enumerate(r.judges)],
                        ModelUse("text_embedder", r.embedder, "refine.embedder"))


def visual_filter_use() -> ModelUse:
    """The visual filter's relatedness embedder (the packaged MiniLM)."""
    return ModelUse("text_embedder", embedders.MINILM, "visual_filter")


def visual_caption_uses(settings: Any) -> tuple[ModelUse, ModelUse]:
    """The caption backend's VLM and the embedder comparing its captions with the speech."""
    v = settings.visual_filter
    return ModelUse("vlm", v.vlm, "visual_filter.vlm"), ModelUse("text_embedder", v.embedder, "visual_filter.embedder")


def ocr_vlm_use(settings: Any) -> ModelUse:
    """The VLM the ``vlm`` OCR backend asks (``ocr.vlm``)."""
    return ModelUse("vlm", settings.ocr.vlm, "ocr.vlm")


def configured(settings: Any) -> list[ModelUse]:
    """The models the GPU queue's stages will load under ``settings`` (the drift guard's embedder
    only where a refiner runs, the visual filter's models where its backend uses them, and those
    each registered dataset declares). The OCR's VLM is not
    among them: the ocr task runs on the default queue (tesseract is CPU work), where a served VLM
    (``openai``) is the way to run it in a cluster."""
    uses = refine_uses(settings)
    out = [asr_use(settings), uses.llm, *uses.judges]
    if settings.refine.llm.backend != "none":
        out.append(uses.embedder)
    if settings.visual_filter.backend == "heuristic":
        out.append(visual_filter_use())
    if settings.visual_filter.backend == "caption":
        out.extend(visual_caption_uses(settings))
    return out + datasets.model_uses(settings)
