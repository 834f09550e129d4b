"""Benchmark: keyframe extraction (the ``keyframes`` stage) against decoding alone, in both decode modes.

Floors: the full decode at the stage's sampling rate (``decode=full``), and decoding the codec's
own keyframes only (``-skip_frame nokey``, the first pass of ``decode=codec_keyframes``). The
stage runs in both modes, and the keyframes they find are compared (same times, same count).

Inputs: the demo course (rendered once into data/bench/demo-course) and a long generated lecture
(data/bench/long-lecture/, generated once: 1280x720, 10 fps, slides with bullet reveals).
Each measurement runs in its own child process, so the figures are that process's alone:
the generation's memory and the parent's imports never count. The child reports the peak RSS of
its Python process and of the ffmpeg it runs separately (VmHWM of each, from /proc).

Prints figures, asserts nothing. ``python bench/keyframes.py``
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Self

from PIL import Image, ImageDraw, ImageFont

DATA = Path(__file__).resolve().parent.parent / "data" / "bench"
LONG_DIR = DATA / "long-lecture"
LONG_SIZE = (1280, 720)
LONG_FPS = 10  # low on purpose (generation speed); real lectures are 25-30 fps and cost more to decode
LONG_MIN_SECONDS = 21 * 60
LONG_VERSION = "1"  # bump when the generator below changes what it draws
CLIP_SECONDS = 15.0  # the clips the stage hands frames to: 15 s tiles, as the clips stage makes 10-20 s ones


# --- inputs --------------------------------------------------------------------------------------

def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                 "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"):
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


_WORDS = ["energy", "momentum", "vector", "field", "integral", "series", "limit", "matrix", "basis", "proof", "theorem", "lemma", "graph", "function", "derivative", "entropy", "circuit", "voltage", "current", "force", "mass", "wave", "frequency", "sample", "model", "error", "gradient", "descent", "kernel", "protein", "cell", "enzyme", "reaction", "equilibrium", "market", "price", "demand"]


def _draw_slide(rng: random.Random, title: str, bullets: list[str], plot: bool) -> Image.Image:
    width, height = LONG_SIZE
    img = Image.new("RGB", LONG_SIZE, (250, 250, 246))
    draw = ImageDraw.Draw(img)
    draw.text((60, 40), title, fill=(18, 42, 96), font=_font(46))
    draw.line((60, 110, width - 60, 110), fill=(18, 42, 96), width=3)
    body = _font(32)
    for i, line in enumerate(bullets):
        draw.text((80, 150 + 64 * i), f"\u2022 {line}", fill=(30, 30, 30), font=body)
    if plot:  # a line plot on the right half, as many lecture slides carry
        x0, y0, x1, y1 = width // 2 + 40, 170, width - 60, height - 80
        draw.rectangle((x0, y0, x1, y1), outline=(60, 60, 60), width=2)
        freq, phase = rng.uniform(1, 4), rng.uniform(0, math.pi)
        points = [(x0 + i, (y0 + y1) / 2 - (y1 - y0) * 0.4 * math.sin(freq * i / (x1 - x0) * 2 * math.pi + phase))
                  for i in range(0, x1 - x0, 4)]
        draw.line(points, fill=(214, 96, 24), width=3)
    return img


def _long_states(rng: random.Random) -> list[tuple[str, list[str], bool, float]]:
    """(title, visible bullets, plot, seconds) per screen state: each slide reveals 2-5 bullets one by one."""
    states, total, n = [], 0.0, 0
    while total < LONG_MIN_SECONDS:
        n += 1
        title = f"{n}. " + " ".join(rng.choice(_WORDS).capitalize() for _ in range(rng.randint(2, 4)))
        bullets = [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 7))) for _ in range(rng.randint(2, 5))]
        plot = n % 4 == 0
        for k in range(len(bullets) + 1):  # the title alone, then one more bullet each state
            seconds = round(rng.uniform(10, 30) * LONG_FPS) / LONG_FPS
            states.append((title, bullets[:k], plot, seconds))
            total += seconds
    return states


def long_lecture() -> tuple[Path, int]:
    """The long lecture's MP4 and its number of distinct screen states; generated once, then cached."""
    media, spec_file = LONG_DIR / "lecture.mp4", LONG_DIR / "states.json"
    if media.is_file() and spec_file.is_file():
        spec = json.loads(spec_file.read_text())
        if spec.get("version") == LONG_VERSION:
            return media, spec["states"]
    LONG_DIR.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20250101)
    states = _long_states(rng)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="long-lecture-", dir=DATA) as tmp:
        playlist = ["ffconcat version 1.0"]
        for i, (title, bullets, plot, seconds) in enumerate(states):
            still = Path(tmp) / f"{i:04d}.png"
            _draw_slide(rng, title, bullets, plot).save(still)
            playlist += [f"file '{still.name}'", f"duration {seconds:.3f}"]
        playlist.append(playlist[-2])  # the concat demuxer honours the last duration only when the file repeats
        concat = Path(tmp) / "stills.ffconcat"
        concat.write_text("\n".join(playlist) + "\n")
        partial = Path(tmp) / "lecture.mp4"
        total = sum(s[3] for s in states)
        subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "concat",
                        "-safe", "0", "-i", str(concat), "-vf", f"format=yuv420p,fps={LONG_FPS}",
                        "-c:v", "libx264", "-preset", "veryfast", "-tune", "stillimage", "-crf", "23",
                        "-g", str(5 * LONG_FPS), "-t", f"{total:.3f}", "-movflags", "+faststart",
                        str(partial)], check=True)
        partial.replace(media)
    spec_file.write_text(json.dumps({"version": LONG_VERSION, "states": len(states), "seconds": total,
                                     "fps": LONG_FPS, "size": LONG_SIZE}) + "\n")
    print(f"  (generated {media.relative_to(DATA.parent.parent)}: {len(states)} states, {total / 60:.1f} min, "
          f"{media.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - started:.0f} s)", flush=True)
    return media, len(states)


