"""Decoded video frames, streamed: one ffmpeg process, one frame in memory at a time.

ffmpeg's ``fps`` filter resamples the stream to a fixed rate anchored at t=0 (``start_time=0``),
so output frame n shows the picture on screen at n / fps seconds, whatever the source frame rate
or a non-zero first timestamp. Frames come out as PPM (binary RGB with a small header), which tells
each frame's size, so rotated or odd-sized sources need no guessing.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
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


def iter_frames(path: Path, fps: float, max_height: int | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(time_seconds, HxWx3 uint8 RGB)`` sampled every 1/``fps`` s from the start.

    ``max_height`` scales frames down (never up) keeping the aspect ratio, with an even width.
    MediaError for a missing, corrupt or video-less file.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    path = Path(path).resolve()
    info = probe(path)
    if not info.has_video:
        raise MediaError(f"{path.name}: no video stream")
    # round=up: the frame emitted for tick t is the one on screen at t (the default, round=near,
    # emits the last frame before t + 0.5/fps, so a slide shown just after t would be labelled t).
    filters = [f"fps=fps={fps}:start_time=0:round=up"]
    if max_height:
        filters.append(f"scale=w=-2:h='min(ih,{int(max_height)})':flags=area")
    cmd = [tool("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:V:0",
           "-an", "-sn", "-vf", ",".join(filters), "-pix_fmt", "rgb24", "-c:v", "ppm", "-f", "image2pipe", "-"]
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a chatty ffmpeg can never block on it
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors, bufsize=1 << 20)
        count = 0
        try:
            while (frame := _read_ppm(proc.stdout)) is not None:
                yield count / fps, frame
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
