"""Which tokens carry loss: the official recipe, plus the End-of-Video rule.

Official (``DataCollatorOpenflamingo`` of the release's ``train_interleaved.py``): no loss on
padding, on image tokens, nor on text before the first image. Ours on top: the End-of-Video token
keeps its loss (the model learns where a video ends), and the next video's text before its first
image carries none, like OpenFlamingo's ``<|endofchunk|>`` rule.
"""

from __future__ import annotations

from typing import Iterable

import torch

IGNORE = -100


def make_labels(input_ids: torch.Tensor, image_ids: Iterable[int], eov_id: int | None,
                mask_after_eov: bool = True) -> torch.Tensor:
    """Labels for one unpadded sequence (1-D ``input_ids``); padding is masked by the collator."""
    labels = input_ids.clone()
    is_image = torch.isin(input_ids, torch.tensor(sorted(set(image_ids)), dtype=input_ids.dtype))
    image_at = torch.nonzero(is_image).flatten().tolist()
    if not image_at:
        labels[:] = IGNORE
        return labels
    labels[:image_at[0]] = IGNORE
    if mask_after_eov and eov_id is not None:
        for e in torch.nonzero(input_ids == eov_id).flatten().tolist():
            following = [i for i in image_at if i > e]
            labels[e + 1:following[0] if following else len(labels)] = IGNORE
    labels[is_image] = IGNORE
    return labels
