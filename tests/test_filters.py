"""Rule filters (too short, silent, not English, repetitive, metadata) on real audio, and the stage."""

from __future__ import annotations

import re
import time

import pytest

from state_helpers import finish_stage
from media_helpers import ENGLISH, FRENCH, ffmpeg, pad_wav, register_downloaded, silence_wav, speech_wav, \
    video_with_audio
from textbook.artifacts import read_input
from textbook.config import FilterSettings
from textbook.context import Context
from textbook.language import detect, scores
from textbook.records import Segment, Transcript, Video
from textbook.runner import run_stage
from textbook.stages import audio, filters, transcript
from textbook.stages.metadata import declared_language, duration_bounds
from textbook.stages.filters import (not_english, repetition_share, repetitive,
                                     silent, too_short, wav_loudness)

CFG = FilterSettings()


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("filters")
    english = speech_wav(folder / "english.wav", ENGLISH)
    return {
        "english_15s": pad_wav(english, folder / "english15.wav", 15.0),
        "silence_5s": silence_wav(folder / "silence5.wav", 5.0),
    }


def test_loudness_of_speech_and_of_silence(media):
    duration, dbfs = wav_loudness(media["english_15s"])
    assert duration == pytest.approx(15.0, abs=0.01)
    assert -40 < dbfs < -5
    duration, dbfs = wav_loudness(media["silence_5s"])
    assert duration == pytest.approx(5.0, abs=0.01) and dbfs == -120.0


def test_language_identification():
    started = time.perf_counter()
    assert detect(ENGLISH)[0] == "en" and detect(ENGLISH)[1] > 0.9
    assert detect(FRENCH)[0] == "fr" and detect(FRENCH)[1] > 0.9
    assert time.perf_counter() - started < 10  # load + detect; about 0.3 s measured
    assert detect("") == ("", 0.0) and detect("12 + 7 = 19") == ("", 0.0)
    assert abs(sum(scores(ENGLISH).values()) - 1.0) < 1e-6


def test_repetition_share():
    assert repetition_share(ENGLISH) == 0.0
    assert repetition_share("la la la la la la la la") == pytest.approx(5 / 6)
    assert repetition_share("subscribe now " * 20) > 0.9
    assert repetition_share("two words") == 0.0


def test_rule_verdicts_have_scores_and_reasons():
    assert too_short(9.5, CFG).passed is False and "under 10 s" in too_short(9.5, CFG).reason
    assert too_short(10.0, CFG).passed
    quiet = silent(-70.0, 3, CFG)
    assert not quiet.passed and quiet.score == -70.0
    assert "under -50 dBFS" in quiet.reason and "3 transcript tokens, fewer than 20" in quiet.reason
    assert silent(-20.0, 40, CFG).passed
    french = not_english(scores(FRENCH), CFG)
    assert not french.passed and french.reason.startswith("language is fr") and french.score < 0.1
    assert not_english(scores(ENGLISH), CFG).passed
    assert not not_english({}, CFG).passed
    loop = repetitive("buy now " * 30, CFG)
    assert not loop.passed and loop.score > 0.9 and "above 50%" in loop.reason
    assert repetitive(ENGLISH, CFG).passed


def test_metadata_rules(ctx):
    assert duration_bounds(Video("a", "u", duration=5.0), ctx).passed is False
    assert duration_bounds(Video("a", "u", duration=600.0), ctx).passed
    assert duration_bounds(Video("a", "u", duration=5 * 3600.0), ctx).passed is False
    assert duration_bounds(Video("a", "u"), ctx).reason == "duration unknown"
    assert declared_language(Video("a", "u", language="fr"), ctx).passed is False
    assert declared_language(Video("a", "u", language="en-US"), ctx).passed
    assert declared_language(Video("a", "u"), ctx).passed
    assert declared_language(Video("a", "u", captions={"manual": ["fr"], "auto": ["en"]}), ctx).passed is False
    assert declared_language(Video("a", "u", captions={"manual": ["fr", "en-GB"]}), ctx).passed


def _prepared(ctx: Context, vid: str, wav, transcript_text: str, tmp_path, duration: float | None = None,
              language: str = "") -> None:
    """A downloaded video with its audio extracted (for real) and a transcript written as the stage would."""
    register_downloaded(ctx, vid, video_with_audio(tmp_path / f"{vid}.mp4", wav), duration=duration)
    if language:
        ctx.db.update_video_meta(vid, {"language": language})
    run_stage(audio.STAGE, vid, ctx)
    transcript = Transcript("captions", "en", [Segment(0.0, 5.0, transcript_text)] if transcript_text else [])
    finish_stage(ctx, vid, "transcript", files={"transcript.json": transcript.to_dict()})


def test_stage_keeps_an_english_lecture(ctx, media, tmp_path):
    _prepared(ctx, "eng_ok", media["english_15s"], ENGLISH, tmp_path, duration=15.0)
    outcome = run_stage(filters.STAGE, "eng_ok", ctx)
    assert outcome.status == "done" and not outcome.filtered
    doc = read_input(ctx, "eng_ok", "filters")
    assert doc["kept"] is True and doc["reason"] == "" and doc["language"] == "en"
    assert doc["language_confidence"] > 0.9
    names = [v["name"] for v in doc["verdicts"]]
    assert names == ["too_short", "silent", "not_english", "transcript_quality", "repetitive", "metadata_duration",
                     "metadata_language"]
    assert all(v["passed"] for v in doc["verdicts"])


