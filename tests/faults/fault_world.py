"""The small world every fault scenario runs on: three short captioned lectures, rendered once.

Each lecture is a few slides (so keyframes and OCR have work) over a quiet tone (so the silence
filter passes), 640x360 at 5 fps, with English captions beside the file as ``<stem>.en.vtt`` so the
transcript comes from captions and no slow speech recognition runs. A ``manifest.json`` lets the
library's own ``DemoServer`` publish the folder as a video site (pages with caption tracks) for the
``urls`` source.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from slide_helpers import slide, write_video

# (file stem, [(slide title, bullets, caption sentence)]): every slide stays up for SLIDE_SECONDS.
LECTURES = (
    ("derivatives", [
        ("Derivatives", ["rate of change", "slope of the tangent"],
         "Today we learn what a derivative is: the rate at which a function changes."),
        ("The limit definition", ["difference quotient", "h goes to zero"],
         "We define the derivative as the limit of the difference quotient when h goes to zero."),
        ("The power rule", ["x to the n", "n times x to the n minus one"],
         "The power rule says the derivative of x to the n is n times x to the n minus one."),
    ]),
    ("newton", [
        ("Newton's laws", ["inertia", "force and acceleration"],
         "Newton's laws describe how forces change the motion of a body over time."),
        ("The second law", ["force equals mass times acceleration"],
         "The second law tells us that force equals mass times acceleration for any body."),
        ("Action and reaction", ["equal and opposite forces"],
         "The third law says every action has an equal and opposite reaction on the other body."),
        ("Friction", ["static friction", "kinetic friction"],
         "Friction opposes sliding, and kinetic friction is usually smaller than static friction."),
    ]),
    ("probability", [
        ("Probability", ["events and outcomes", "sample space"],
         "Probability measures how likely an event is among all the outcomes of an experiment."),
        ("Rolling two dice", ["thirty six outcomes", "six ways to roll seven"],
         "When we roll two dice there are thirty six outcomes and six of them add up to seven."),
        ("Independence", ["P of A and B", "equals P of A times P of B"],
         "Two events are independent when the probability of both is the product of their probabilities."),
    ]),
)
SLIDE_SECONDS = 5.0
SIZE = (640, 360)
FPS = 5
GOP = 2 * FPS  # a keyframe every 2 s, as video sites serve them


def _vtt(sentences: list[str]) -> str:
    cues = ["WEBVTT", ""]
    for i, text in enumerate(sentences):
        start, end = i * SLIDE_SECONDS, (i + 1) * SLIDE_SECONDS - 0.2
        cues += [f"00:{start:06.3f} --> 00:{end:06.3f}", text, ""]
    return "\n".join(cues)


def _add_tone(silent: Path, dst: Path, seconds: float, gop: int) -> None:
    """Add a quiet 220 Hz tone as AAC audio (loud enough for the silence filter) and re-encode the
    picture with a keyframe every ``gop`` frames (and none at scene cuts, so the count is exact)."""
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(silent),
                    "-f", "lavfi", "-i", f"sine=frequency=220:sample_rate=16000:duration={seconds}",
                    "-af", "volume=0.3", "-c:v", "libx264", "-preset", "veryfast", "-g", str(gop),
                    "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "32k", "-shortest", "-movflags", "+faststart",
                    str(dst)], check=True)


def render_lecture(slides: list[tuple[str, list[str], str]], dst: Path, gop: int = GOP) -> float:
    """One lecture (media only) at ``dst``; returns its length in seconds."""
    seconds = SLIDE_SECONDS * len(slides)
    silent = dst.with_name(f".{dst.stem}.video.mp4")
    write_video([(slide(title, bullets, SIZE), SLIDE_SECONDS) for title, bullets, _ in slides], silent, fps=FPS,
                noise=2.0, seed=len(dst.stem))
    _add_tone(silent, dst, seconds, gop)
    silent.unlink()
    return seconds


def render_world(folder: Path) -> list[Path]:
    """Render the lectures into ``folder`` (media + captions); returns the media files, sorted."""
    folder.mkdir(parents=True, exist_ok=True)
    out, manifest = [], []
    for stem, slides in LECTURES:
        seconds = render_lecture(slides, folder / f"{stem}.mp4")
        (folder / f"{stem}.en.vtt").write_text(_vtt([sentence for _, _, sentence in slides]))
        out.append(folder / f"{stem}.mp4")
        manifest.append({"id": stem, "title": slides[0][0], "description": slides[0][2], "channel": "Fault world",
                         "language": "en", "media": f"{stem}.mp4", "captions": {"en": f"{stem}.en.vtt"},
                         "duration": seconds})
    (folder / "manifest.json").write_text(json.dumps({"channel": "Fault world", "videos": manifest}, indent=1))
    return sorted(out)
