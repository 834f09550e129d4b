"""The paper's rule filters: drop videos too short, silent, not in English, badly transcribed or repetitive.

Every rule gives a ``Verdict`` and all of them are kept, so the per-video record can show each
rule's score, not only the one that dropped the video. The metadata rules (textbook.stages.metadata)
run again here: before download they saw the search listing, here the metadata the download
recorded (the media's own duration, the platform's language), which a flat search often lacks.
"""

from __future__ import annotations

import math
import re
import urllib.parse
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from textbook.artifacts import input_key, output_key, read_input
from textbook.config import FilterSettings
from textbook.context import Context
from textbook.language import scores
from textbook.records import Transcript, Verdict, Video
from textbook.sources.local import sidecar_languages
from textbook.speech import speech_seconds
from textbook.stages.base import StageResult, stage
from textbook.stages.metadata import metadata_verdicts
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


def silent(dbfs: float, tokens: int, cfg: FilterSettings, speech: float | None = None) -> Verdict:
    """Too quiet, or too few transcript tokens. With ``speech`` (seconds of detected voice, known for
    ASR transcripts) a video full of speech is not silent however few words the ASR made of it: the
    language rule judges that."""
    problems = []
    if dbfs < cfg.silence_dbfs:
        problems.append(f"mean loudness {dbfs:.1f} dBFS under {cfg.silence_dbfs:g} dBFS")
    if tokens < cfg.min_tokens and (speech is None or speech < cfg.min_speech_seconds):
        problems.append(f"{tokens} transcript tokens, fewer than {cfg.min_tokens}")
    reason = "; ".join(problems) or f"mean loudness {dbfs:.1f} dBFS, {tokens} transcript tokens"
    return Verdict("silent", not problems, round(dbfs, 2), reason)


@dataclass(frozen=True)
class LanguageEvidence:
    """What says which language a video is in, gathered from every source the pipeline has."""

    text_scores: dict[str, float]  # language of the transcript text (lingua), best first
    caption_languages: tuple[str, ...] = ()  # manual captions: listed by the platform or files beside local media
    speech_seconds: float | None = None  # detected voice, for ASR transcripts
    words: int = 0  # words the ASR made of that speech


def _is_english(lang: str) -> bool:
    return lang.lower().split("-")[0] == "en"


def not_english(evidence: LanguageEvidence | dict[str, float], cfg: FilterSettings) -> Verdict:
    """English unless some evidence says otherwise; the score is the text's English confidence.

    Evidence against, in order: captions that exist only in other languages; speech the ASR could
    not turn into words at an English rate (an English-only model hears nothing, or a few words, in
    French); a transcript whose text is in another language, or not confidently English.
    """
    if not isinstance(evidence, LanguageEvidence):
        evidence = LanguageEvidence(evidence)
    text_scores = evidence.text_scores
    english = round(text_scores.get("en", 0.0), 4)
    captions = [c for c in evidence.caption_languages if c]
    if captions and not any(_is_english(c) for c in captions):
        return Verdict("not_english", False, english, f"captions only in {', '.join(captions)}, none in English")
    speech = evidence.speech_seconds
    if speech is not None and speech >= cfg.min_speech_seconds:
        rate = evidence.words / speech
        if rate < cfg.min_words_per_speech_second:
            return Verdict("not_english", False, english,
                           f"{speech:.1f} s of speech gave {evidence.words} words ({rate:.2f} words/s, under "
                           f"{cfg.min_words_per_speech_second:g}): the English ASR did not hear English")
    if not text_scores:
        return Verdict("not_english", False, 0.0, "no transcript text to identify a language in")
    top, confidence = next(iter(text_scores.items()))
    if top != "en":
        return Verdict("not_english", False, english, f"language is {top} (confidence {confidence:.2f})")
    passed = english >= cfg.english_min_confidence
    return Verdict("not_english", passed, english, f"English confidence {english:.2f}"
                   + ("" if passed else f" under {cfg.english_min_confidence:g}"))