def demo_course() -> tuple[list[Path], int]:
    """The demo course's MP4s and their total number of screen states (rendered once, then cached)."""
    from textbook.demo.render import render_course

    course = DATA / "demo-course"
    manifest = render_course(course)
    return [course / v["media"] for v in manifest["videos"]], sum(len(v["states"]) for v in manifest["videos"])


# --- the measured child ----------------------------------------------------------------------------

class ChildPeaks:
    """Peak RSS (VmHWM) of the ffmpeg processes this process starts, polled from /proc while they run.

    RUSAGE_CHILDREN would also count the Python parent's own RSS, which Linux folds into a child's
    maximum when it forks and execs; reading each child's VmHWM gives ffmpeg's alone.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.peak_kb, self._interval, self._stop = 0, interval, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        me = os.getpid()
        while not self._stop.wait(self._interval):
            for task in Path(f"/proc/{me}/task").iterdir():
                try:
                    children = (task / "children").read_text().split()
                except FileNotFoundError:  # the thread ended since the listing
                    continue
                for pid in children:
                    self.peak_kb = max(self.peak_kb, _status_kb(Path(f"/proc/{pid}/status"), "VmHWM"))


def _status_kb(status: Path, field: str) -> int:
    """A ``kB`` field of /proc/<pid>/status; 0 when the process is gone (or a zombie, which has none)."""
    try:
        lines = status.read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return next((int(line.split()[1]) for line in lines if line.startswith(field + ":")), 0)


def _peaks(children: ChildPeaks) -> dict[str, float]:
    """Peak RSS in MB of this process and of its largest ffmpeg."""
    return {"python_mb": _status_kb(Path("/proc/self/status"), "VmHWM") / 1024, "ffmpeg_mb": children.peak_kb / 1024}


def child_decode(media: list[Path]) -> dict[str, float]:
    """Decoding alone at the stage's sampling rate and size: the floor of the keyframes stage."""
    from textbook.config import load_settings
    from textbook.frames import iter_frames

    cfg = load_settings(environ={}).keyframes
    frames, started = 0, time.perf_counter()
    with ChildPeaks() as children:
        for path in media:
            for _ in iter_frames(path, cfg.fps, cfg.image_max_height):
                frames += 1
    return {"seconds": time.perf_counter() - started, "frames": frames, **_peaks(children)}


def child_decode_keys(media: list[Path]) -> dict[str, float]:
    """Decoding the codec's keyframes only: the floor of ``decode=codec_keyframes``."""
    from textbook.config import load_settings
    from textbook.frames import _scale, _stream

    cfg = load_settings(environ={}).keyframes
    frames, started = 0, time.perf_counter()
    with ChildPeaks() as children:
        for path in media:
            for _ in _stream(path.resolve(), ["-skip_frame", "nokey"], _scale(cfg.image_max_height),
                             ["-fps_mode", "passthrough"]):
                frames += 1
    return {"seconds": time.perf_counter() - started, "frames": frames, **_peaks(children)}


