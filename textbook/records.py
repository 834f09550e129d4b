"""Plain records passed between stages and stored as JSON artifacts.

Every record round-trips through ``to_dict``/``from_dict`` so that a stage can read what another
process (an Airflow worker elsewhere) wrote.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class UnsafeIdError(ValueError):
    """A video id from outside could build a path or a command line it should not."""


def check_video_id(video_id: str) -> str:
    """Return ``video_id`` if it is safe as a single path component, else raise.

    YouTube ids use ``[A-Za-z0-9_-]`` and may start with ``-``; anything else (dots, slashes,
    spaces) is refused so that no id can leave the data root.
    """
    if not isinstance(video_id, str) or not _SAFE_ID.match(video_id):
        raise UnsafeIdError(f"unsafe video id {video_id!r}: only letters, digits, '_' and '-' are allowed")
    return video_id


def _from(cls: type[T], data: dict[str, Any]) -> T:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


class Record:
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        return _from(cls, data)


@dataclass
class Video(Record):
    """A video found by a source, before anything is downloaded."""

    video_id: str
    url: str
    source: str = "youtube"
    title: str = ""
    description: str = ""
    channel: str = ""
    duration: float | None = None
    view_count: int | None = None
    license: str = ""
    language: str = ""
    captions: dict[str, list[str]] = field(default_factory=dict)  # kind (manual|auto) -> languages
    search_keyword: str = ""
    rank: int | None = None

    def __post_init__(self) -> None:
        check_video_id(self.video_id)


@dataclass
class Word(Record):
    start: float
    end: float
    text: str


@dataclass
class Segment(Record):
    start: float
    end: float
    text: str
    words: list[Word] | None = None
    # What the recogniser itself thinks of the segment (Whisper exposes these; None otherwise):
    # mean token log-probability, probability that there was no speech, gzip compression ratio
    # of the text (loops and hallucinated repeats compress well).
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    compression_ratio: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Segment":
        words = data.get("words")
        return cls(data["start"], data["end"], data["text"],
                   [Word.from_dict(w) for w in words] if words is not None else None,
                   data.get("avg_logprob"), data.get("no_speech_prob"), data.get("compression_ratio"))


@dataclass
class Transcript(Record):
    source: str  # captions | auto_captions | <asr backend name>
    language: str
    segments: list[Segment]

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments if s.text)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Transcript":
        return cls(data["source"], data.get("language", ""), [Segment.from_dict(s) for s in data["segments"]])


@dataclass
class Verdict(Record):
    """One filter's decision on a video: kept or not, with its score and reason."""

    name: str
    passed: bool
    score: float | None = None
    reason: str = ""


@dataclass
class Clip(Record):
    index: int
    start: float
    end: float
    text: str
    refined_text: str | None = None

    @property
    def label(self) -> str:
        return f"{self.start:.1f}_{self.end:.1f}"


@dataclass
class Keyframe(Record):
    clip_index: int
    k: int  # index inside its clip, from 1
    time: float
    key: str  # artifact key: images/<vid>/<vid>@<start>_<end>#<k>.jpg


@dataclass
class ClipFrames(Record):
    """What keyframe extraction saw for one clip: every sampled frame compared, and the kept ones."""

    clip_index: int
    sampled: list[str]  # artifact keys of sampled frames (empty when not kept)
    keyframes: list[Keyframe]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ClipFrames":
        return cls(data["clip_index"], list(data["sampled"]), [Keyframe.from_dict(k) for k in data["keyframes"]])


@dataclass
class OcrResult(Record):
    key: str  # keyframe artifact key
    text: str  # OCR text, one line per line read, template lines (boilerplate) left out
    deduplicated: str  # what remains after removing lines repeated from the previous keyframe
    confidence: list[float] = field(default_factory=list)  # mean word confidence (0-100) of each line of text
    boilerplate: list[str] = field(default_factory=list)  # lines recurring on most keyframes of the video
    quality: int | None = None  # the VLM's keyframe score 1-5 (ocr.score_keyframes); None: not scored or unparseable
    issues: list[str] = field(default_factory=list)  # what the VLM found wrong with it (occluded, low_information)
    scoring: str = ""  # "": not scored; "scored"; "unparseable": two answers without a valid score, keyframe kept
    dropped: str = ""  # why the keyframe leaves its clip's images (its score under ocr.min_quality); "": kept


@dataclass
class ClipVisual(Record):
    """The clip visual filter's decision: keep the clip's images or only its text."""

    clip_index: int
    kept: bool
    reason: str = ""
    score: float | None = None
    caption: str | None = None  # what a VLM said the clip shows (the caption backend only)
