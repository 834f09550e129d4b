"""Keyframes by SSIM change detection (the paper's Algorithm 1), in one pass over the video.

Frames are sampled at ``fps`` once for the whole video and handed to the clip whose
[start, end) holds them. A frame whose SSIM against the last *kept* frame falls under the
threshold opens a change window, and the window gives one keyframe of the state the screen
settles on (``textbook.settle``): a cross-fade, dissolve or wipe gives the finished slide, never
a double exposure. By default the reference carries across clip boundaries: a slide that stays on
screen over two clips gives one keyframe, not two (``reset_per_clip`` restores the paper's
per-clip reset).

``keyframes.extractor`` swaps what decides that a frame differs, for the paper's Table 6 ablation:
the mean pixel difference of the thumbnails, or the cosine of CLIP embeddings of the frames
(a local model folder), instead of SSIM; the settling of transitions stays on the thumbnails.
"""

from __future__ import annotations

import bisect
import io
from functools import partial
from typing import Any, Callable

import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity

from textbook import keys
from textbook.artifacts import output_key, read_input
from textbook.config import KeyframeSettings
from textbook.context import Context
from textbook.frames import iter_frames
from textbook.records import Clip, ClipFrames, Keyframe, Video
from textbook.settle import Candidate, SettledPicker
from textbook.stages.base import StageResult, stage
from textbook.store import ArtifactRef

# decode="codec_keyframes": two codec keyframes this similar show the same picture, and the stretch
# between them is not decoded. Compression and sensor noise alone keep a still slide at >= 0.9996;
# anything that moves at all (a wipe under way, a camera) falls below and is decoded.
UNCHANGED_SSIM = 0.995


def _resized(image: Image.Image, width: int) -> Image.Image:
    height = max(1, round(image.height * width / image.width))
    return image.resize((width, height), Image.Resampling.BILINEAR)


def compare_image(frame: np.ndarray, width: int) -> np.ndarray:
    """The grayscale thumbnail SSIM is computed on."""
    return np.asarray(_resized(Image.fromarray(frame).convert("L"), width))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    return float(structural_similarity(a, b, data_range=255))


def pixel_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """1 - the mean absolute grey-level difference of two thumbnails, over 255 (the pixel extractor)."""
    return 1.0 - float(np.mean(np.abs(a.astype(np.float32) - b.astype(np.float32)))) / 255.0


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Of two unit-length embeddings (the CLIP extractor)."""
    return float(a @ b)


def extractor(cfg: KeyframeSettings) -> tuple[Callable[[Any, Any], float], float, Callable[[np.ndarray], Any] | None]:
    """``keyframes.extractor`` as (similarity, threshold, what to compare of a frame; None: its thumbnail)."""
    if cfg.extractor == "pixel":
        return pixel_similarity, cfg.pixel_threshold, None
    if cfg.extractor == "clip":
        if not cfg.clip_model:
            raise ValueError("keyframes.extractor clip needs keyframes.clip_model, a local CLIP model folder")
        from textbook.clip_images import clip_images

        clip = clip_images(cfg.clip_model, cfg.clip_device)
        return cosine, cfg.clip_threshold, lambda frame: clip.embed([Image.fromarray(frame)])[0]
    return ssim, cfg.ssim_threshold, None


def _differ(a: np.ndarray, b: np.ndarray, width: int) -> bool:
    return ssim(compare_image(a, width), compare_image(b, width)) < UNCHANGED_SSIM


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _clip_of(starts: list[float], clips: list[Clip], t: float) -> Clip | None:
    i = bisect.bisect_right(starts, t) - 1
    return clips[i] if i >= 0 and clips[i].start <= t < clips[i].end else None


@stage("keyframes", sections=("keyframes",), requires=("clips", "download"), model=False, version="2")
def run(video: Video, ctx: Context) -> StageResult:
    cfg = ctx.settings.keyframes
    vid, store = video.video_id, ctx.store
    media_key = read_input(ctx, vid, "download", "info.json")["media_key"]
    clips = sorted((Clip.from_dict(c) for c in read_input(ctx, vid, "clips")["clips"]),
                   key=lambda c: c.start)
    starts = [c.start for c in clips]
    frames = {c.index: ClipFrames(c.index, [], []) for c in clips}
    refs: list[ArtifactRef] = []
    similarity, threshold, signature = extractor(cfg)
    picker = SettledPicker(similarity, threshold, cfg.settle_share, cfg.transition_share, cfg.max_window_seconds)
    current: Clip | None = None
    sampled = 0

    def keep(kept: list[Candidate]) -> None:
        for c in kept:
            out = frames[c.owner.index]
            name = keys.keyframe_name(vid, c.owner.start, c.owner.end, len(out.keyframes) + 1)
            key = output_key(ctx, vid, "keyframes", name)
            refs.append(store.put_bytes(key, _jpeg(Image.fromarray(c.frame), cfg.jpeg_quality)))
            out.keyframes.append(Keyframe(c.owner.index, len(out.keyframes) + 1, round(c.time, 3), key))

    if clips:  # no speech means no clips: nothing to decode
        with store.local_path(media_key) as media:
            for t, frame in iter_frames(media, cfg.fps, cfg.image_max_height, cfg.decode,
                                        partial(_differ, width=cfg.compare_width)):
                clip = _clip_of(starts, clips, t)
                if clip is None:
                    continue  # outside every clip (a gap the clipper left): belongs to no text
                if clip is not current:
                    current = clip
                    if cfg.reset_per_clip:
                        keep(picker.flush())
                        picker.reset()
                out = frames[clip.index]
                sampled += 1
                if cfg.keep_sampled_frames:
                    name = keys.sampled_frame_name(vid, clip.start, clip.end, len(out.sampled) + 1)
                    key = output_key(ctx, vid, "keyframes", name)
                    image = _resized(Image.fromarray(frame), cfg.sample_width)
                    refs.append(store.put_bytes(key, _jpeg(image, cfg.jpeg_quality)))
                    out.sampled.append(key)
                keep(picker.push(Candidate(t, clip, frame, compare_image(frame, cfg.compare_width),
                                           signature(frame) if signature else None)))
            keep(picker.flush())

    document = {"clips": [frames[c.index].to_dict() for c in sorted(clips, key=lambda c: c.index)],
                "params": {"fps": cfg.fps, "extractor": cfg.extractor, "threshold": threshold,
                           "compare_width": cfg.compare_width,
                           "reset_per_clip": cfg.reset_per_clip, "settle_share": cfg.settle_share,
                           "transition_share": cfg.transition_share, "max_window_seconds": cfg.max_window_seconds,
                           "decode": cfg.decode}}
    refs.append(store.put_json(output_key(ctx, vid, "keyframes", "keyframes.json"), document))
    count = sum(len(f.keyframes) for f in frames.values())
    return StageResult(artifacts=refs, summary={"keyframes": count, "sampled": sampled})


STAGE = run
