"""Decoded video frames, streamed: one ffmpeg process, one frame in memory at a time.

ffmpeg's ``fps`` filter resamples the stream to a fixed rate anchored at t=0 (``start_time=0``),
so output frame n shows the picture on screen at n / fps seconds, whatever the source frame rate
or a non-zero first timestamp. Frames come out as PPM (binary RGB with a small header), which tells
each frame's size, so rotated or odd-sized sources need no guessing.

``decode="codec_keyframes"`` first decodes only the codec's own keyframes (``-skip_frame nokey``,
many times cheaper), and decodes at ``fps`` only the stretches between two codec keyframes that
``differ``; a stretch whose two ends agree is assumed to hold its first picture throughout. What
that assumption costs and saves is measured by ``bench/keyframes.py``.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import IO

import numpy as np

from textbook.media import MediaError, probe, tool


def _read_token(stream: IO[bytes]) -> bytes:
    """The next whitespace-delimited header token of a binary PPM (comments are never written by ffmpeg)."""
    token = b""
    while True:
        ch = stream.read(1)
        if not ch:
            return token
        if ch.isspace():
            if token:
                return token
            continue
        token += ch


def _read_ppm(stream: IO[bytes]) -> np.ndarray | None:
    magic = _read_token(stream)
    if not magic:
        return None
    if magic != b"P6":
        raise MediaError(f"unexpected frame header {magic[:8]!r} from ffmpeg")
    width, height, maxval = (int(_read_token(stream)) for _ in range(3))
    if maxval != 255:
        raise MediaError(f"unexpected frame depth {maxval} from ffmpeg")
    size = width * height * 3
    data = stream.read(size)
    if len(data) != size:
        return None  # ffmpeg stopped mid-frame; its exit status tells why
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)


DECODE_MODES = ("full", "codec_keyframes")


def _scale(max_height: int | None) -> list[str]:
    return [f"scale=w=-2:h='min(ih,{int(max_height)})':flags=area"] if max_height else []


def _stream(path: Path, input_args: list[str], filters: list[str],
            output_args: tuple[str, ...] | list[str] = ()) -> Iterator[np.ndarray]:
    """Frames ffmpeg decodes from ``path`` with ``input_args`` before ``-i`` and ``filters`` after it."""
    cmd = [tool("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error", *input_args, "-i", str(path),
           "-map", "0:V:0", "-an", "-sn", *(["-vf", ",".join(filters)] if filters else []), *output_args,
           "-pix_fmt", "rgb24", "-c:v", "ppm", "-f", "image2pipe", "-"]
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a chatty ffmpeg can never block on it
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors, bufsize=1 << 20)
        count = 0
        try:
            while (frame := _read_ppm(proc.stdout)) is not None:
                yield frame
                count += 1
        except BaseException:  # the caller stopped early (or reading failed): stop ffmpeg too
            proc.kill()
            raise
        finally:
            proc.stdout.close()
            code = proc.wait()
        errors.seek(0)
        message = errors.read().decode(errors="replace").strip().splitlines()
    if code != 0:
        raise MediaError(f"{path.name}: ffmpeg could not decode the video: {(message or ['no output'])[-1]}")
    if count == 0:
        raise MediaError(f"{path.name}: no decodable video frames" + (f" ({message[-1]})" if message else ""))


def _checked(path: Path, fps: float) -> Path:
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    path = Path(path).resolve()
    if not probe(path).has_video:
        raise MediaError(f"{path.name}: no video stream")
    return path


def _sampled(path: Path, fps: float, max_height: int | None, start: float = 0.0,
             seconds: float | None = None) -> Iterator[np.ndarray]:
    # round=up: the frame emitted for tick t is the one on screen at t (the default, round=near,
    # emits the last frame before t + 0.5/fps, so a slide shown just after t would be labelled t).
    # After an input seek to ``start``, -copyts keeps the source timestamps, so the ticks stay the
    # full decode's: anchored at the first tick at or after ``start``.
    first_tick = math.ceil(start * fps - 1e-6) / fps
    seek = ["-ss", f"{start:.6f}", "-copyts"] if start > 0 else []
    limit = ["-t", f"{seconds:.6f}"] if seconds is not None else []
    filters = [f"fps=fps={fps}:start_time={first_tick:.6f}:round=up", *_scale(max_height)]
    return _stream(path, [*seek, *limit], filters)


def iter_frames(path: Path, fps: float, max_height: int | None = None, decode: str = "full",
                differ: Callable[[np.ndarray, np.ndarray], bool] | None = None
                ) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(time_seconds, HxWx3 uint8 RGB)`` sampled every 1/``fps`` s from the start.

    ``max_height`` scales frames down (never up) keeping the aspect ratio, with an even width.
    ``decode="codec_keyframes"`` needs ``differ(a, b)``: do two frames show different pictures.
    MediaError for a missing, corrupt or video-less file.
    """
    path = _checked(path, fps)
    if decode == "full":
        for n, frame in enumerate(_sampled(path, fps, max_height)):
            yield n / fps, frame
        return
    if decode != "codec_keyframes" or differ is None:
        raise ValueError(f"decode must be one of {', '.join(DECODE_MODES)} (codec_keyframes with differ), "
                         f"got {decode!r}")
    yield from _codec_keyframe_pass(path, fps, max_height, differ)


