"""The paper's clip filter: a VLM captions what a clip shows, a text embedder compares the caption
with what is said, and a clip whose pictures do not match its speech loses its images (its text
stays). The paper captioned with VideoLLaMA2 and embedded with gte-Qwen2-7B-instruct.

The VLM sees the clip's keyframes (the images that would ship), at most ``caption_frames`` of them
evenly spread. ``caption_threshold`` 0.25 was measured with the packaged MiniLM on crafted pairs: a
caption of the clip's own slide, board or plot against its narration 0.47-0.76; a talking head, a
black screen, an advert or a channel logo against a lecture's narration -0.08 to 0.14.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any, Sequence

from textbook.embeddings import cosine
from textbook.records import Clip, ClipVisual, Keyframe

PROMPT_VERSION = "caption-v1"  # a change to the prompt must bump the visual_filter stage's version
PROMPT = ("These frames come from a 10-20 second part of a lecture video, in order. Describe in one or two "
          "sentences what they show: the slide, board, diagram, experiment or scene, and the text or formulas "
          "on it.")


def picked(keyframes: Sequence[Keyframe], n: int) -> list[Keyframe]:
    """At most ``n`` keyframes, evenly spread, first and last included."""
    if len(keyframes) <= n:
        return list(keyframes)
    if n == 1:
        return [keyframes[len(keyframes) // 2]]
    return [keyframes[round(i * (len(keyframes) - 1) / (n - 1))] for i in range(n)]


def caption_clips(clips: Sequence[Clip], frames: dict[int, list[Keyframe]], store: Any, vlm: Any, embedder: Any,
                  n_frames: int, threshold: float) -> list[ClipVisual]:
    """Every clip's verdict with its caption; a clip without keyframes has nothing to caption or drop."""
    asked = [clip for clip in clips if frames.get(clip.index)]
    with ExitStack() as stack:
        conversations = [[{"role": "user", "content": [
            *({"type": "image", "path": str(stack.enter_context(store.local_path(kf.key)))}
              for kf in picked(frames[clip.index], n_frames)),
            {"type": "text", "text": PROMPT}]}] for clip in asked]
        captions = [c.strip() for c in vlm.chat(conversations)] if conversations else []
    said = [(clip.refined_text or clip.text or "").strip() for clip in asked]
    vectors = embedder.encode([*captions, *said]) if asked else []
    by_clip = {}
    for k, clip in enumerate(asked):
        if not said[k] or not captions[k]:  # nothing said, or nothing seen: no evidence to drop the images
            by_clip[clip.index] = ClipVisual(clip.index, True, "", None, captions[k])
            continue
        score = round(cosine(vectors[k], vectors[len(asked) + k]), 4)
        kept = score >= threshold
        by_clip[clip.index] = ClipVisual(clip.index, kept, "" if kept else "caption_unrelated", score, captions[k])
    return [by_clip.get(clip.index) or ClipVisual(clip.index, False, "no_keyframes") for clip in clips]
