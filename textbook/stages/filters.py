"""The paper's rule filters: drop videos too short, silent, not in English, or repetitive.

Every rule gives a ``Verdict`` and all of them are kept, so the per-video record can show each
rule's score, not only the one that dropped the video. Metadata rules (over the ``Video`` alone)
form a list of their own: a later rule, such as an LLM judging title and description, is one
more function in ``METADATA_RULES``, and the search step can run the same list before download.
"""

from __future__ import annotations

import math
import re
import wave
from pathlib import Path
from typing import Callable

import numpy as np

from textbook.artifacts import input_key, output_key, read_input
from textbook.config import FilterSettings
from textbook.context import Context
from textbook.language import scores
from textbook.records import Transcript, Verdict, Video
from textbook.stages.base import StageResult, stage
from textbook.tokens import count_tokens

SILENCE_FLOOR_DBFS = -120.0  # what digital silence (RMS 0) is reported as
_WORD = re.compile(r"[\w']+")


def wav_loudness(path: Path) -> tuple[float, float]:
    """(duration in seconds, mean loudness in dBFS) of a 16-bit PCM WAV, read in chunks."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{Path(path).name}: expected 16-bit PCM, got {8 * w.getsampwidth()}-bit")
        rate, frames = w.getframerate(), w.getnframes()
        total, count = 0.0, 0
        while chunk := w.readframes(1 << 18):
            samples = np.frombuffer(chunk, dtype="<i2").astype(np.float64)
            total += float(np.dot(samples, samples))
            count += samples.size
    rms = math.sqrt(total / count) / 32768.0 if count else 0.0
    dbfs = 20 * math.log10(rms) if rms > 0 else SILENCE_FLOOR_DBFS
    return frames / rate if rate else 0.0, max(dbfs, SILENCE_FLOOR_DBFS)


def repetition_share(text: str) -> float:
    """Share of word 3-grams that repeat an earlier one: near 0 for speech, near 1 for a loop."""
    words = [w.lower() for w in _WORD.findall(text)]
    grams = list(zip(words, words[1:], words[2:]))
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def too_short(duration: float, cfg: FilterSettings) -> Verdict:
    passed = duration >= cfg.min_duration
    return Verdict("too_short", passed, round(duration, 3),
                   f"duration {duration:.1f} s" + ("" if passed else f" under {cfg.min_duration:g} s"))


def silent(dbfs: float, tokens: int, cfg: FilterSettings) -> Verdict:
    problems = []
    if dbfs < cfg.silence_dbfs:
        problems.append(f"mean loudness {dbfs:.1f} dBFS under {cfg.silence_dbfs:g} dBFS")
    if tokens < cfg.min_tokens:
        problems.append(f"{tokens} transcript tokens, fewer than {cfg.min_tokens}")
    reason = "; ".join(problems) or f"mean loudness {dbfs:.1f} dBFS, {tokens} transcript tokens"
    return Verdict("silent", not problems, round(dbfs, 2), reason)


def not_english(language_scores: dict[str, float], cfg: FilterSettings) -> Verdict:
    english = language_scores.get("en", 0.0)
    if not language_scores:
        return Verdict("not_english", False, 0.0, "no transcript text to identify a language in")
    top, confidence = next(iter(language_scores.items()))
    if top != "en":
        return Verdict("not_english", False, round(english, 4), f"language is {top} (confidence {confidence:.2f})")
    passed = english >= cfg.english_min_confidence
    return Verdict("not_english", passed, round(english, 4), f"English confidence {english:.2f}"
                   + ("" if passed else f" under {cfg.english_min_confidence:g}"))


def repetitive(text: str, cfg: FilterSettings) -> Verdict:
    share = repetition_share(text)
    passed = share <= cfg.max_repetition
    return Verdict("repetitive", passed, round(share, 4), f"{share:.0%} of word 3-grams repeated"
                   + ("" if passed else f", above {cfg.max_repetition:.0%}"))


MetadataRule = Callable[[Video, Context], Verdict]


def duration_bounds(video: Video, ctx: Context) -> Verdict:
    """The search-time duration bounds (``search.min_duration`` .. ``search.max_duration``)."""
    lo, hi = ctx.settings.search.min_duration, ctx.settings.search.max_duration
    if video.duration is None:
        return Verdict("metadata_duration", True, None, "duration unknown")
    passed = lo <= video.duration <= hi
    return Verdict("metadata_duration", passed, video.duration,
                   f"listed duration {video.duration:g} s" + ("" if passed else f" outside {lo:g}-{hi:g} s"))


def declared_language(video: Video, ctx: Context) -> Verdict:
    """The language the platform lists for the video, or else the languages of its own captions.

    Catches non-English talks that have no English captions: the English-only pocketsphinx model
    hears English-sounding words in any speech, which the transcript's language check cannot see
    through. Automatic captions are not evidence (YouTube offers machine translations of them).
    """
    if video.language:
        passed = video.language.lower().split("-")[0] == "en"
        return Verdict("metadata_language", passed, None, f"listed language {video.language}"
                       + ("" if passed else ", not English"))
    manual = video.captions.get("manual", [])
    if manual and not any(lang.lower().split("-")[0] == "en" for lang in manual):
        return Verdict("metadata_language", False, None, f"captions only in {', '.join(manual)}, none in English")
    return Verdict("metadata_language", True, None, "no language listed")


METADATA_RULES: tuple[MetadataRule, ...] = (duration_bounds, declared_language)


def metadata_verdicts(video: Video, ctx: Context, rules: tuple[MetadataRule, ...] = METADATA_RULES) -> list[Verdict]:
    return [rule(video, ctx) for rule in rules]


@stage("filters", sections=("filters", "search"), requires=("transcript", "audio"))
def run(video: Video, ctx: Context) -> StageResult:
    cfg = ctx.settings.filters
    vid = video.video_id
    transcript = Transcript.from_dict(read_input(ctx, vid, "transcript"))
    with ctx.store.local_path(input_key(ctx, vid, "audio", "audio.wav")) as wav:
        duration, dbfs = wav_loudness(wav)
    text = transcript.text
    language_scores = scores(text)
    language, confidence = next(iter(language_scores.items()), ("", 0.0))
    verdicts = [
        too_short(duration, cfg),
        silent(dbfs, count_tokens(text), cfg),
        not_english(language_scores, cfg),
        repetitive(text, cfg),
        *metadata_verdicts(video, ctx),
    ]
    failed = next((v for v in verdicts if not v.passed), None)
    reason = f"{failed.name}: {failed.reason}" if failed else ""
    doc = {"kept": failed is None, "reason": reason, "language": language,
           "language_confidence": round(confidence, 4), "verdicts": [v.to_dict() for v in verdicts]}
    ref = ctx.store.put_json(output_key(ctx, vid, "filters", "filters.json"), doc)
    summary = {"kept": failed is None, "language": language, "duration": round(duration, 3),
               "dbfs": round(dbfs, 2), "failed": [v.name for v in verdicts if not v.passed],
               "verdicts": doc["verdicts"]}  # also in the database: videos.jsonl needs them without the store
    return StageResult(artifacts=[ref], summary=summary, filtered=reason)


STAGE = run
