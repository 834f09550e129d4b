"""Which clips keep their images: the paper's filter for keyframes that teach nothing.

Backend ``caption`` is the paper's method (a VLM caption against the speech: textbook/clip_captions.py).
Backend ``heuristic``, the offline default, is described here. A clip's text always stays; its
images go when none of its keyframes carries instructional content: a blank (near-uniform) frame, the speaker alone (a large frontal face and almost no
on-screen text), or on-screen text unrelated to what is said in the clip (MiniLM cosine between
the clip's OCR text and its transcript).

Thresholds, measured on the rendered test media (tests/slide_helpers.py, 640x360 and 1280x720, H.264):
- blank: pixel std of a black or white frame is 0.5-0.8; a slide with a title and one bullet line
  24-28, the speaker frame 56 (``blank_std`` 6);
- face: the speaker filling the frame height (skimage's astronaut) has a largest face of 0.059 of
  the frame area; the same photo as a picture on a slide 0.013-0.021; text slides and plots 0
  (``face_area_ratio`` 0.04); the speaker frame's OCR is empty, a slide's is 20+ characters;
- relatedness (MiniLM cosine, OCR as tesseract read it vs a spoken paraphrase): the slide's own
  transcript 0.24 (a plot, no shared words) to 0.78; unrelated transcripts (cooking, football, an
  advert slide) -0.12 to 0.07 (``relatedness_threshold`` 0.1; judged only when the OCR has at
  least ``relatedness_min_chars`` characters, since a few words embed poorly).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from textbook.artifacts import output_key, read_input
from textbook import models
from textbook.config import VisualFilterSettings
from textbook.context import Context
from textbook.embeddings import cosine
from textbook.clip_captions import caption_clips
from textbook.records import Clip, ClipFrames, ClipVisual, Keyframe, Video
from textbook.stages.base import StageResult, stage

DETECT_WIDTH = 640  # faces are found on a copy this wide: fast, and a frame-filling face stays large


class FaceDetectorUnavailable(RuntimeError):
    """OpenCV or its bundled Haar cascade is missing."""


class FaceDetector:
    """OpenCV's bundled Haar frontal-face cascade."""

    def __init__(self) -> None:
        import cv2

        path = f"{getattr(getattr(cv2, 'data', None), 'haarcascades', '')}haarcascade_frontalface_default.xml"
        if not hasattr(cv2, "CascadeClassifier"):
            raise FaceDetectorUnavailable(f"OpenCV {cv2.__version__} has no Haar cascades "
                                          f"(pip install 'opencv-python-headless<5')")
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise FaceDetectorUnavailable(f"OpenCV's Haar face cascade could not be loaded from {path}")

    def largest_face_ratio(self, gray: np.ndarray) -> float:
        """Area of the largest frontal face over the frame's area (0 when there is none)."""
        height, width = gray.shape
        if width > DETECT_WIDTH:
            small = Image.fromarray(gray).resize((DETECT_WIDTH, round(height * DETECT_WIDTH / width)),
                                                 Image.Resampling.BILINEAR)
            gray = np.asarray(small)
        faces = self._cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
        if len(faces) == 0:
            return 0.0
        return float(max(w * h for _, _, w, h in faces)) / float(gray.shape[0] * gray.shape[1])


@dataclass
class FrameLook:
    """What one keyframe shows."""

    std: float
    face_ratio: float
    ocr_chars: int


def _text_chars(text: str) -> int:
    return sum(not ch.isspace() for ch in text)


