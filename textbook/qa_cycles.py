"""Question-pause-answer cycles (SoSVQA, "Structure Over Scale"), by the rules of its public code.

Educational video asks a question, pauses for the viewer, then answers. ``qa_segmenter.py`` finds
the pauses as silences of the audio (RMS under -40 dB of the loudest frame for at least 1 s); for
each pause the **question** is the nearest transcript segment ending before it within 10 s that
reads as a question (a "?" or a question opening), the **answer** the first segment of more than
3 characters starting after it within 10 s. ``validate_and_filter_labels.py`` then drops entries
without an answer, with the pause ending before it starts, or pausing over 600 s (its rule for
placeholder timestamps at 23:55-23:59 has no counterpart here: our times are measured). The
dataset's context is the transcript of the 60 s before the question, cut before the first
occurrence of any question of the video, so that no answer leaks into it.

Caption cues include the synthesiser's or speaker's breath at their edges while the silence is
measured on the sound, so a segment counts as ending before the pause when it ends within
``EDGE_S`` of its start (and likewise for the answer), and the pause is then clipped to the
segments it lies between: the question ends where the pause starts and the answer starts where
it ends, at the latest and earliest.
"""

from __future__ import annotations

import re
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from textbook.datasets.sos import QaSettings
from textbook.records import Segment

FRAME_S = 0.02  # RMS frames of 20 ms: pause bounds to within a frame, far inside the 0.3 s asked
EDGE_S = 0.5  # a segment edge this close to a pause edge counts as touching it
MIN_ANSWER_CHARS = 3  # the answer has more characters than this

# SoS's question patterns: "how many", "what/where/who/why is|are|do...", "can you", "do you", "which one..."
QUESTION_OPENINGS = re.compile(
    r"\b(how (many|much)|(what|where|who|why|when|how)('s|\s+(is|are|was|were|do|does|did|can|will|would))\b"
    r"|(can|could|do|did|will|would) you\b|which (one|ones|of|is|are)\b)", re.IGNORECASE)


@dataclass(frozen=True)
class Pause:
    start: float
    end: float
    detector: str  # audio | gap

    @property
    def length(self) -> float:
        return self.end - self.start


def is_question(text: str) -> bool:
    return "?" in text or QUESTION_OPENINGS.search(text) is not None


def frame_rms(wav: Path, frame_s: float = FRAME_S) -> tuple[np.ndarray, float]:
    """RMS of each ``frame_s`` frame of a 16-bit mono WAV, read a block at a time; and the frame length."""
    with wave.open(str(wav), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{wav.name}: expected 16-bit mono audio, got {8 * w.getsampwidth()} bit, "
                             f"{w.getnchannels()} channel(s)")
        size = max(1, round(w.getframerate() * frame_s))
        out = []
        while True:
            block = np.frombuffer(w.readframes(size * 500), dtype="<i2")
            whole = len(block) // size * size
            if whole:
                chunk = block[:whole].astype(np.float64).reshape(-1, size)
                out.append(np.sqrt((chunk ** 2).mean(axis=1)))
            if len(block) < size * 500:
                break
        return (np.concatenate(out) if out else np.zeros(0)), size / w.getframerate()


def audio_pauses(rms: np.ndarray, frame_s: float, silence_db: float, min_pause_s: float) -> list[Pause]:
    """Silences of at least ``min_pause_s`` with sound on both sides (the start and end of the
    recording are not pauses). Silence: RMS under ``silence_db`` relative to the loudest frame."""
    peak = float(rms.max()) if len(rms) else 0.0
    if peak <= 0:
        return []
    silent = 20 * np.log10(np.maximum(rms, 1e-12) / peak) < silence_db
    edges = np.flatnonzero(np.diff(silent.astype(np.int8))) + 1  # first frame after each change
    begins, ends = edges[silent[edges]], edges[~silent[edges]]
    ends = ends[ends > begins[0]] if len(begins) else ends  # a recording that starts silent: not a pause
    pauses = []
    for begin, end in zip(begins, ends):  # a silence that runs to the end has no end: not a pause
        if (end - begin) * frame_s >= min_pause_s:
            pauses.append(Pause(round(float(begin) * frame_s, 3), round(float(end) * frame_s, 3), "audio"))
    return pauses


def gap_pauses(segments: Sequence[Segment], min_pause_s: float) -> list[Pause]:
    """Gaps of at least ``min_pause_s`` between consecutive transcript segments."""
    return [Pause(a.end, b.start, "gap") for a, b in zip(segments, segments[1:]) if b.start - a.end >= min_pause_s]


