"""Which demonstrations a query gets: RICES, random, the cheat test, or RICES in shuffled order.

RICES follows the official ``rices.py`` (from OpenFlamingo): L2-normalised image features, cosine
similarity, a stable top-k, returned reversed so the most similar demo sits next to the query.
Two exclusions the official code lacks: a demo with the query's id or the query's image bytes,
and duplicate images in the pool, never count, so near-duplicate train/test images cannot turn
few-shot into an accidental cheat test. The cheat test (Table 4) puts the query itself, with its
gold answer, in the first demo slot; at 2 shots the second demo is random as the paper's text
says (``cheat_second: rices`` gives the official code's top-1).
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from textbook.benchmark.data import Item

MODES = ("rices", "random", "cheat", "shuffled_context")


def pixel_embedding(path: Path) -> np.ndarray:
    """A deterministic image descriptor (16x16 grey thumbnail + HSV histogram): tests and smoke runs."""
    from PIL import Image

    with Image.open(path) as im:
        rgb = im.convert("RGB")
        grey = np.asarray(rgb.convert("L").resize((16, 16)), dtype=np.float32).ravel() / 255.0
        hsv = np.asarray(rgb.convert("HSV").resize((32, 32)), dtype=np.float32).reshape(-1, 3)
    hist = np.concatenate([np.histogram(hsv[:, c], bins=16, range=(0, 256))[0] for c in range(3)]).astype(np.float32)
    return np.concatenate([grey - grey.mean(), 4.0 * hist / max(1.0, hist.sum())])


def clip_embedder(model_dir: str) -> Callable[[Path], np.ndarray]:
    """Image features of a local HF ``CLIPModel`` folder (the paper: OpenAI CLIP ViT-L/14)."""
    import torch
    from PIL import Image
    from transformers import AutoImageProcessor, CLIPModel

    model = CLIPModel.from_pretrained(model_dir, local_files_only=True).eval()
    proc = AutoImageProcessor.from_pretrained(model_dir, local_files_only=True)

    def embed(path: Path) -> np.ndarray:
        with Image.open(path) as im, torch.no_grad():
            out = model.get_image_features(**proc(images=[im.convert("RGB")], return_tensors="pt"))
        feats = out if isinstance(out, torch.Tensor) else out.pooler_output
        return feats[0].float().numpy()

    return embed


def embedder(name: str) -> Callable[[Path], np.ndarray]:
    if name == "pixel":
        return pixel_embedding
    if name.startswith("clip:"):
        return clip_embedder(name.removeprefix("clip:"))
    raise ValueError(f"rices embedder {name!r}: expected 'pixel' or 'clip:<local CLIPModel folder>'")


class DemoPool:
    """A demonstration pool, deduplicated by image bytes, with normalised features for RICES."""

    def __init__(self, items: Sequence[Item], embed: Callable[[Path], np.ndarray]) -> None:
        seen: set[str] = set()
        self.items: list[Item] = []
        for item in items:
            if item.image_sha not in seen:
                seen.add(item.image_sha)
                self.items.append(item)
        self.embed = embed
        feats = np.stack([embed(i.image) for i in self.items]) if self.items else np.zeros((0, 1))
        self.features = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)

    def _allowed(self, query: Item) -> list[int]:
        return [n for n, d in enumerate(self.items) if d.id != query.id and d.image_sha != query.image_sha]

    def rices(self, query: Item, k: int) -> list[Item]:
        """The k most similar allowed demos, most similar last (next to the query)."""
        if k <= 0:
            return []
        q = self.embed(query.image)
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        allowed = self._allowed(query)
        sims = self.features[allowed] @ q
        order = np.argsort(-sims, kind="stable")[:k]
        return [self.items[allowed[i]] for i in order][::-1]

    def random(self, query: Item, k: int, seed: int) -> list[Item]:
        rng = random.Random(int(hashlib.sha256(f"{seed}:{query.task}:{query.id}".encode()).hexdigest(), 16))
        allowed = self._allowed(query)
        return [self.items[i] for i in rng.sample(allowed, min(k, len(allowed)))]


def select(pool: DemoPool, query: Item, k: int, mode: str, *, seed: int = 0, cheat_second: str = "random") -> list[Item]:
    """The demonstrations of ``query`` in prompt order."""
    if k == 0:
        return []
    if mode == "rices":
        return pool.rices(query, k)
    if mode == "random":
        return pool.random(query, k, seed)
    if mode == "shuffled_context":
        demos = pool.rices(query, k)
        random.Random(f"{seed}:{query.id}").shuffle(demos)
        return demos
    if mode == "cheat":
        others = pool.random(query, k - 1, seed) if cheat_second == "random" else pool.rices(query, k)[1:]
        return [query, *others[-(k - 1):]] if k > 1 else [query]
    raise ValueError(f"unknown demonstration mode {mode!r}; known: {', '.join(MODES)}")
