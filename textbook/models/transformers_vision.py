"""A vision-language model from a local folder with 🤗 transformers: the processor's chat template,
images from local paths, batched greedy decoding.

Messages are the OpenAI backend's: content parts ``{"type": "text", "text": ...}`` and
``{"type": "image", "path": ...}``; the processor's template places its image tokens where the
image parts are. LLaVA-style processors take a batch's images as one flat list, Idefics3 one list
per sample (as the benchmark's HF backend found).
"""

from __future__ import annotations

from typing import Any, Sequence

from textbook.config import ModelSettings
from textbook.models.registry import BackendError, register
from textbook.models.transformers_chat import torch_device


def image_paths(conversation: Sequence[dict[str, Any]]) -> list[str]:
    return [part["path"] for message in conversation if isinstance(message.get("content"), list)
            for part in message["content"] if part.get("type") == "image"]


@register("vlm", "transformers", needs=("model_dir",),
          about="a local image-text-to-text folder (LLaVA, Idefics3, ...); chat template; batched; CPU or CUDA")
class TransformersVision:
    def __init__(self, cfg: ModelSettings) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.cfg = cfg
        self.device = torch_device(cfg.device)
        self.processor = AutoProcessor.from_pretrained(cfg.model, local_files_only=True)
        if not getattr(self.processor, "chat_template", None):
            raise BackendError(f"{cfg.model}: the processor has no chat template (chat_template.jinja)")
        self.processor.tokenizer.padding_side = "left"  # a batch's prompts end where generation starts
        self.nested = type(self.processor).__name__.startswith("Idefics")
        self.model = AutoModelForImageTextToText.from_pretrained(cfg.model, local_files_only=True, torch_dtype="auto")
        self.model.to(self.device).eval()

    def prompts(self, conversations: Sequence[Sequence[dict[str, Any]]]) -> list[str]:
        return [self.processor.apply_chat_template(list(c), add_generation_prompt=True, tokenize=False)
                for c in conversations]

    def chat(self, conversations: Sequence[Sequence[dict[str, Any]]], max_new_tokens: int | None = None) -> list[str]:
        import torch
        from PIL import Image

        tok = self.processor.tokenizer
        out: list[str] = []
        for i in range(0, len(conversations), self.cfg.batch_size):
            batch = conversations[i:i + self.cfg.batch_size]
            images = []
            for conversation in batch:
                loaded = []
                for path in image_paths(conversation):
                    with Image.open(path) as im:
                        loaded.append(im.convert("RGB"))
                images.append(loaded)
            flat = [im for per in images for im in per]
            given = (images if self.nested else flat) if flat else None
            inputs = self.processor(text=self.prompts(batch), images=given, padding=True,
                                    return_tensors="pt").to(self.device)
            with torch.no_grad():
                ids = self.model.generate(**inputs, max_new_tokens=max_new_tokens or self.cfg.max_new_tokens,
                                          do_sample=False, pad_token_id=tok.pad_token_id)
            out += tok.batch_decode(ids[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        return out
