"""CLIP image embeddings from a local model folder, for InSI-SIM's CLIP term and the CLIP keyframe
extractor. Nothing is downloaded: the folder holds a ``CLIPModel`` checkpoint and its
``preprocessor_config.json``; images are preprocessed with PIL, so torchvision is not needed."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image


class ClipImages:
    def __init__(self, folder: str, device: str = "cpu") -> None:
        import torch
        from transformers import CLIPImageProcessorPil, CLIPModel

        path = Path(folder).expanduser()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"CLIP model folder {path}: no config.json (a local CLIPModel checkpoint)")
        self.torch, self.device = torch, device
        self.processor = CLIPImageProcessorPil.from_pretrained(path)
        self.model = CLIPModel.from_pretrained(path).to(device).eval()

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """One unit-length row per image."""
        torch = self.torch
        with torch.inference_mode():
            pixels = self.processor(images=list(images), return_tensors="pt")["pixel_values"].to(self.device)
            features = self.model.get_image_features(pixel_values=pixels).pooler_output.float()
            features = torch.nn.functional.normalize(features, dim=-1)
        return features.cpu().numpy().astype(np.float64)


@lru_cache(maxsize=2)
def clip_images(folder: str, device: str = "cpu") -> ClipImages:
    """One model per folder and device in a process: a worker runs the keyframe stage once per video."""
    return ClipImages(folder, device)