def codec_keyframe_times(path: Path) -> list[float]:
    """Presentation times of the video stream's keyframe packets, read from the container (no decoding)."""
    out = subprocess.run([tool("ffprobe"), "-v", "error", "-select_streams", "V:0", "-show_entries",
                          "packet=pts_time,flags", "-of", "csv=p=0", str(path)],
                         check=False, capture_output=True, text=True)
    if out.returncode != 0:
        raise MediaError(f"{path.name}: ffprobe could not list packets")
    times = []
    for line in out.stdout.splitlines():
        pts, _, flags = line.partition(",")
        if "K" in flags and pts not in ("", "N/A"):
            times.append(float(pts))
    return sorted(times)


def _codec_keyframe_pass(path: Path, fps: float, max_height: int | None,
                         differ: Callable[[np.ndarray, np.ndarray], bool]) -> Iterator[tuple[float, np.ndarray]]:
    """Streams: two codec keyframes in memory at a time, one ffmpeg run per changing stretch."""
    duration = probe(path).duration
    times = codec_keyframe_times(path)
    if not times:
        yield from iter_frames(path, fps, max_height)
        return
    n_ticks = max(1, math.ceil(duration * fps - 1e-6))
    n = 0

    def ticks_before(end: float) -> list[float]:
        nonlocal n
        ticks = []
        while n < n_ticks and n / fps < end:
            ticks.append(n / fps)
            n += 1
        return ticks

    def decoded(start: float, end: float) -> Iterator[tuple[float, np.ndarray]]:
        ticks = ticks_before(end)
        if ticks:
            yield from zip(ticks, _sampled(path, fps, max_height, start, min(end, duration) - start + 1 / fps))

    stretch: int | None = None  # first codec keyframe of a changing stretch not decoded yet
    previous: np.ndarray | None = None
    last = 0
    with closing(_stream(path, ["-skip_frame", "nokey"], _scale(max_height), ["-fps_mode", "passthrough"])) as keys:
        for i, picture in zip(range(len(times)), keys):
            last = i
            if previous is not None:
                if differ(previous, picture):
                    stretch = i - 1 if stretch is None else stretch
                else:
                    if stretch is not None:
                        yield from decoded(times[stretch], times[i - 1])
                        stretch = None
                    yield from ((t, previous) for t in ticks_before(times[i]))
            previous = picture
    # after the last codec keyframe nothing tells what follows: decode it (with any open stretch)
    yield from decoded(times[stretch if stretch is not None else last], math.inf)


def frame_at(path: Path, time: float, max_height: int | None = None) -> np.ndarray:
    """The picture on screen at ``time`` seconds (an accurate seek: decoded from the codec keyframe
    before it), scaled down to ``max_height``. MediaError when there is none."""
    if time < 0:
        raise ValueError(f"time must not be negative, got {time}")
    path = Path(path).resolve()
    if not probe(path).has_video:
        raise MediaError(f"{path.name}: no video stream")
    with closing(_stream(path, ["-ss", f"{time:.6f}"], _scale(max_height), ["-frames:v", "1"])) as frames:
        return next(frames)