def find_pauses(cfg: QaSettings, segments: Sequence[Segment], wav: Path | None) -> list[Pause]:
    if cfg.detector == "gap":
        return gap_pauses(segments, cfg.min_pause_s)
    if wav is None:
        raise ValueError("qa.detector 'audio' needs the audio stage's WAV")
    rms, frame_s = frame_rms(wav)
    return audio_pauses(rms, frame_s, cfg.silence_db, cfg.min_pause_s)


def srt_time(seconds: float) -> str:
    ms = max(0, round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def _question(pause: Pause, segments: Sequence[Segment], cfg: QaSettings) -> Segment | None:
    window = [s for s in segments if s.start < pause.start and pause.start - cfg.question_window_s <= s.end
              <= pause.start + EDGE_S]
    asked = [s for s in window if is_question(s.text)]
    if asked:
        return max(asked, key=lambda s: s.end)
    return max(window, key=lambda s: s.end) if window and cfg.question_fallback else None


def _answer(pause: Pause, question: Segment, segments: Sequence[Segment], cfg: QaSettings) -> Segment | None:
    return next((s for s in sorted(segments, key=lambda s: s.start)
                 if s.start >= max(question.end, pause.end - EDGE_S) and s.start <= pause.end + cfg.answer_window_s
                 and len(s.text.strip()) > MIN_ANSWER_CHARS), None)


def label(video_id: str, n: int, pause: Pause, question: Segment, answer: Segment | None) -> dict[str, Any]:
    """One entry of the SoS label file (``*_filtered.json``), with our seconds beside its SRT strings."""
    start = max(pause.start, question.end)
    end = min(pause.end, answer.start) if answer is not None else pause.end
    return {
        "id": f"{video_id}-q{n}", "episode": video_id, "video_id": video_id,
        "question_text": question.text.strip(),
        "question_start_ts": srt_time(question.start), "question_end_ts_id": srt_time(question.end),
        "pause_start": srt_time(start), "pause_end": srt_time(end),
        "answer_start_ts_id": srt_time(answer.start) if answer else None,
        "answer_end_ts_id": srt_time(answer.end) if answer else None,
        "has_answer": answer is not None, "answer_text": answer.text.strip() if answer else "",
        "question_start_s": question.start, "question_end_s": question.end,
        "pause_start_s": round(start, 3), "pause_end_s": round(end, 3),
        "answer_start_s": answer.start if answer else None, "answer_end_s": answer.end if answer else None,
        "detector": pause.detector,
    }


def segment_labels(video_id: str, pauses: Iterable[Pause], segments: Sequence[Segment],
                   cfg: QaSettings) -> list[dict[str, Any]]:
    """A label for every pause that follows a question (``qa_segmenter``), answered or not; a
    question heard before two pauses is labelled at the first."""
    labels: list[dict[str, Any]] = []
    asked: set[tuple[float, float]] = set()
    for pause in sorted(pauses, key=lambda p: p.start):
        question = _question(pause, segments, cfg)
        if question is None or (question.start, question.end) in asked:
            continue
        asked.add((question.start, question.end))
        labels.append(label(video_id, len(labels), pause, question, _answer(pause, question, segments, cfg)))
    return labels


def drop_reason(entry: dict[str, Any], max_pause_s: float) -> str:
    """Why ``validate_and_filter_labels`` drops the entry, '' when it keeps it."""
    if not entry.get("has_answer") or not str(entry.get("answer_text") or "").strip():
        return "no answer"
    if entry["pause_end_s"] < entry["pause_start_s"]:
        return "pause ends before it starts"
    if entry["pause_end_s"] - entry["pause_start_s"] > max_pause_s:
        return f"pause longer than {max_pause_s:g} s"
    return ""


def validate(labels: Iterable[dict[str, Any]], max_pause_s: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept labels, dropped ones each with its ``reason``)."""
    kept, dropped = [], []
    for entry in labels:
        reason = drop_reason(entry, max_pause_s)
        if reason:
            dropped.append({**entry, "reason": reason})
        else:
            kept.append(entry)
    return kept, dropped


def context(segments: Sequence[Segment], question_start: float, window_s: float, questions: Iterable[str]) -> str:
    """The transcript of the ``window_s`` before the question (segments that end by its start), cut
    before the first occurrence of any of the video's ``questions``: never an answer, never a question."""
    text = " ".join(s.text.strip() for s in segments
                    if s.end <= question_start + 1e-6 and s.start >= question_start - window_s).strip()
    cuts = [text.find(q) for q in questions if q and q in text]
    return text[:min(cuts)].strip() if cuts else text


def frame_times(pause_start: float, pause_end: float, fps: float, limit: int) -> list[float]:
    """Pause frames at ``fps`` (at most ``limit``, at least one), centred in the pause."""
    length = max(0.0, pause_end - pause_start)
    count = max(1, min(limit, int(length * fps + 1e-9)))
    return [round(pause_start + length * (k + 0.5) / count, 3) for k in range(count)]
