"""Keyframes on lectures whose slides fade, wipe and dissolve into each other, and on a board filled by hand.

The keyframes are checked against the clean slide renders: each must be one slide, not a mix of
two, and every slide must give exactly one.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from slide_helpers import formula, handwriting, plot, prepare, slide, with_transitions, write_video

from textbook.artifacts import read_input
from textbook.config import load_settings
from textbook.context import Context
from textbook.records import ClipFrames
from textbook.runner import run_stage
from textbook.stages import keyframes
from textbook.stages.keyframes import compare_image, ssim

SIZE = (640, 360)
FPS = 5
HOLD, TRANSITION = 5.3, 2.0  # 5.3 s holds put the 1 fps samples at a different phase of every transition


def _slides() -> list[Image.Image]:
    chart, law = plot(), formula()
    return [
        slide("Maxwell's equations", ["Four laws of electromagnetism", "Fields from charges and currents"], SIZE,
              title_box=(30, 90, 160)),
        slide("Gauss's law", ["Flux through a closed surface", "Counts the enclosed charge"], SIZE, picture=law),
        slide("A damped oscillation", ["Amplitude decays", "Energy is lost to friction"], SIZE, picture=chart),
        slide("Faraday's law", ["A changing flux induces a voltage", "Lenz: it opposes the change"], SIZE,
              title_box=(170, 40, 40)),
        slide("Ampere's law", ["Currents make magnetic fields"], SIZE, picture=chart),
        slide("No magnetic monopoles", ["Field lines close on themselves", "Zero net flux"], SIZE),
        slide("Light is a wave", ["The four laws predict it", "Speed c from two constants"], SIZE, picture=law),
        slide("Summary", ["Gauss", "Faraday", "Ampere", "No monopoles"], SIZE, title_box=(20, 120, 70)),
    ]


def _context(tmp_path, **knobs) -> Context:
    return Context.from_settings(load_settings(environ={}, data_root=str(tmp_path / "data"), keyframes=knobs))


def _keyframes(tmp_path, video, seconds: float, name: str, **knobs) -> list[tuple[float, np.ndarray]]:
    ctx = _context(tmp_path / name, **knobs)
    prepare(ctx, name, video, [(0.0, seconds, "one long clip")])
    assert run_stage(keyframes.STAGE, name, ctx).status == "done"
    clips = [ClipFrames.from_dict(c) for c in read_input(ctx, name, "keyframes")["clips"]]
    return [(k.time, np.asarray(Image.open(io.BytesIO(ctx.store.get_bytes(k.key))).convert("RGB")))
            for c in clips for k in c.keyframes]


def mix_share(frame: np.ndarray, clean: list[np.ndarray]) -> tuple[int, float]:
    """(the clean slide ``frame`` shows, how much of another slide is mixed in: 0 clean, 0.5 a 50/50 blend).

    The mix is the least-squares weight of the worst other slide in ``frame = (1 - w) slide + w other``,
    on grayscale thumbnails; sensor noise and compression alone give under 0.06.
    """
    k = compare_image(frame, 64).astype(np.float64)
    thumbs = [compare_image(c, 64).astype(np.float64) for c in clean]
    best = int(np.argmin([np.abs(k - t).mean() for t in thumbs]))
    worst = 0.0
    for j, other in enumerate(thumbs):
        if j != best:
            d = thumbs[best] - other
            worst = max(worst, 1.0 - float(((k - other) * d).sum() / (d * d).sum()))
    return best, worst


@pytest.fixture(scope="module")
def transitions_lecture(tmp_path_factory):
    slides = _slides()
    states = with_transitions(slides, HOLD, TRANSITION, FPS, kinds=("fade", "fade", "wipe", "fade", "dissolve"))
    path = write_video(states, tmp_path_factory.mktemp("transitions") / "lecture.mp4", fps=FPS, noise=2.0,
                       gop_seconds=2.0)
    return path, slides, sum(s for _, s in states)


@pytest.mark.slow
def test_every_slide_gives_one_settled_keyframe_and_no_blend(tmp_path, transitions_lecture):
    video, slides, seconds = transitions_lecture
    clean = [np.asarray(s) for s in slides]
    kept = _keyframes(tmp_path, video, seconds, "transitions")
    shown = [mix_share(frame, clean) for _, frame in kept]
    assert [best for best, _ in shown] == list(range(len(slides)))  # each slide once, in order
    assert max(mix for _, mix in shown) < 0.1, shown  # none is a double exposure
    for (_, frame), (best, _) in zip(kept, shown):
        assert ssim(compare_image(frame, 64), compare_image(clean[best], 64)) >= 0.97


@pytest.mark.slow
def test_codec_keyframe_decoding_finds_the_same_keyframes(tmp_path, transitions_lecture):
    video, slides, seconds = transitions_lecture
    full = _keyframes(tmp_path, video, seconds, "full")
    fast = _keyframes(tmp_path, video, seconds, "codec", decode="codec_keyframes")
    assert [t for t, _ in fast] == [t for t, _ in full]
    clean = [np.asarray(s) for s in slides]
    assert [mix_share(f, clean)[0] for _, f in fast] == list(range(len(slides)))


def test_a_board_filled_by_hand_gives_keyframes_as_it_grows(tmp_path):
    lines = ["F = m a", "p = m v", "dp / dt = F", "E = p^2 / 2m", "W = F d"]
    states = handwriting(lines, SIZE, 0.5, FPS)  # 21 s of continuous writing
    writing = sum(s for _, s in states)
    states.append((states[-1][0], 4.0))
    video = write_video(states, tmp_path / "board.mp4", fps=FPS, noise=2.0)
    kept = _keyframes(tmp_path, video, writing + 4.0, "board")
    # not one per sample (that would be every partial stroke), not one for the whole board
    assert writing / 10 <= len(kept) - 1 <= writing / 3, [t for t, _ in kept]
    ink = [float(compare_image(f, 160).astype(np.float64).sum()) for _, f in kept]  # chalk is bright
    assert ink == sorted(ink) and len(set(ink)) == len(ink)  # each keyframe shows more writing than the last
