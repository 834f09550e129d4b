"""Streaming decoded frames: real H.264 files, true sample times, clear errors."""

from __future__ import annotations

import subprocess
from itertools import islice

import numpy as np
import pytest
from slide_helpers import blank, slide, write_video

from textbook.frames import iter_frames
from textbook.media import MediaError

SIZE = (320, 180)


@pytest.fixture(scope="module")
def black_then_white(tmp_path_factory):
    """10 fps: black for 1.3 s (frames 0-12), then white for 1.2 s."""
    path = tmp_path_factory.mktemp("frames") / "bw.mp4"
    return write_video([(blank(SIZE), 1.3), (blank(SIZE, (255, 255, 255)), 1.2)], path, fps=10)


def test_frames_are_sampled_at_true_times(black_then_white):
    frames = list(iter_frames(black_then_white, fps=5))
    times = [t for t, _ in frames]
    assert times == pytest.approx([i / 5 for i in range(len(frames))])
    assert len(frames) in (12, 13)  # 2.5 s at 5 fps
    first_white = next(t for t, f in frames if f.mean() > 128)
    assert first_white == pytest.approx(1.4)  # 1.2 still shows the last black frame (1.2 s)
    assert all(f.shape == (180, 320, 3) and f.dtype == np.uint8 for _, f in frames)


def test_frames_scale_down_never_up(black_then_white):
    _, small = next(iter_frames(black_then_white, fps=1, max_height=90))
    assert small.shape == (90, 160, 3)
    _, same = next(iter_frames(black_then_white, fps=1, max_height=720))
    assert same.shape == (180, 320, 3)


def test_times_start_at_zero_when_the_file_starts_later(black_then_white, tmp_path):
    shifted = tmp_path / "shifted.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(black_then_white), "-c", "copy",
                    "-output_ts_offset", "3", str(shifted)], check=True)
    frames = list(iter_frames(shifted, fps=5))
    assert frames[0][0] == 0.0
    assert next(t for t, f in frames if f.mean() > 128) == pytest.approx(1.4)


def test_stopping_early_stops_ffmpeg(tmp_path):
    video = write_video([(slide("Long", ["a slide shown for a while"], SIZE), 20.0)], tmp_path / "long.mp4", fps=5)
    gen = iter_frames(video, fps=5)
    assert len(list(islice(gen, 3))) == 3
    gen.close()  # kills the decoder; must not raise or hang


def test_corrupt_and_videoless_files_raise_media_error(tmp_path, black_then_white):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    with pytest.raises(MediaError, match="junk.mp4"):
        list(iter_frames(junk, fps=1))
    audio = tmp_path / "tone.m4a"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=1", "-c:a", "aac", str(audio)], check=True)
    with pytest.raises(MediaError, match="no video stream"):
        list(iter_frames(audio, fps=1))
    with pytest.raises(MediaError, match="no such file"):
        list(iter_frames(tmp_path / "missing.mp4", fps=1))



def test_each_sample_is_the_frame_on_screen_at_its_time(tmp_path):
    """A 10 fps counter video (frame n has brightness 5n): the sample at t must be frame 10t."""
    src = tmp_path / "counter.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=black:s=64x64:r=10,format=gray,"
                    "geq=lum='N*5'", "-t", "4", "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p", str(src)],
                   check=True)
    got = [(t, round(float(frame[..., 0].mean()) / 5)) for t, frame in iter_frames(src, fps=1)]
    assert got == [(0.0, 0), (1.0, 10), (2.0, 20), (3.0, 30)]
