"""Keyframe extraction on rendered slide videos, run through the runner like the pipeline does."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from slide_helpers import face, plot, prepare, slide, write_video

from textbook.artifacts import output_key, read_input
from textbook.export import collect_garbage
from textbook.status import keyframe_keys
from textbook.config import load_settings
from textbook.context import Context
from textbook.records import ClipFrames
from textbook.runner import StageFailed, run_stage
from textbook.stages import keyframes
from textbook.stages.keyframes import compare_image, ssim

SIZE = (640, 360)
VID = "-slides_01"  # ids may start with '-'
# Five distinct screen states; state 2 (3-6 s) spans the boundary between clips 0 and 1 (at 5 s).
STATES = [
    (slide("Gauss's law", ["Flux through a closed surface"], SIZE), 3.0),
    (slide("Gauss's law", ["Flux through a closed surface", "Counts the enclosed charge"], SIZE), 3.0),
    (slide("Gauss's law", ["Flux through a closed surface", "Counts the enclosed charge",
                           "Symmetry makes it easy"], SIZE), 4.0),
    (slide("A damped oscillation", ["Amplitude decays"], SIZE, picture=plot()), 3.0),
    (face(SIZE), 3.0),
]
STATE_STARTS = [0.0, 3.0, 6.0, 10.0, 13.0]
CLIPS = [(0.0, 5.0, "flux"), (5.0, 8.0, "charge"), (8.0, 16.0, "oscillation")]


@pytest.fixture(scope="module")
def lecture(tmp_path_factory):
    path = tmp_path_factory.mktemp("keyframes") / "lecture.mp4"
    return write_video(STATES, path, fps=5, noise=2.0)  # sensor-like noise: same state, different pixels


def _context(tmp_path, **keyframe_knobs) -> Context:
    settings = load_settings(environ={}, data_root=str(tmp_path / "data"), keyframes=keyframe_knobs)
    return Context.from_settings(settings)


def _document(ctx: Context, vid: str = VID) -> list[ClipFrames]:
    return [ClipFrames.from_dict(c) for c in read_input(ctx, vid, "keyframes")["clips"]]


def test_each_slide_state_gives_one_keyframe(tmp_path, lecture):
    ctx = _context(tmp_path)
    prepare(ctx, VID, lecture, CLIPS)
    outcome = run_stage(keyframes.STAGE, VID, ctx)
    assert outcome.status == "done"

    clips = _document(ctx)
    kept = [k for c in clips for k in c.keyframes]
    assert [k.time for k in kept] == STATE_STARTS  # sampled at 1 fps: each state's first second
    assert [(k.clip_index, k.k) for k in kept] == [(0, 1), (0, 2), (1, 1), (2, 1), (2, 2)]
    assert kept[0].key == output_key(ctx, VID, "keyframes", f"{VID}@0.0_5.0#1.jpg")
    assert kept[2].key == output_key(ctx, VID, "keyframes", f"{VID}@5.0_8.0#1.jpg")
    for k in kept:
        image = Image.open(io.BytesIO(ctx.store.get_bytes(k.key)))
        assert image.format == "JPEG" and image.size == SIZE

    # every sampled frame (1 fps, clip start <= t < end) is kept small, numbered from 1 in its clip
    assert [len(c.sampled) for c in clips] == [5, 3, 8]
    assert clips[1].sampled == [output_key(ctx, VID, "keyframes", f"{VID}@5.0_8.0#f{n}.jpg") for n in (1, 2, 3)]
    assert Image.open(io.BytesIO(ctx.store.get_bytes(clips[0].sampled[0]))).width == 160

    doc = read_input(ctx, VID, "keyframes")
    assert doc["params"] == {"fps": 1.0, "extractor": "ssim", "threshold": 0.97, "compare_width": 64,
                             "reset_per_clip": False,
                             "settle_share": 0.05, "transition_share": 0.01, "max_window_seconds": 5.0,
                             "decode": "full"}
    assert outcome.summary == {"keyframes": 5, "sampled": 16}


def test_reset_per_clip_repeats_a_slide_that_spans_two_clips(tmp_path, lecture):
    ctx = _context(tmp_path, reset_per_clip=True, keep_sampled_frames=False)
    prepare(ctx, VID, lecture, CLIPS)
    run_stage(keyframes.STAGE, VID, ctx)
    clips = _document(ctx)
    assert [k.time for k in clips[1].keyframes] == [5.0, 6.0]  # state 2 again at the clip start, then state 3
    assert [k.time for k in clips[2].keyframes] == [8.0, 10.0, 13.0]
    assert all(c.sampled == [] for c in clips)
    assert list(ctx.store.list(f"frames/{VID}/")) == []


def test_an_unchanging_slide_gives_one_keyframe_and_clips_without_change_get_none(tmp_path):
    video = write_video([(slide("One slide", ["Nothing changes here"], SIZE), 8.0)], tmp_path / "still.mp4",
                        fps=5, noise=3.0, crf=30)
    ctx = _context(tmp_path, fps=2.0)
    prepare(ctx, "still", video, [(0.0, 4.0, "a"), (4.0, 8.0, "b")])
    run_stage(keyframes.STAGE, "still", ctx)
    clips = _document(ctx, "still")
    assert [len(c.keyframes) for c in clips] == [1, 0]
    assert [len(c.sampled) for c in clips] == [8, 8]


def test_frames_outside_every_clip_are_ignored(tmp_path, lecture):
    ctx = _context(tmp_path)
    prepare(ctx, VID, lecture, [(1.0, 2.0, "inside the first state"), (11.0, 12.0, "inside the plot")])
    run_stage(keyframes.STAGE, VID, ctx)
    clips = _document(ctx)
    assert [[k.time for k in c.keyframes] for c in clips] == [[1.0], [11.0]]
    assert [len(c.sampled) for c in clips] == [1, 1]


def test_a_rerun_with_other_knobs_writes_beside_and_the_old_images_go_at_the_next_export(tmp_path, lecture):
    ctx = _context(tmp_path, reset_per_clip=True)
    prepare(ctx, VID, lecture, CLIPS)
    run_stage(keyframes.STAGE, VID, ctx)
    old = set(keyframe_keys(ctx.db.run(VID, "keyframes"), VID))
    assert output_key(ctx, VID, "keyframes", f"{VID}@5.0_8.0#2.jpg") in old

    rerun = Context(_context(tmp_path).settings, ctx.store, ctx.db)  # default knobs, same store and database
    assert run_stage(keyframes.STAGE, VID, rerun).status == "done"
    new = set(keyframe_keys(ctx.db.run(VID, "keyframes"), VID))
    assert len(new) == 5 and not old & new
    assert all(ctx.store.exists(k) for k in old | new)  # nothing is deleted while a run is in flight
    assert collect_garbage(rerun) >= len(old)  # the next export clears what no run or result uses
    assert not any(ctx.store.exists(k) for k in old) and all(ctx.store.exists(k) for k in new)


def test_a_slow_fade_gives_the_settled_slide_not_its_steps(tmp_path):
    """Each 1 s sample of the fade changes SSIM by a few hundredths, the whole fade by ~0.2:
    the steps add up against the last kept frame, and the window closes only on the finished slide."""
    full = slide("Gauss's law", ["Flux through a closed surface", "Counts the enclosed charge"], SIZE)
    white = Image.new("RGB", SIZE, "white")
    steps = [(Image.blend(white, full, i / 8), 0.5) for i in range(9)]  # a 4 s fade in 0.5 s steps
    video = write_video(steps + [(full, 2.0)], tmp_path / "fade.mp4", fps=10)
    ctx = _context(tmp_path)
    prepare(ctx, "fade", video, [(0.0, 6.5, "fading in")])
    run_stage(keyframes.STAGE, "fade", ctx)
    kept = _document(ctx, "fade")[0].keyframes
    assert [k.time for k in kept] == [0.0, 4.0]  # the blank start, then the slide once fully in
    last = np.asarray(Image.open(io.BytesIO(ctx.store.get_bytes(kept[-1].key))))
    assert ssim(compare_image(last, 64), compare_image(np.asarray(full), 64)) >= 0.995


def test_pixel_similarity_is_one_less_the_mean_grey_difference():
    black, white = np.zeros((4, 4), np.uint8), np.full((4, 4), 255, np.uint8)
    half = np.concatenate([black[:2], white[2:]])
    assert keyframes.pixel_similarity(black, black) == 1.0 and keyframes.pixel_similarity(black, white) == 0.0
    assert keyframes.pixel_similarity(black, half) == 0.5


def test_the_pixel_extractor_misses_a_line_of_text_that_ssim_sees(tmp_path, lecture):
    ctx = _context(tmp_path, extractor="pixel", keep_sampled_frames=False)
    prepare(ctx, VID, lecture, CLIPS)
    assert run_stage(keyframes.STAGE, VID, ctx).status == "done"
    # the bullet line added at 3 s moves the thumbnails' mean by under 0.3%: why SSIM is the default
    assert [k.time for c in _document(ctx) for k in c.keyframes] == [t for t in STATE_STARTS if t != 3.0]
    params = read_input(ctx, VID, "keyframes")["params"]
    assert (params["extractor"], params["threshold"]) == ("pixel", 0.997)


def test_the_clip_extractor_compares_embeddings_of_a_local_model(tmp_path, lecture):
    from textbook.train.tiny import build_tiny_clip

    model = build_tiny_clip(tmp_path / "tiny-clip")
    ctx = _context(tmp_path, extractor="clip", clip_model=str(model), clip_threshold=-1.0, keep_sampled_frames=False)
    prepare(ctx, VID, lecture, CLIPS)
    assert run_stage(keyframes.STAGE, VID, ctx).status == "done"
    assert [k.time for c in _document(ctx) for k in c.keyframes] == [0.0]  # every cosine reaches -1: one state
    assert read_input(ctx, VID, "keyframes")["params"]["extractor"] == "clip"

    without = _context(tmp_path / "b", extractor="clip")
    prepare(without, VID, lecture, CLIPS)
    with pytest.raises(StageFailed, match="needs keyframes.clip_model"):
        run_stage(keyframes.STAGE, VID, without)
