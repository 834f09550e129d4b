"""Model families: how a document becomes ``input_ids`` and pixels, and which ids are image tokens.

A family adapter is the only place that knows its processor. ``llava`` covers
``LlavaForConditionalGeneration`` (LLaVA-1.5, LLaVA-NeXT-Interleave HF checkpoints): each
``<image>`` expands to the processor's fixed token count. Sequences longer than ``max_length`` are
cut only after the last whole image (the images past the cut go with their tokens), so image
features and image tokens always match.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from textbook.train.labels import IGNORE, make_labels
from textbook.train.samples import Document


class FamilyError(ValueError):
    """The model folder does not hold what the family needs; the message says what is missing."""


@dataclass
class Encoded:
    input_ids: torch.Tensor  # 1-D
    labels: torch.Tensor  # 1-D
    pixel_values: torch.Tensor  # [images, 3, H, W]
    images: int


class LlavaFamily:
    name = "llava"
    model_class = "LlavaForConditionalGeneration"

    def __init__(self, processor: Any, end_of_video: str, mask_after_eov: bool = True) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.placeholder = processor.image_token
        self.image_id = self.tokenizer.convert_tokens_to_ids(self.placeholder)
        self.eov_id = self.tokenizer.convert_tokens_to_ids(end_of_video) if end_of_video else None
        if end_of_video and (self.eov_id is None or self.eov_id == self.tokenizer.unk_token_id):
            raise FamilyError(f"the tokenizer has no token {end_of_video!r}: add it with add_eov_token first")
        self.mask_after_eov = mask_after_eov
        self._image_tokens: int | None = None

    @property
    def image_ids(self) -> set[int]:
        return {self.image_id}

    @property
    def image_tokens(self) -> int:
        """Tokens one image costs, measured by the processor itself."""
        if self._image_tokens is None:
            from PIL import Image

            ids = self.processor(text=[self.placeholder], images=[Image.new("RGB", (8, 8))])["input_ids"][0]
            self._image_tokens = sum(1 for i in ids if i == self.image_id)
        return self._image_tokens

    def slot_cost(self) -> Callable[[str | None, str | None], int]:
        return lambda image, text: self.image_tokens if image is not None else (
            len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) + 1 if text else 0)

    def encode(self, doc: Document, load_image: Callable[[str], Any], max_length: int) -> Encoded:
        images = [load_image(p) for p in doc.images]
        out = self.processor(text=[doc.text], images=images or None, return_tensors="pt")
        ids = torch.cat([out["input_ids"][0], torch.tensor([self.tokenizer.eos_token_id])])
        pixels = out.get("pixel_values")
        pixels = pixels if pixels is not None else torch.zeros(0, 3, 1, 1)
        if len(ids) > max_length:
            ids, kept = self._cut(ids, max_length)
            pixels = pixels[:kept]
        n_images = int((ids == self.image_id).sum()) // max(1, self.image_tokens)
        return Encoded(ids, make_labels(ids, self.image_ids, self.eov_id, self.mask_after_eov), pixels, n_images)

    def _cut(self, ids: torch.Tensor, max_length: int) -> tuple[torch.Tensor, int]:
        """Cut at ``max_length``, or before the image block the cut would split; images kept."""
        cut = max_length
        if ids[cut - 1] == self.image_id and cut < len(ids) and ids[cut] == self.image_id:
            while cut > 0 and ids[cut - 1] == self.image_id:
                cut -= 1
        ids = ids[:cut]
        return ids, int((ids == self.image_id).sum()) // max(1, self.image_tokens)


def collate(batch: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch; padding never carries loss; images concatenated in sample order."""
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):
        ids[row, :len(e.input_ids)] = e.input_ids
        labels[row, :len(e.labels)] = e.labels
        mask[row, :len(e.input_ids)] = 1
    out = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    pixels = [e.pixel_values for e in batch if e.images]
    if pixels:
        out["pixel_values"] = torch.cat(pixels)
    return out


def add_eov_token(model: Any | None, tokenizer: Any, token: str) -> bool:
    """Make ``token`` one special token; a new embedding row starts at the mean embedding."""
    if token not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"extra_special_tokens": [token]}, replace_extra_special_tokens=False)
    if model is None or model.get_input_embeddings().weight.shape[0] >= len(tokenizer):
        return False
    old = model.get_input_embeddings().weight.shape[0]
    model.resize_token_embeddings(len(tokenizer))
    with torch.no_grad():
        for emb in (model.get_input_embeddings(), model.get_output_embeddings()):
            if emb is not None and emb.weight.shape[0] > old:
                emb.weight[old:] = emb.weight[:old].mean(dim=0, keepdim=True)
    return True


def load_family(family: str, model_dir: Path, end_of_video: str, mask_after_eov: bool = True,
                with_model: bool = True) -> tuple[Any, LlavaFamily]:
    """The model (or None) and its family adapter, from a local folder only."""
    if family != "llava":
        raise FamilyError(f"model.family {family!r} is not supported yet (supported: llava)")
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    if not (Path(model_dir) / "config.json").is_file():
        raise FamilyError(f"{model_dir}: no config.json: model.path must be a local HF-format checkpoint folder")
    processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    model = LlavaForConditionalGeneration.from_pretrained(model_dir, local_files_only=True) if with_model else None
    if end_of_video:
        add_eov_token(model, processor.tokenizer, end_of_video)
    return model, LlavaFamily(processor, end_of_video, mask_after_eov)