def test_stage_drops_a_short_silent_clip_and_reports_every_rule(ctx, media, tmp_path):
    _prepared(ctx, "-quiet_1", media["silence_5s"], "", tmp_path, duration=5.0)
    outcome = run_stage(filters.STAGE, "-quiet_1", ctx)
    assert outcome.filtered and re.match(r"too_short: duration 5\.\d s under 10 s$", outcome.reason)
    doc = read_input(ctx, "-quiet_1", "filters")
    failed = {v["name"] for v in doc["verdicts"] if not v["passed"]}
    assert failed == {"too_short", "silent", "not_english", "metadata_duration"}
    assert doc["kept"] is False and doc["reason"] == outcome.reason
    assert ctx.db.video("-quiet_1").status == "filtered"


def test_stage_drops_french_and_repetitive_transcripts(ctx, media, tmp_path):
    _prepared(ctx, "french", media["english_15s"], FRENCH, tmp_path)
    outcome = run_stage(filters.STAGE, "french", ctx)
    assert outcome.reason.startswith("not_english: language is fr")
    assert read_input(ctx, "french", "filters")["language"] == "fr"

    _prepared(ctx, "loop", media["english_15s"], "click the link below and subscribe " * 10, tmp_path)
    assert run_stage(filters.STAGE, "loop", ctx).reason.startswith("repetitive:")


def test_stage_drops_a_video_listed_in_another_language(ctx, media, tmp_path):
    """Without captions an English-only recogniser turns French into English-looking words; the
    platform's language field still says what the talk is in."""
    _prepared(ctx, "listed_fr", media["english_15s"], ENGLISH, tmp_path, language="fr")
    assert run_stage(filters.STAGE, "listed_fr", ctx).reason == "metadata_language: listed language fr, not English"


LECTURE_EN = ENGLISH + " Energy is conserved in a closed system, so the total stays the same while its form changes."
LECTURE_FR = FRENCH + " L'énergie se conserve dans un système fermé, donc le total reste le même."


@pytest.fixture(scope="module")
def narrations(tmp_path_factory):
    """Real narration, transcribed by the default ASR in the tests below: English, French, and English
    played backwards (speech-like sound in no language: what an ASR turns into confident-looking garbage)."""
    folder = tmp_path_factory.mktemp("narration")
    english = speech_wav(folder / "en.wav", LECTURE_EN)
    backwards = folder / "backwards.wav"
    ffmpeg("-i", str(english), "-af", "areverse", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", str(backwards))
    return {"english": english, "french": speech_wav(folder / "fr.wav", LECTURE_FR, voice="fr"),
            "backwards": backwards}


def _through_asr(ctx: Context, vid: str, wav, tmp_path) -> dict:
    """Download as a local file (no metadata, no captions), audio, the default ASR, then the filters."""
    register_downloaded(ctx, vid, video_with_audio(tmp_path / f"{vid}.mp4", wav))
    for stage in (audio.STAGE, transcript.STAGE, filters.STAGE):
        run_stage(stage, vid, ctx)
    return read_input(ctx, vid, "filters")


@pytest.mark.slow
def test_default_asr_lectures_english_kept_french_and_garbage_filtered_with_reasons(ctx, narrations, tmp_path):
    english = _through_asr(ctx, "lecture_en", narrations["english"], tmp_path)
    assert english["kept"], english["reason"]
    assert english["speech_seconds"] > 10

    french = _through_asr(ctx, "lecture_fr", narrations["french"], tmp_path)
    assert re.match(r"not_english: \d+\.\d s of speech gave \d+ words", french["reason"]), french["reason"]

    # Backwards speech comes out of tiny.en as a few words or as fluent-looking nonsense, depending on
    # the encoding: either the words-per-second evidence or Whisper's own confidence drops it.
    garbage = _through_asr(ctx, "garbage", narrations["backwards"], tmp_path)
    assert not garbage["kept"]
    quality = next(v for v in garbage["verdicts"] if v["name"] == "transcript_quality")
    assert garbage["reason"].startswith("not_english: ") or (
        garbage["reason"].startswith("transcript_quality: mean log-probability")
        and quality["score"] < CFG.min_avg_logprob), garbage["reason"]


def test_transcript_quality_reads_whisper_signals_and_lets_captions_pass():
    good = Transcript("faster_whisper", "en", [Segment(0, 4, "a", avg_logprob=-0.2, compression_ratio=1.5),
                                               Segment(4, 5, "b", avg_logprob=-1.5, compression_ratio=1.5)])
    assert filters.transcript_quality(good, CFG).passed  # weighted by length: -0.46
    unsure = Transcript("faster_whisper", "en", [Segment(0, 4, "a", avg_logprob=-1.2, compression_ratio=1.5)])
    assert "mean log-probability -1.20 under -0.8" in filters.transcript_quality(unsure, CFG).reason
    loop = Transcript("faster_whisper", "en", [Segment(0, 4, "a", avg_logprob=-0.3, compression_ratio=2.6)])
    assert not filters.transcript_quality(loop, CFG).passed
    assert filters.transcript_quality(Transcript("captions", "en", [Segment(0, 4, "a")]), CFG).passed


def test_captions_beside_local_media_count_as_language_evidence(ctx, tmp_path):
    media = tmp_path / "cours.mp4"
    media.write_bytes(b"")
    (tmp_path / "cours.fr.vtt").write_text("WEBVTT\n")
    video = Video("cours", media.as_uri(), source="local")
    assert filters.caption_languages(video) == ("fr",)
    evidence = filters.LanguageEvidence(scores(ENGLISH), filters.caption_languages(video))
    assert not_english(evidence, CFG).reason == "captions only in fr, none in English"
    (tmp_path / "cours.en.srt").write_text("")
    assert not_english(filters.LanguageEvidence(scores(ENGLISH), filters.caption_languages(video)), CFG).passed
