"""The clip visual filter on real frames: OpenCV faces, tesseract text, MiniLM relatedness."""

from __future__ import annotations

import types

import numpy as np
import pytest
from slide_helpers import blank, face, prepare, slide, write_video

from textbook.artifacts import read_input
from textbook.config import VisualFilterSettings, load_settings
from textbook.context import Context
from textbook.embeddings import Embedder
from textbook.records import Clip, ClipVisual
from textbook.runner import run_stage
from textbook.stages import keyframes, ocr, visual_filter
from textbook.models import cache_key
from textbook.models.embedders import MINILM
from textbook.stages.visual_filter import FaceDetector, FrameLook, decide

SIZE = (640, 360)
VID = "vf_vid"
# One state per clip, 3 s each; clip 4 shows the same slide as clip 3, so it gets no keyframe.
STATES = [
    (slide("Photosynthesis", ["Light energy becomes sugar", "Chlorophyll absorbs red light"], SIZE), 3.0),
    (face(SIZE), 3.0),
    (blank(SIZE), 3.0),
    (slide("Big summer sale", ["Free shipping on every order", "Follow us for daily deals"], SIZE), 6.0),
]
CLIPS = [
    (0.0, 3.0, "Plants capture sunlight in their leaves and the green pigment turns it into sugar."),
    (3.0, 6.0, "Hello everyone, welcome back to the channel."),
    (6.0, 9.0, "Let us pause for a moment."),
    (9.0, 12.0, "Electric field lines start on positive charges and the flux counts the enclosed charge."),
    (12.0, 15.0, "So the flux depends only on the charge inside."),
]


@pytest.fixture(scope="module")
def lecture(tmp_path_factory):
    return write_video(STATES, tmp_path_factory.mktemp("visual") / "lecture.mp4", fps=5, noise=2.0)


@pytest.fixture(scope="module")
def embedder():
    return Embedder(device="cpu")


def _run(tmp_path, lecture, embedder, **knobs) -> list[ClipVisual]:
    ctx = Context.from_settings(load_settings(environ={}, data_root=str(tmp_path / "data"), visual_filter=knobs))
    ctx.backend(cache_key("text_embedder", MINILM), lambda: embedder)  # the model loads once for the module
    prepare(ctx, VID, lecture, CLIPS)
    for stage in (keyframes.STAGE, ocr.STAGE, visual_filter.STAGE):
        assert run_stage(stage, VID, ctx).status == "done"
    return [ClipVisual.from_dict(c) for c in read_input(ctx, VID, "visual_filter")["clips"]]


def test_slides_stay_speaker_blank_and_unrelated_text_go(tmp_path, lecture, embedder):
    verdicts = _run(tmp_path, lecture, embedder)
    assert [(v.clip_index, v.kept, v.reason) for v in verdicts] == [
        (0, True, ""), (1, False, "speaker_only"), (2, False, "blank"), (3, False, "unrelated_text"),
        (4, False, "no_keyframes")]
    assert verdicts[0].score > 0.3  # the slide's text vs what is said about it
    assert verdicts[1].score >= 0.04  # share of the frame the face covers
    assert verdicts[3].score < 0.1


def test_backend_none_keeps_every_clip_with_keyframes(tmp_path, lecture, embedder):
    verdicts = _run(tmp_path, lecture, embedder, backend="none")
    assert [(v.kept, v.reason) for v in verdicts] == [(True, "")] * 4 + [(False, "no_keyframes")]


def test_face_detector_finds_the_speaker_not_a_slide():
    detector = FaceDetector()
    speaker = np.asarray(face((1280, 720)).convert("L"))
    text = np.asarray(slide("Photosynthesis", ["Light energy"], (1280, 720)).convert("L"))
    assert detector.largest_face_ratio(speaker) > 0.04
    assert detector.largest_face_ratio(text) == 0.0


def test_a_face_beside_enough_text_is_teaching(embedder):
    cfg = VisualFilterSettings()
    clip = Clip(0, 0.0, 10.0, "the lecturer explains photosynthesis in plants")
    with_text = [FrameLook(std=50.0, face_ratio=0.2, ocr_chars=30)]
    assert decide(clip, with_text, ["Photosynthesis in plants"], cfg, embedder.encode).kept
    bare = [FrameLook(std=50.0, face_ratio=0.2, ocr_chars=3)]
    assert decide(clip, bare, ["abc"], cfg, embedder.encode).reason == "speaker_only"
    unused = types.SimpleNamespace()  # short OCR text is not judged for relatedness: no embedding needed
    assert decide(clip, [FrameLook(40.0, 0.0, 12)], ["Kitchen sale"], cfg, unused).kept


def test_embedder_ranks_related_text_above_unrelated(embedder):
    vecs = embedder.encode(["Gauss's law: flux through a closed surface counts charge",
                            "the electric flux out of a surface equals the enclosed charge over epsilon zero",
                            "whisk the eggs with sugar and bake the cake for thirty minutes"])
    assert vecs.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert float(vecs[0] @ vecs[1]) > 0.4
    assert float(vecs[0] @ vecs[2]) < 0.1
    assert embedder.encode([]).shape == (0, 384)
