"""Model families: how a document becomes ``input_ids`` and pixels, and which ids are image tokens.

A family adapter is the only place that knows its processor.
- ``llava``: ``LlavaForConditionalGeneration`` (LLaVA-1.5, LLaVA-NeXT-Interleave HF checkpoints);
  each ``<image>`` expands to the processor's fixed token count.
- ``idefics3``: ``Idefics3ForConditionalGeneration`` (SmolVLM, Idefics2's successor), without image
  splitting; each ``<image>`` becomes ``<fake_token_around_image><global-img><image>*n<fake...>``,
  and all three ids count as image tokens (the official Idefics trainer left the fake token in
  the loss).
Sequences longer than ``max_length`` are cut only between whole images (the images past the cut go
with their tokens), so image features and image tokens always match.
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
    pixel_attention_mask: torch.Tensor | None = None  # [images, H, W] (idefics3)


class Family:
    name = ""

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

    def _process(self, text: str, images: list[Any]) -> dict[str, Any]:
        return self.processor(text=[text], images=images or None, return_tensors="pt")

    def vision_tower(self, model: Any) -> Any:
        raise NotImplementedError

    @property
    def image_tokens(self) -> int:
        """Tokens one image costs, measured by the processor itself."""
        if self._image_tokens is None:
            from PIL import Image

            ids = self._process(self.placeholder, [Image.new("RGB", (8, 8))])["input_ids"][0].tolist()
            self._image_tokens = sum(1 for i in ids if i in self.image_ids)
        return self._image_tokens

    def _count_images(self, ids: torch.Tensor) -> int:
        return int((ids == self.image_id).sum()) // self.image_tokens

    def slot_cost(self) -> Callable[[str | None, str | None], int]:
        return lambda image, text: self.image_tokens if image is not None else (
            len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) + 1 if text else 0)

    def encode(self, doc: Document, load_image: Callable[[str], Any], max_length: int) -> Encoded:
        out = self._process(doc.text, [load_image(p) for p in doc.images])
        ids = torch.cat([out["input_ids"][0], torch.tensor([self.tokenizer.eos_token_id])])
        pixels = out.get("pixel_values")
        pixels = pixels.reshape(-1, *pixels.shape[-3:]) if pixels is not None else torch.zeros(0, 3, 1, 1)
        mask = out.get("pixel_attention_mask")
        mask = mask.reshape(-1, *mask.shape[-2:]) if mask is not None else None
        if len(ids) > max_length:
            ids = self._cut(ids, max_length)
        kept = self._count_images(ids)
        return Encoded(ids, make_labels(ids, self.image_ids, self.eov_id, self.mask_after_eov), pixels[:kept], kept,
                       mask[:kept] if mask is not None else None)

    def encode_turns(self, turns: list[Any], load_image: Callable[[str], Any], max_length: int) -> Encoded:
        """A conversation (sft.Turn list): each turn encoded with its own images, loss on the
        assistant's turns (and the end-of-sequence closing each) only."""
        ids, labels, pixels, masks = [], [], [], []
        bos = self.tokenizer.bos_token_id
        for n, turn in enumerate(turns):
            out = self._process(turn.text, [load_image(p) for p in turn.images])
            piece = out["input_ids"][0]
            if n and bos is not None and len(piece) and piece[0] == bos:
                piece = piece[1:]  # one sequence, one BOS
            if turn.assistant:
                piece = torch.cat([piece, torch.tensor([self.tokenizer.eos_token_id])])
            ids.append(piece)
            labels.append(piece.clone() if turn.assistant else torch.full_like(piece, IGNORE))
            if out.get("pixel_values") is not None:
                pixels.append(out["pixel_values"].reshape(-1, *out["pixel_values"].shape[-3:]))
            if out.get("pixel_attention_mask") is not None:
                masks.append(out["pixel_attention_mask"].reshape(-1, *out["pixel_attention_mask"].shape[-2:]))
        input_ids, label_ids = torch.cat(ids)[:max_length], torch.cat(labels)[:max_length]
        label_ids[torch.isin(input_ids, torch.tensor(sorted(self.image_ids)))] = IGNORE
        all_pixels = torch.cat(pixels) if pixels else torch.zeros(0, 3, 1, 1)
        kept = self._count_images(input_ids)
        return Encoded(input_ids, label_ids, all_pixels[:kept], kept, torch.cat(masks)[:kept] if masks else None)

    def _cut(self, ids: torch.Tensor, max_length: int) -> torch.Tensor:
        """Cut at ``max_length``, or before the run of image tokens the cut would split."""
        cut = max_length
        image = torch.isin(ids, torch.tensor(sorted(self.image_ids)))
        if image[cut - 1] and cut < len(ids) and image[cut]:
            while cut > 0 and image[cut - 1]:
                cut -= 1
        return ids[:cut]

    def collate(self, batch: list[Encoded]) -> dict[str, torch.Tensor]:
        """Right-pad a batch; padding never carries loss."""
        width = max(len(e.input_ids) for e in batch)
        ids = torch.full((len(batch), width), self.tokenizer.pad_token_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, e in enumerate(batch):
            ids[row, :len(e.input_ids)] = e.input_ids
            labels[row, :len(e.labels)] = e.labels
            mask[row, :len(e.input_ids)] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels, **self._pixels(batch)}

    def _pixels(self, batch: list[Encoded]) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class LlavaFamily(Family):
    name = "llava"

    def vision_tower(self, model: Any) -> Any:
        return model.model.vision_tower

    def _pixels(self, batch: list[Encoded]) -> dict[str, torch.Tensor]:
        """LLaVA takes one flat list of images, in sample order."""
        pixels = [e.pixel_values for e in batch if e.images]
        return {"pixel_values": torch.cat(pixels)} if pixels else {}