def transcript_quality(transcript: Transcript, cfg: FilterSettings) -> Verdict:
    """What the recogniser itself does not believe: low mean log-probability, or text that compresses
    like a loop (Whisper's own failure signals, weighted by segment length). Captions, and backends
    without these signals, pass."""
    scored = [s for s in transcript.segments if s.avg_logprob is not None and s.end > s.start]
    if not scored:
        return Verdict("transcript_quality", True, None, f"no recogniser confidence ({transcript.source})")
    total = sum(s.end - s.start for s in scored)
    logprob = sum(s.avg_logprob * (s.end - s.start) for s in scored) / total
    ratio = sum((s.compression_ratio or 0.0) * (s.end - s.start) for s in scored) / total
    problems = []
    if logprob < cfg.min_avg_logprob:
        problems.append(f"mean log-probability {logprob:.2f} under {cfg.min_avg_logprob:g}")
    if ratio > cfg.max_compression_ratio:
        problems.append(f"compression ratio {ratio:.2f} above {cfg.max_compression_ratio:g}")
    reason = "; ".join(problems) or f"mean log-probability {logprob:.2f}, compression ratio {ratio:.2f}"
    return Verdict("transcript_quality", not problems, round(logprob, 4), reason)


def repetitive(text: str, cfg: FilterSettings) -> Verdict:
    share = repetition_share(text)
    passed = share <= cfg.max_repetition
    return Verdict("repetitive", passed, round(share, 4), f"{share:.0%} of word 3-grams repeated"
                   + ("" if passed else f", above {cfg.max_repetition:.0%}"))


def caption_languages(video: Video) -> tuple[str, ...]:
    """Languages of the video's manual captions: listed by the platform, or files beside local media."""
    found = list(video.captions.get("manual", []))
    if video.source == "local" and video.url.startswith("file://"):
        found += sidecar_languages(Path(urllib.parse.unquote(urllib.parse.urlparse(video.url).path)))
    return tuple(dict.fromkeys(found))


ASR_FREE_SOURCES = ("captions", "auto_captions")  # transcript sources that are not our ASR


@stage("filters", sections=("filters", "search"), requires=("transcript", "audio"), version="2")
def run(video: Video, ctx: Context) -> StageResult:
    cfg = ctx.settings.filters
    vid = video.video_id
    transcript = Transcript.from_dict(read_input(ctx, vid, "transcript"))
    with ctx.store.local_path(input_key(ctx, vid, "audio", "audio.wav")) as wav:
        duration, dbfs = wav_loudness(wav)
        speech = speech_seconds(wav) if transcript.source not in ASR_FREE_SOURCES else None
    text = transcript.text
    language_scores = scores(text)
    language, confidence = next(iter(language_scores.items()), ("", 0.0))
    evidence = LanguageEvidence(language_scores, caption_languages(video), speech, len(_WORD.findall(text)))
    verdicts = [
        too_short(duration, cfg),
        silent(dbfs, count_tokens(text), cfg, speech),
        not_english(evidence, cfg),
        transcript_quality(transcript, cfg),
        repetitive(text, cfg),
        *metadata_verdicts(video, ctx),
    ]
    failed = next((v for v in verdicts if not v.passed), None)
    reason = f"{failed.name}: {failed.reason}" if failed else ""
    doc = {"kept": failed is None, "reason": reason, "language": language,
           "language_confidence": round(confidence, 4), "speech_seconds": speech,
           "verdicts": [v.to_dict() for v in verdicts]}
    ref = ctx.store.put_json(output_key(ctx, vid, "filters", "filters.json"), doc)
    summary = {"kept": failed is None, "language": language, "duration": round(duration, 3),
               "dbfs": round(dbfs, 2), "failed": [v.name for v in verdicts if not v.passed],
               "verdicts": doc["verdicts"]}  # also in the database: videos.jsonl needs them without the store
    return StageResult(artifacts=[ref], summary=summary, filtered=reason)


STAGE = run
