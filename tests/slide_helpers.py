"""Real lecture-like media for the visual stages: slides drawn with PIL, encoded by ffmpeg (libx264).

A "state" is what the screen shows for a while (a slide with some bullets revealed, a plot, the
speaker's face); a video is a list of (state image, seconds). Frames are piped raw into ffmpeg, so
the file goes through the same lossy compression as a downloaded lecture.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from textbook import keys
from textbook.artifacts import output_key
from textbook.context import Context
from textbook.pipeline import STAGES
from textbook.records import Clip, Video

from state_helpers import finish_stage

_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation")
_FONT_FILES = ("DejaVuSans.ttf", "LiberationSans-Regular.ttf")


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for folder in _FONT_DIRS:
        for name in _FONT_FILES:
            path = Path(folder) / name
            if path.is_file():
                return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def slide(title: str, bullets: list[str] = (), size: tuple[int, int] = (1280, 720), *,
          picture: Image.Image | None = None, text_px: int = 32,
          title_box: tuple[int, int, int] | None = None, footer: str = "") -> Image.Image:
    """A white slide: a title, bullet lines (``text_px`` tall at 720p) below it, and an optional picture.

    ``title_box``: the title in white on a box of this colour (a common slide template);
    ``footer``: a line at the bottom, as templates repeat on every slide.
    """
    width, height = size
    scale = height / 720
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    if title_box is not None:
        draw.rectangle((0, int(20 * scale), width, int(105 * scale)), fill=title_box)
    draw.text((int(60 * scale), int(40 * scale)), title, fill="white" if title_box else (20, 20, 90),
              font=font(int(48 * scale)))
    if footer:
        draw.text((int(60 * scale), height - int(50 * scale)), footer, fill=(90, 90, 90), font=font(int(24 * scale)))
    draw.line((int(60 * scale), int(110 * scale), width - int(60 * scale), int(110 * scale)),
              fill=(20, 20, 90), width=max(1, int(3 * scale)))
    body = font(int(text_px * scale))
    for i, line in enumerate(bullets):
        draw.text((int(80 * scale), int((150 + 2 * text_px * i) * scale)), f"\u2022 {line}", fill="black", font=body)
    if picture is not None:
        pic = picture.copy()
        pic.thumbnail((width // 2 - int(60 * scale), height - int(170 * scale)))
        img.paste(pic, (width - pic.width - int(40 * scale), int(140 * scale)))
    return img


def plot(size: tuple[int, int] = (560, 420)) -> Image.Image:
    """A matplotlib line plot as a picture (what a lecture slide often carries)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(size[0] / 100, size[1] / 100), dpi=100)
    x = np.linspace(0, 4 * np.pi, 200)
    ax.plot(x, np.sin(x), label="sin x")
    ax.plot(x, np.exp(-x / 4) * np.cos(x), label="damped cos x")
    ax.set_xlabel("time (s)")
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def formula(tex: str = r"$\nabla \cdot \mathbf{E} = \frac{\rho}{\varepsilon_0}$",
            size: tuple[int, int] = (560, 200)) -> Image.Image:
    """A formula typeset by matplotlib's mathtext."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(size[0] / 100, size[1] / 100), dpi=100)
    fig.text(0.5, 0.5, tex, fontsize=36, ha="center", va="center")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def face(size: tuple[int, int] = (1280, 720)) -> Image.Image:
    """The speaker filling the frame: skimage's astronaut photo, head and shoulders, on grey."""
    from skimage import data

    photo = Image.fromarray(data.astronaut()).crop((120, 0, 380, 300))  # head and shoulders
    width, height = size
    portrait = photo.resize((int(height * photo.width / photo.height), height), Image.Resampling.BICUBIC)
    img = Image.new("RGB", size, (90, 90, 90))
    img.paste(portrait, ((width - portrait.width) // 2, 0))
    return img


def blank(size: tuple[int, int] = (1280, 720), color: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    return Image.new("RGB", size, color)


def _jitter(frame: np.ndarray, rng: np.random.Generator, noise: float, shift: int) -> np.ndarray:
    """Sensor-like noise and a small camera shake, so identical states are not bit-identical."""
    out = frame
    if shift:
        dx, dy = rng.integers(-shift, shift + 1, size=2)
        out = np.roll(out, (int(dy), int(dx)), axis=(0, 1))
    if noise:
        out = np.clip(out.astype(np.float32) + rng.normal(0, noise, out.shape), 0, 255).astype(np.uint8)
    return out


def write_video(states: list[tuple[Image.Image, float]], path: Path, *, fps: int = 5, crf: int = 23,
                noise: float = 0.0, shift: int = 0, seed: int = 0, gop_seconds: float | None = None) -> Path:
    """Encode the states, each shown for its seconds, to an H.264 MP4 (yuv420p) at ``path``.

    ``gop_seconds``: at most this long between codec keyframes (libx264's default is 250 frames).
    """
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("ffmpeg is required to render test videos")
    width, height = states[0][0].size
    rng = np.random.default_rng(seed)
    proc = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
         "-s", f"{width}x{height}", "-r", str(fps), "-i", "-", "-c:v", "libx264", "-preset", "veryfast",
         "-crf", str(crf), *(["-g", str(max(1, round(gop_seconds * fps)))] if gop_seconds else []),
         "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(Path(path).resolve())],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for image, seconds in states:
            if image.size != (width, height):
                raise ValueError(f"state size {image.size} differs from the first state's {(width, height)}")
            frame = np.asarray(image.convert("RGB"))
            for _ in range(max(1, round(seconds * fps))):
                proc.stdin.write(_jitter(frame, rng, noise, shift).tobytes())
        proc.stdin.close()
    finally:
        err = proc.stderr.read().decode(errors="replace")
        proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg could not encode {path}: {err.strip()}")
    return Path(path)


def prepare(ctx: Context, video_id: str, media: Path, clips: list[tuple[float, float, str]],
            until: str = "keyframes") -> Video:
    """A video as the stages before ``until`` leave it: DB row, media, info.json, clips.json, runs done.

    ``clips``: (start, end, transcript text). Every stage before ``until`` is recorded as finished
    with the context's current config, as the runner would have left it.
    """
    video = Video(video_id=video_id, url=f"file://{media}", source="local", title="slides")
    ctx.db.add_video(video)
    info = {"video_id": video_id, "media_key": output_key(ctx, video_id, "download", keys.media_name()),
            "captions": []}
    docs = [Clip(i, start, end, text, text).to_dict() for i, (start, end, text) in enumerate(clips)]
    files = {"download": {keys.media_name(): media, "info.json": info}, "clips": {"clips.json": {"clips": docs}}}
    for stage in STAGES:
        if stage.name == until:
            break
        finish_stage(ctx, video_id, stage.name, files=files.get(stage.name))
    return video


def transition_frame(a: Image.Image, b: Image.Image, kind: str, progress: float) -> Image.Image:
    """One frame ``progress`` (0..1) of the way from ``a`` to ``b``: a cross-fade, a left-to-right wipe or a dissolve."""
    if kind == "fade":
        return Image.blend(a, b, progress)
    if kind == "wipe":
        out = a.copy()
        edge = int(a.width * progress)
        if edge:
            out.paste(b.crop((0, 0, edge, a.height)), (0, 0))
        return out
    if kind == "dissolve":  # pixels switch to the new slide in a fixed random order
        order = np.random.default_rng(7).random((a.height, a.width))
        return Image.fromarray(np.where((order < progress)[..., None], np.asarray(b), np.asarray(a)))
    raise ValueError(f"unknown transition {kind!r}")


def with_transitions(slides: list[Image.Image], hold: float, seconds: float, fps: int,
                     kinds: tuple[str, ...] = ("fade",)) -> list[tuple[Image.Image, float]]:
    """States for a lecture whose slides are each held ``hold`` s, then turn into the next over ``seconds``
    (transition kinds taken in turn from ``kinds``)."""
    states: list[tuple[Image.Image, float]] = []
    steps = max(1, round(seconds * fps))
    for i, current in enumerate(slides):
        states.append((current, hold))
        if i + 1 < len(slides):
            kind = kinds[i % len(kinds)]
            states += [(transition_frame(current, slides[i + 1], kind, (n + 1) / (steps + 1)), 1 / fps)
                       for n in range(steps)]
    return states


def handwriting(lines: list[str], size: tuple[int, int], seconds_per_char: float,
                fps: int) -> list[tuple[Image.Image, float]]:
    """A board filled by hand: the text appears one character at a time, each step ``seconds_per_char`` long."""
    width, height = size
    board_font = font(int(height / 12))
    frames: list[tuple[Image.Image, float]] = []
    for row, line in enumerate(lines):
        for n in range(1, len(line) + 1):
            img = Image.new("RGB", size, (24, 48, 32))  # a green board, chalk-white writing
            draw = ImageDraw.Draw(img)
            for done in range(row):
                draw.text((int(width * 0.05), int(height * (0.08 + 0.13 * done))), lines[done], fill=(235, 235, 225),
                          font=board_font)
            draw.text((int(width * 0.05), int(height * (0.08 + 0.13 * row))), line[:n], fill=(235, 235, 225),
                      font=board_font)
            frames.append((img, max(seconds_per_char, 1 / fps)))
    return frames