def child_extract(media: list[Path], data_root: Path, decode: str = "full") -> dict[str, float]:
    """The keyframes stage through the runner, video after video in one process, like a worker."""
    from textbook import keys
    from textbook.config import load_settings
    from textbook.artifacts import read_input, output_key
    from textbook.context import Context
    from textbook.media import probe
    from textbook.pipeline import STAGES
    from textbook.records import Clip, Video
    from textbook.runner import fingerprint, run_stage
    from textbook.stages.keyframes import STAGE

    ctx = Context.from_settings(load_settings(environ={}, data_root=str(data_root), keyframes={"decode": decode}))
    ids = []
    for n, path in enumerate(media):  # the upstream documents, as the stages before keyframes leave them
        vid = f"bench{n:03d}"
        duration = probe(path).duration
        ctx.db.add_video(Video(video_id=vid, url=f"file://{path}", source="local", title=path.stem))
        ref = ctx.store.put_file(output_key(ctx, vid, "download", keys.media_name()), path)
        info = ctx.store.put_json(output_key(ctx, vid, "download", "info.json"),
                                  {"video_id": vid, "media_key": ref.key, "captions": []})
        tiles = [Clip(i, i * CLIP_SECONDS, min(duration, (i + 1) * CLIP_SECONDS), "", "").to_dict()
                 for i in range(math.ceil(duration / CLIP_SECONDS))]
        clips = ctx.store.put_json(output_key(ctx, vid, "clips", "clips.json"), {"clips": tiles})
        outputs = {"download": [ref, info], "clips": [clips]}
        for s in STAGES[:STAGES.index(STAGE)]:
            token = uuid.uuid4().hex
            ctx.db.claim(vid, s.name, fingerprint(s, ctx), token)
            ctx.db.finish(vid, s.name, "done", token, artifacts=[r.to_dict() for r in outputs.get(s.name, [])])
        ids.append(vid)
    keyframes, sampled, started = 0, 0, time.perf_counter()
    with ChildPeaks() as children:
        for vid in ids:
            summary = run_stage(STAGE, vid, ctx).summary
            keyframes += summary["keyframes"]
            sampled += summary["sampled"]
    seconds = time.perf_counter() - started
    times = [[k["time"] for c in read_input(ctx, vid, "keyframes")["clips"]
              for k in c["keyframes"]] for vid in ids]
    return {"seconds": seconds, "frames": sampled, "keyframes": keyframes, "times": times, **_peaks(children)}


def _measure(kind: str, media: list[Path]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-keyframes-") as tmp:
        out = subprocess.run([sys.executable, __file__, "--child", kind, tmp, *map(str, media)],
                             check=False, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} child failed:\n{out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- report --------------------------------------------------------------------------------------

def main() -> None:
    from textbook.config import load_settings
    from textbook.media import probe

    cfg = load_settings(environ={}).keyframes
    print(f"keyframes stage, default KeyframeSettings: fps={cfg.fps}, compare_width={cfg.compare_width}, "
          f"ssim_threshold={cfg.ssim_threshold}, decode={cfg.decode}, image_max_height={cfg.image_max_height}, "
          f"keep_sampled_frames={cfg.keep_sampled_frames}; clips: {CLIP_SECONDS:.0f} s tiles", flush=True)
    demo_media, demo_states = demo_course()
    long_media, long_states = long_lecture()
    inputs = [(f"demo course ({len(demo_media)} videos, 1280x720, 5 fps)", demo_media, demo_states),
              (f"long lecture (1280x720, {LONG_FPS} fps)", [long_media], long_states)]

    print(f"{'input':<40} {'measured':<22} {'wall s':>7} {'video s/s':>9} {'vs decode':>9} "
          f"{'RSS py MB':>9} {'ffmpeg MB':>9} {'keyframes':>9} {'states':>6}")
    for name, media, states in inputs:
        seconds = sum(probe(p).duration for p in media)
        decode, keys_only = _measure("decode", media), _measure("decode_keys", media)
        full, codec = _measure("extract", media), _measure("extract_codec", media)
        rows = ((f"{name}", "decode only (1 fps)", decode), ("", "decode codec keyframes", keys_only),
                (f"  {_minutes(seconds)} of video", "stage, decode=full", full),
                ("", "stage, codec_keyframes", codec))
        for label, what, m in rows:
            print(f"{label:<40} {what:<22} {m['seconds']:>7.1f} {seconds / m['seconds']:>9.1f} "
                  f"{m['seconds'] / decode['seconds']:>8.2f}x {m['python_mb']:>9.0f} {m['ffmpeg_mb']:>9.0f} "
                  f"{m.get('keyframes', '-'):>9} {states if 'keyframes' in m else '-':>6}", flush=True)
        same = sum(a == b for a, b in zip(full["times"], codec["times"]))
        matched = sum(len(set(a) & set(b)) for a, b in zip(full["times"], codec["times"]))
        print(f"{'':<40} agreement: {same}/{len(media)} videos with identical keyframe times; "
              f"{matched} of {full['keyframes']} full-decode keyframes at the same time in codec_keyframes; "
              f"speed-up {full['seconds'] / codec['seconds']:.2f}x", flush=True)
    print("video s/s: seconds of video per wall second; vs decode: wall time over decoding alone at the same\n"
          "fps and size (the stage's floor); RSS: peak of the Python process and of its ffmpeg decoder;\n"
          "states: distinct screen states drawn (ground truth: one keyframe each is the ideal)")


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, root, paths = sys.argv[2], Path(sys.argv[3]), [Path(p) for p in sys.argv[4:]]
        children = {"decode": lambda: child_decode(paths), "decode_keys": lambda: child_decode_keys(paths),
                    "extract": lambda: child_extract(paths, root),
                    "extract_codec": lambda: child_extract(paths, root, "codec_keyframes")}
        result = children[kind]()
        print(json.dumps(result))
    else:
        main()