class Idefics3Family(Family):
    name = "idefics3"

    @property
    def image_ids(self) -> set[int]:
        tok = self.tokenizer
        return {self.image_id, tok.convert_tokens_to_ids(self.processor.fake_image_token),
                tok.convert_tokens_to_ids(self.processor.global_image_tag)}

    def _count_images(self, ids: torch.Tensor) -> int:
        """One ``<global-img>`` per image (without splitting)."""
        return int((ids == self.tokenizer.convert_tokens_to_ids(self.processor.global_image_tag)).sum())

    def _process(self, text: str, images: list[Any]) -> dict[str, Any]:
        return self.processor(text=[text], images=[images] if images else None, return_tensors="pt")

    def vision_tower(self, model: Any) -> Any:
        return model.model.vision_model

    def _pixels(self, batch: list[Encoded]) -> dict[str, torch.Tensor]:
        """Idefics3 takes [batch, images, ...], padded with all-zero images it skips."""
        most = max(e.images for e in batch)
        if most == 0:
            return {}
        shape = next(e.pixel_values.shape[1:] for e in batch if e.images)
        pixels = torch.zeros(len(batch), most, *shape)
        masks = torch.zeros(len(batch), most, *shape[1:], dtype=torch.long)
        for row, e in enumerate(batch):
            pixels[row, :e.images] = e.pixel_values
            if e.pixel_attention_mask is not None:
                masks[row, :e.images] = e.pixel_attention_mask
        return {"pixel_values": pixels, "pixel_attention_mask": masks}


FAMILIES: dict[str, type[Family]] = {"llava": LlavaFamily, "idefics3": Idefics3Family}


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
                with_model: bool = True) -> tuple[Any, Family]:
    """The model (or None) and its family adapter, from a local folder only."""
    if family not in FAMILIES:
        raise FamilyError(f"model.family {family!r} is not supported (supported: {', '.join(FAMILIES)})")
    from transformers import AutoModelForImageTextToText, AutoProcessor

    if not (Path(model_dir) / "config.json").is_file():
        raise FamilyError(f"{model_dir}: no config.json: model.path must be a local HF-format checkpoint folder")
    processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, local_files_only=True) if with_model else None
    if end_of_video:
        add_eov_token(model, processor.tokenizer, end_of_video)
    return model, FAMILIES[family](processor, end_of_video, mask_after_eov)
