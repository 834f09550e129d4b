"""Inference backends: transformers (default), any OpenAI-compatible server, and an oracle for tests.

Every backend answers ``generate(prompt, max_new_tokens) -> str`` greedily, one prompt at a time
(batch 1, as the official eval asserts). The oracle answers with the gold answer of the demo whose
image bytes equal the query's (the cheat test), else the answer of the demo most similar to the
query, else nothing: it makes the harness's plumbing exactly checkable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from textbook.benchmark.prompts import Prompt
from textbook.models.openai import chat


class Backend(Protocol):
    name: str

    def generate(self, prompt: Prompt, max_new_tokens: int) -> str: ...


class OracleBackend:
    name = "oracle"

    def __init__(self, embed: Callable[[Path], np.ndarray]) -> None:
        self.embed = embed

    def generate(self, prompt: Prompt, max_new_tokens: int) -> str:
        if not prompt.demos:
            return ""
        q = prompt.query
        for d in prompt.demos:
            if d.image_sha == q.image_sha:
                return d.demo_answer
        qf = self.embed(q.image)
        sims = [float(np.dot(qf, f) / max(np.linalg.norm(qf) * np.linalg.norm(f), 1e-12))
                for f in (self.embed(d.image) for d in prompt.demos)]
        return prompt.demos[int(np.argmax(sims))].demo_answer


class HFBackend:
    """A LLaVA or Idefics3 checkpoint from a local folder; greedy ``generate``."""

    name = "hf"

    def __init__(self, model_dir: str | Path, device: str = "") -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModelForImageTextToText.from_pretrained(model_dir, local_files_only=True).to(self.device)
        self.model.eval()
        self.nested = type(self.processor).__name__.startswith("Idefics")  # images per sample: [[...]]

    def generate(self, prompt: Prompt, max_new_tokens: int) -> str:
        import torch
        from PIL import Image

        images = []
        for p in prompt.images:
            with Image.open(p) as im:
                images.append(im.convert("RGB"))
        inputs = self.processor(text=[prompt.joined(self.processor.image_token)],
                                images=[images] if self.nested else images, return_tensors="pt").to(self.device)
        tok = self.processor.tokenizer
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        return tok.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


class OpenAIBackend:
    """A served checkpoint (vLLM, SGLang, lmdeploy): the prompt as one user turn, images as data URLs
    (textbook.models.openai, the pipeline's own OpenAI-compatible client)."""

    name = "openai"

    def __init__(self, endpoint: str, model: str, api_key_env: str = "OPENAI_API_KEY") -> None:
        self.endpoint, self.model, self.api_key_env = endpoint, model, api_key_env

    def generate(self, prompt: Prompt, max_new_tokens: int) -> str:
        content: list[dict[str, Any]] = []
        for i, text in enumerate(prompt.texts):
            if text:
                content.append({"type": "text", "text": text})
            if i < len(prompt.images):
                content.append({"type": "image", "path": str(prompt.images[i])})
        return chat(self.endpoint, self.model, [{"role": "user", "content": content}], max_tokens=max_new_tokens,
                    api_key_env=self.api_key_env)
