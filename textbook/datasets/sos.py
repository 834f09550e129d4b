"""SoSVQA ("Structure Over Scale"): question-pause-answer cycles and their multiple-choice form.

Stages ``qa_cycles`` and ``qa_mcq`` (textbook.stages.qa), the ``sos/`` view (textbook.export.sos)
and the report's cycles page; this module declares them and holds their settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from textbook.config import ModelSettings, knob
from textbook.datasets import Dataset
from textbook.taskspec import TaskSpec


@dataclass(frozen=True)
class QaSettings:
    """Question-pause-answer cycles (SoSVQA, "Structure Over Scale"): a question, a pause, then its
    answer, found from the audio's silences and the transcript by the public code's rules."""

    enabled: bool = knob(True)  # for every video; off: only for the knowledge points listed below
    knowledge_points: tuple[str, ...] = knob(())  # knowledge point ids it runs for while enabled is off
    # audio: silences of the extracted WAV (the public code); gap: gaps between transcript segments,
    # for captioned videos whose music bed never falls silent
    detector: str = knob("audio", choices=("audio", "gap"))
    silence_db: float = knob(-40.0, le=0)  # RMS under this, relative to the loudest frame, is silence
    min_pause_s: float = knob(1.0, gt=0)
    max_pause_s: float = knob(600.0, gt=0)  # longer silences are breaks, not pauses (dropped)
    question_window_s: float = knob(10.0, gt=0)  # the question ends at most this long before the pause
    answer_window_s: float = knob(10.0, gt=0)  # the answer starts at most this long after it
    # SoS falls back to the last segment before the pause when none is a question; in lectures
    # every breath would then become a cycle, so it is off by default
    question_fallback: bool = knob(False)
    context_window_s: float = knob(60.0, gt=0)  # transcript before the question given as context
    frame_fps: float = knob(0.25, gt=0, le=30)  # pause frames per second of pause
    max_frames: int = knob(4, ge=1, le=64)
    frame_max_height: int = knob(448, ge=64)
    jpeg_quality: int = knob(90, ge=1, le=100)


@dataclass(frozen=True)
class QaMcqSettings:
    """The optional multiple-choice step: an LLM turns each cycle's answer into a short answer and
    three distractors, at temperature 0 (SoS used 0.5: 0 keeps re-runs stable). Backend none: no
    multiple-choice questions, and the run says so."""

    llm: ModelSettings = field(default_factory=lambda: ModelSettings(max_new_tokens=200))
    seed: int = knob(42)  # shuffles the choices


DATASET = Dataset(
    "sos",
    view="textbook.export.sos:SosView",
    stages=("textbook.stages.qa:CYCLES", "textbook.stages.qa:MCQ"),
    tasks=(TaskSpec(("qa_cycles", "qa_mcq"), network=True),),  # an LLM endpoint, when one is set
    settings={"qa": QaSettings, "qa_mcq": QaMcqSettings},
    report="textbook.report.cycles:PAGE",
)
