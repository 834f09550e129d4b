"""LLaVA-Video-178K's three-level recurrent captions as a resumable state machine.

The paper's schedule over 10 s intervals: a level-1 caption every interval (its frames, the level-1
captions not yet summarised, the latest level-2), a level-2 caption every third interval (the last
three level-1 and the latest level-2), one level-3 caption at the end (the unsummarised level-1 and
the latest level-2). The plan is a pure function of the segment's duration, and the state (every
caption so far) is saved after each call (a local file written atomically, or a key of the artifact
store), so a retry after a kill resumes at the next call instead of captioning the video again.
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from textbook.atomic import atomic_write

PROMPT_VERSION = "1"
INTERVAL_S = 10
LEVEL2_EVERY = 3

PROMPTS = {
    1: "Describe what happens in these frames of the video's next 10 seconds, continuing the description so far.",
    2: "Summarise the last 30 seconds of the video from these three 10-second descriptions and the summary so far.",
    3: "Write a detailed description of the whole video from the summary so far and the latest descriptions.",
}


@dataclass(frozen=True)
class Step:
    """One call of the schedule: ``interval`` is the 1-based 10 s interval a level-1 call captions,
    or the interval after which a level-2 call runs; level 3 carries the last interval."""

    level: int
    interval: int


def plan(duration: float) -> list[Step]:
    """The calls for a segment of ``duration`` seconds, in order."""
    if duration <= 0:
        raise ValueError(f"recurrent captions: segment duration must be positive, got {duration}")
    n = math.ceil(duration / INTERVAL_S)
    steps: list[Step] = []
    for i in range(1, n + 1):
        steps.append(Step(1, i))
        if i % LEVEL2_EVERY == 0 and i < n:
            steps.append(Step(2, i))
    steps.append(Step(3, n))
    return steps


def sample_frames(video: Path, out_dir: Path, duration: float) -> list[tuple[float, Path]]:
    """Every frame at 1 fps (frame k at k s) as JPEG files under ``out_dir``, with its timestamp."""
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = sorted(out_dir.glob("frame_*.jpg"))
    if len(existing) != math.ceil(duration):
        for f in existing:
            f.unlink()
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(video), "-vf", "fps=1:round=down", "-q:v", "4",
                        "-frames:v", str(math.ceil(duration)), str(out_dir / "frame_%05d.jpg")], check=True)
        existing = sorted(out_dir.glob("frame_*.jpg"))
    if not existing:
        raise ValueError(f"recurrent captions: no frames decoded from {video}")
    return [(float(k), p) for k, p in enumerate(existing)]


class CaptionState:
    """Every caption so far (level, interval, text), saved after each call through ``save``;
    ``where`` names the state in errors. ``file`` keeps it in a local file, ``stored`` under a key
    of the artifact store, so a retry on another worker finds it too."""

    def __init__(self, where: str, doc: dict[str, Any] | None, save: Callable[[dict[str, Any]], None]) -> None:
        self.where, self._save = where, save
        self.captions: list[dict[str, Any]] = []
        if doc is not None:
            if doc.get("prompt_version") != PROMPT_VERSION:
                raise ValueError(f"{where}: caption state of prompt version {doc.get('prompt_version')}, "
                                 f"expected {PROMPT_VERSION}; delete it to caption again")
            self.captions = doc["captions"]

    @classmethod
    def file(cls, path: Path) -> "CaptionState":
        return cls(str(path), json.loads(path.read_text()) if path.is_file() else None,
                   lambda doc: atomic_write(path, lambda tmp: tmp.write_text(json.dumps(doc, indent=1))))

    @classmethod
    def stored(cls, store: Any, key: str) -> "CaptionState":
        return cls(key, store.get_json(key) if store.exists(key) else None, lambda doc: store.put_json(key, doc))

    def add(self, step: Step, text: str) -> None:
        self.captions.append({"level": step.level, "interval": step.interval, "text": text})
        self._save({"prompt_version": PROMPT_VERSION, "captions": self.captions})

    def level(self, level: int) -> list[dict[str, Any]]:
        return [c for c in self.captions if c["level"] == level]

    def latest_level2(self) -> dict[str, Any] | None:
        level2 = self.level(2)
        return level2[-1] if level2 else None

    def unsummarised(self) -> list[dict[str, Any]]:
        """Level-1 captions after the latest level-2."""
        last = self.latest_level2()
        return [c for c in self.level(1) if last is None or c["interval"] > last["interval"]]


def _text_part(step: Step, state: CaptionState, grounding: str) -> str:
    lines = [PROMPTS[step.level]]
    if step.level == 2:
        previous = state.level(1)[-LEVEL2_EVERY:]
    else:
        previous = state.unsummarised()
    latest = state.latest_level2()
    if latest is not None:
        lines.append(f"Summary so far (level 2, up to interval {latest['interval']}): {latest['text']}")
    for c in previous:
        lines.append(f"Description of interval {c['interval']} (level 1): {c['text']}")
    if grounding:
        lines.append(f"Narration and on-screen text of this interval: {grounding}")
    return "\n".join(lines)


def caption_segment(frames: Sequence[tuple[float, Path]], duration: float, state: CaptionState,
                    vlm: Any, grounding: Callable[[float, float], str] | None = None) -> CaptionState:
    """Run the calls of ``plan(duration)`` not in ``state`` yet; ``grounding(start, end)`` (optional)
    gives an interval's transcript and OCR for its level-1 prompt."""
    steps = plan(duration)
    done = state.captions
    for i, (step, c) in enumerate(zip(steps, done)):
        if (c["level"], c["interval"]) != (step.level, step.interval):
            raise ValueError(f"{state.where}: caption {i} is level {c['level']} interval {c['interval']}, "
                             f"the schedule expects level {step.level} interval {step.interval}")
    for step in steps[len(done):]:
        content: list[dict[str, Any]] = []
        extra = ""
        if step.level == 1:
            start, end = (step.interval - 1) * INTERVAL_S, step.interval * INTERVAL_S
            content = [{"type": "image", "path": str(p)} for t, p in frames if start <= t < end]
            extra = grounding(start, min(end, duration)) if grounding else ""
        content.append({"type": "text", "text": _text_part(step, state, extra)})
        text = vlm.chat([[{"role": "user", "content": content}]])[0].strip()
        state.add(step, text)
    return state
