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


def _vtt(sentences: list[str]) -> str:
    cues = ["WEBVTT", ""]
    for i, text in enumerate(sentences):
        start, end = i * SLIDE_SECONDS, (i + 1) * SLIDE_SECONDS - 0.2
        cues += [f"00:{start:06.3f} --> 00:{end:06.3f}", text, ""]
    return "\n".join(cues)


def _add_tone(silent: Path, dst: Path, seconds: float) -> None:
    """Mux a quiet 220 Hz tone as AAC audio: loud enough for the silence filter, cheap to encode."""
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(silent),
                    "-f", "lavfi", "-i", f"sine=frequency=220:sample_rate=16000:duration={seconds}",
                    "-af", "volume=0.3", "-c:v", "copy", "-c:a", "aac", "-b:a", "32k", "-shortest",
                    "-movflags", "+faststart", str(dst)], check=True)


def render_world(folder: Path) -> list[Path]:
    """Render the lectures into ``folder`` (media + captions); returns the media files, sorted."""
    folder.mkdir(parents=True, exist_ok=True)
    out, manifest = [], []
    for stem, slides in LECTURES:
        seconds = SLIDE_SECONDS * len(slides)
        silent = folder / f".{stem}.video.mp4"
        write_video([(slide(title, bullets, SIZE), SLIDE_SECONDS) for title, bullets, _ in slides], silent,
                    noise=2.0, seed=len(stem))
        _add_tone(silent, folder / f"{stem}.mp4", seconds)
        silent.unlink()
        (folder / f"{stem}.en.vtt").write_text(_vtt([sentence for _, _, sentence in slides]))
        out.append(folder / f"{stem}.mp4")
        manifest.append({"id": stem, "title": slides[0][0], "description": slides[0][2], "channel": "Fault world",
                         "language": "en", "media": f"{stem}.mp4", "captions": {"en": f"{stem}.en.vtt"},
                         "duration": seconds})
    (folder / "manifest.json").write_text(json.dumps({"channel": "Fault world", "videos": manifest}, indent=1))
    return sorted(out)
