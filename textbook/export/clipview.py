"""The clip view (FORMAT.md section 3): the same samples, one record per clip with intermediates.

It is what the release's Idefics trainer reads, and what a person reads to see why a clip looks
the way it does: every sampled frame compared, the keyframes SSIM kept, each keyframe's OCR before
and after deduplication, and whether the visual filter kept the clip's images.
"""

from __future__ import annotations

from typing import Any, Callable

from textbook.export.interleave import ClipItem, Entry
from textbook.export.packing import Sample

FOLDER = "clips"
# The release's spelling of the pseudo-clip that marks a video boundary.
END_OF_VIDEO_CLIP = {"vid": "End of a Video", "image_tokens": 0, "token_num": 0}


def clip_record(clip: ClipItem, image_tokens: int, path: Callable[[str], str], frames_shipped: bool) -> dict[str, Any]:
    images = len(clip.images) * image_tokens
    return {
        "vid": clip.video_id,
        "clip_start": clip.start,
        "clip_end": clip.end,
        "asr": clip.asr,
        "refined_asr": clip.refined_asr,
        # only paths that exist in the dataset: the sampled frames ship with export.sampled_frames
        "extracted_frames": [path(f.path) for f in clip.sampled] if frames_shipped else [],
        "keyframe_ssim": [path(f.path) for f in clip.frames],
        "ocr": [f.ocr for f in clip.frames],
        "ocr_image": [path(f.path) for f in clip.frames],
        "ocr_deduplicates": [f.ocr_deduplicated for f in clip.frames],
        "visual_kept": clip.visual_kept,
        "visual_reason": clip.visual_reason,
        "image_tokens": images,
        "token_num": images + clip.text_tokens,
        "asr_token_num": clip.text_tokens,
    }


def _record(entry: Entry, image_tokens: int, path: Callable[[str], str], frames_shipped: bool) -> dict[str, Any]:
    if isinstance(entry, ClipItem):
        return clip_record(entry, image_tokens, path, frames_shipped)
    return dict(END_OF_VIDEO_CLIP)


def clip_sample(sample: Sample, *, image_tokens: int, path: Callable[[str], str],
                frames_shipped: bool) -> dict[str, Any]:
    conversations = [_record(e, image_tokens, path, frames_shipped) for e in sample]
    return {"token_num": sum(c["token_num"] for c in conversations), "conversations": conversations}