def decide(clip: Clip, looks: list[FrameLook], ocr_texts: list[str], cfg: VisualFilterSettings,
           embed: Callable[[list[str]], np.ndarray]) -> ClipVisual:
    """The clip's verdict from its keyframes' looks; ``embed`` is called only when relatedness is needed."""
    if not looks:
        return ClipVisual(clip.index, False, "no_keyframes")
    teaching = [i for i, look in enumerate(looks)
                if look.std >= cfg.blank_std
                and not (look.face_ratio >= cfg.face_area_ratio and look.ocr_chars < cfg.min_ocr_chars)]
    if not teaching:
        if all(look.std < cfg.blank_std for look in looks):
            return ClipVisual(clip.index, False, "blank", round(max(look.std for look in looks), 3))
        return ClipVisual(clip.index, False, "speaker_only", round(max(look.face_ratio for look in looks), 4))
    ocr = "\n".join(ocr_texts[i] for i in teaching).strip()
    said = (clip.refined_text or clip.text or "").strip()
    if _text_chars(ocr) < cfg.relatedness_min_chars or not said:
        return ClipVisual(clip.index, True, "")
    ocr_vec, said_vec = embed([ocr, said])
    score = round(cosine(ocr_vec, said_vec), 4)
    if score < cfg.relatedness_threshold:
        return ClipVisual(clip.index, False, "unrelated_text", score)
    return ClipVisual(clip.index, True, "", score)


@stage("visual_filter", sections=("visual_filter",), requires=("ocr", "clips"), model=True)
def run(video: Video, ctx: Context) -> StageResult:
    cfg = ctx.settings.visual_filter
    vid, store = video.video_id, ctx.store
    clips = [Clip.from_dict(c) for c in read_input(ctx, vid, "clips")["clips"]]
    frames = {c["clip_index"]: ClipFrames.from_dict(c)
              for c in read_input(ctx, vid, "keyframes")["clips"]}
    results = read_input(ctx, vid, "ocr")["results"]
    ocr = {r["key"]: r["text"] for r in results}
    scored_out = {r["key"] for r in results if r.get("dropped")}  # the keyframe score dropped them: never shown
    shown = {i: [kf for kf in f.keyframes if kf.key not in scored_out] for i, f in frames.items()}

    if cfg.backend == "caption":
        verdicts = captioned(clips, shown, ctx)
    else:
        verdicts = judged(clips, shown, ocr, ctx)
    ref = store.put_json(output_key(ctx, vid, "visual_filter", "visual_filter.json"), {"clips": [v.to_dict() for v in verdicts]})
    kept = sum(v.kept for v in verdicts)
    reasons: dict[str, int] = {}
    for v in verdicts:
        if not v.kept:
            reasons[v.reason] = reasons.get(v.reason, 0) + 1
    return StageResult(artifacts=[ref], summary={"clips": len(verdicts), "kept": kept, "dropped": reasons})


def captioned(clips: list[Clip], shown: dict[int, list[Keyframe]], ctx: Context) -> list[ClipVisual]:
    cfg = ctx.settings.visual_filter
    vlm, embedder = (use.load(ctx) for use in models.visual_caption_uses(ctx.settings))
    return caption_clips(clips, shown, ctx.store, vlm, embedder, cfg.caption_frames, cfg.caption_threshold)


def judged(clips: list[Clip], shown: dict[int, list[Keyframe]], ocr: dict[str, str], ctx: Context) -> list[ClipVisual]:
    """The heuristic's verdicts (backend none: every clip with keyframes keeps them)."""
    cfg, store = ctx.settings.visual_filter, ctx.store
    verdicts: list[ClipVisual] = []
    for clip in clips:
        keyframes = shown.get(clip.index, [])
        if cfg.backend == "none":
            verdicts.append(ClipVisual(clip.index, bool(keyframes), "" if keyframes else "no_keyframes"))
            continue
        detector: FaceDetector = ctx.backend("face_detector", FaceDetector)
        looks, texts = [], []
        for keyframe in keyframes:
            with store.local_path(keyframe.key) as path, Image.open(path) as image:
                gray = np.asarray(image.convert("L"))
            text = ocr.get(keyframe.key, "")
            looks.append(FrameLook(float(gray.std()), detector.largest_face_ratio(gray), _text_chars(text)))
            texts.append(text)
        verdicts.append(decide(clip, looks, texts, cfg,
                               lambda pair: models.visual_filter_use().load(ctx).encode(pair)))
    return verdicts


STAGE = run
