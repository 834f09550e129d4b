"""One finished video as a chronological run of clips: keyframes, then the clip's text.

A clip's images are the keyframes that SSIM change detection kept, less those the OCR stage's
keyframe score dropped (``dropped`` in ocr.json: they never ship, nor does their OCR), unless the
visual filter dropped the clip's visuals; its text stays either way. The OCR joined to a clip's text
(``text_ocr_list``) comes from the keyframes that survive the visual filter only: when a clip's
visuals are dropped (a talking head, a blank slide) their OCR is dropped with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import PurePosixPath
from typing import Any, Iterator

from textbook import keys
from textbook.tokens import count_tokens
from textbook.records import Clip, ClipFrames, ClipVisual, OcrResult


class ExportInputError(ValueError):
    """A finished video's stage documents are missing or disagree with each other."""


@dataclass(frozen=True)
class Frame:
    """One keyframe: where it lives in the store, where it goes in the dataset, and its OCR."""

    source_key: str
    path: str  # relative to the dataset root, FORMAT.md section 1
    ocr: str
    ocr_deduplicated: str
    ocr_boilerplate: str = ""  # template lines (footer, slide number) the OCR stage set apart, one a line


@dataclass(frozen=True)
class SampledFrame:
    source_key: str
    path: str  # relative to the dataset root: frames/<video_id>/<name>


@dataclass(frozen=True)
class ClipItem:
    video_id: str
    knowledge_point: str | None
    index: int
    start: float
    end: float
    asr: str  # raw transcript of the clip
    refined_asr: str  # refined transcript, or the raw one where no refinement ran
    frames: tuple[Frame, ...]  # every keyframe SSIM kept and the keyframe score did not drop, in order
    sampled: tuple["SampledFrame", ...]  # the frames SSIM compared
    visual_kept: bool
    visual_reason: str = ""  # why the visual filter dropped the clip's images
    score_dropped: int = 0  # keyframes the OCR stage's quality score dropped (not in ``frames``)
    caption: str | None = None  # what the visual filter's VLM said the clip shows (backend caption)

    @cached_property
    def images(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.frames) if self.visual_kept else ()

    @cached_property
    def ocr_text(self) -> str:
        """The deduplicated OCR of the clip's kept keyframes, each line once."""
        if not self.visual_kept:
            return ""
        seen: set[str] = set()
        lines = []
        for frame in self.frames:
            for line in frame.ocr_deduplicated.splitlines():
                line = line.strip()
                if line and line not in seen:
                    seen.add(line)
                    lines.append(line)
        return "\n".join(lines)

    @property
    def text_ocr(self) -> str:
        ocr = self.ocr_text
        return f"{self.refined_asr}\n{ocr}" if self.refined_asr and ocr else self.refined_asr or ocr

    @property
    def has_text(self) -> bool:
        """A clip gets a text position when it has a transcript or kept OCR: no text is lost."""
        return bool(self.refined_asr or self.ocr_text)

    @cached_property
    def text_tokens(self) -> int:
        return count_tokens(self.refined_asr)

    def cost(self, image_tokens: int) -> int:
        return self.text_tokens + len(self.images) * image_tokens


@dataclass(frozen=True)
class EndOfVideo:
    """The text position that closes a video, so training sees where one video ends."""

    video_id: str
    knowledge_point: str | None


Entry = ClipItem | EndOfVideo


@dataclass(frozen=True)
class Position:
    """One index of an OBELICS sample: an image, or a text with its OCR-augmented twin."""

    video_id: str
    clip_start: float | None
    clip_end: float | None
    knowledge_point: str | None
    image: str | None = None
    text: str | None = None
    text_ocr: str | None = None

    @property
    def kind(self) -> str:
        return "keyframe" if self.image is not None else "text"


def positions(entry: Entry, end_of_video: str) -> Iterator[Position]:
    """Keyframes first, then text: the reader sees a slide, then hears what was said over it."""
    if isinstance(entry, EndOfVideo):
        yield Position(entry.video_id, None, None, entry.knowledge_point, text=end_of_video, text_ocr=end_of_video)
        return
    for image in entry.images:
        yield Position(entry.video_id, entry.start, entry.end, entry.knowledge_point, image=image)
    if entry.has_text:
        yield Position(entry.video_id, entry.start, entry.end, entry.knowledge_point,
                       text=entry.refined_asr, text_ocr=entry.text_ocr)


def _doc_list(doc: Any, field: str, what: str) -> list[dict[str, Any]]:
    if not isinstance(doc, dict) or not isinstance(doc.get(field), list):
        raise ExportInputError(f"{what}: expected an object with a '{field}' list")
    return doc[field]


def build_clips(video_id: str, knowledge_point: str | None, docs: dict[str, Any]) -> list[ClipItem]:
    """Join the clips, keyframes, ocr and visual_filter documents of one video into clip items."""
    try:
        clips = sorted((Clip.from_dict(c) for c in _doc_list(docs["clips"], "clips", "clips.json")),
                       key=lambda c: (c.start, c.index))
        frames = {f.clip_index: f for f in (ClipFrames.from_dict(d)
                                            for d in _doc_list(docs["keyframes"], "clips", "keyframes.json"))}
        ocr = {r.key: r for r in (OcrResult.from_dict(d) for d in _doc_list(docs["ocr"], "results", "ocr.json"))}
        visual = {v.clip_index: v for v in (ClipVisual.from_dict(d)
                                            for d in _doc_list(docs["visual_filter"], "clips", "visual_filter.json"))}
    except (KeyError, TypeError) as exc:
        raise ExportInputError(f"malformed stage document: {type(exc).__name__}: {exc}") from None
    known = {c.index for c in clips}
    for name, table in (("keyframes", frames), ("visual_filter", visual)):
        stray = sorted(set(table) - known)
        if stray:
            raise ExportInputError(f"{name}.json names clip(s) {stray} that clips.json does not have")
    return [_clip_item(video_id, knowledge_point, clip, frames.get(clip.index), ocr, visual.get(clip.index))
            for clip in clips]


def _clip_item(video_id: str, knowledge_point: str | None, clip: Clip, clip_frames: ClipFrames | None,
               ocr: dict[str, OcrResult], verdict: ClipVisual | None) -> ClipItem:
    keyframes = sorted(clip_frames.keyframes, key=lambda k: k.k) if clip_frames else []
    if keyframes and verdict is None:
        raise ExportInputError(f"visual_filter.json has no decision for clip {clip.index} ({clip.label})")
    frames = []
    score_dropped = 0
    for kf in keyframes:
        result = ocr.get(kf.key)
        if result is None:
            raise ExportInputError(f"ocr.json has no result for keyframe {kf.key!r}")
        if result.dropped:
            score_dropped += 1
            continue
        frames.append(Frame(kf.key, keys.keyframe(video_id, clip.start, clip.end, kf.k),
                            result.text.strip(), result.deduplicated.strip(), "\n".join(result.boilerplate)))
    sampled = tuple(SampledFrame(key, keys.sampled_frame_path(video_id, PurePosixPath(key).name))
                    for key in (clip_frames.sampled if clip_frames else ()))
    raw = (clip.text or "").strip()
    refined = (clip.refined_text or "").strip() or raw
    return ClipItem(video_id, knowledge_point, clip.index, float(clip.start), float(clip.end), raw, refined,
                    tuple(frames), sampled, verdict.kept if verdict is not None else True,
                    verdict.reason if verdict is not None and not verdict.kept else "", score_dropped,
                    verdict.caption if verdict is not None else None)
