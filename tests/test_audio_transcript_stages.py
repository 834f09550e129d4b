"""The audio and transcript stages through the runner, on real media (espeak-ng speech muxed by ffmpeg)."""

from __future__ import annotations

import re
import wave

import pytest

from media_helpers import ENGLISH, register_downloaded, speech_wav, video_with_audio, video_without_audio
from textbook.artifacts import input_key, read_input
from textbook.context import Context
from textbook.records import Transcript
from textbook.runner import StageFailed, run_stage
from textbook.stages import audio, transcript
from textbook.stages.transcript import caption_choices
from textbook.tokens import count_tokens

MANUAL_VTT = "WEBVTT\n\n00:00.500 --> 00:03.000\nToday we will learn\n\n00:03.000 --> 00:06.000\nabout the city.\n"
AUTO_VTT = ("WEBVTT\nKind: captions\nLanguage: en\n\n"
            "00:00:00.500 --> 00:00:03.000 align:start position:0%\n \n"
            "today<00:00:01.000><c> we</c><00:00:01.400><c> learn</c>\n\n"
            "00:00:03.000 --> 00:00:03.010 align:start position:0%\ntoday we learn\n \n\n"
            "00:00:03.010 --> 00:00:06.000 align:start position:0%\ntoday we learn\n"
            "about<00:00:03.500><c> the</c><00:00:04.000><c> city</c>\n")
FRENCH_SRT = "1\n00:00:00,500 --> 00:00:03,000\nAujourd'hui nous apprenons\n"


@pytest.fixture(scope="module")
def speech_mp4(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stages")
    return video_with_audio(folder / "talk.mp4", speech_wav(folder / "talk.wav", ENGLISH))


def _with_audio(ctx: Context, vid: str, mp4, captions=()) -> None:
    register_downloaded(ctx, vid, mp4, captions=list(captions))
    run_stage(audio.STAGE, vid, ctx)


def test_audio_stage_writes_16k_mono_wav(ctx, speech_mp4):
    register_downloaded(ctx, "talk_1", speech_mp4)
    outcome = run_stage(audio.STAGE, "talk_1", ctx)
    assert outcome.status == "done"
    with ctx.store.local_path(input_key(ctx, "talk_1", "audio", "audio.wav")) as path, wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        duration = w.getnframes() / 16000
    assert 8 < duration < 20 and outcome.summary["duration"] == pytest.approx(duration, abs=0.001)
    run = ctx.db.run("talk_1", "audio")
    assert run.artifacts[0]["key"] == input_key(ctx, "talk_1", "audio", "audio.wav")
    assert run_stage(audio.STAGE, "talk_1", ctx).status == "cached"


def test_audio_stage_fails_clearly_without_an_audio_track(ctx, tmp_path):
    register_downloaded(ctx, "mute", video_without_audio(tmp_path / "mute.mp4", 2.0))
    with pytest.raises(StageFailed, match=r"mute: audio failed: MediaError: media\.mp4: no audio track"):
        run_stage(audio.STAGE, "mute", ctx)
    assert ctx.db.run("mute", "audio").status == "failed"


def _transcript(ctx: Context, vid: str) -> Transcript:
    return Transcript.from_dict(read_input(ctx, vid, "transcript"))


def test_manual_captions_are_preferred(ctx, speech_mp4):
    _with_audio(ctx, "both", speech_mp4, [("en", "auto", "vtt", AUTO_VTT), ("fr", "manual", "srt", FRENCH_SRT),
                                          ("en", "manual", "vtt", MANUAL_VTT)])
    outcome = run_stage(transcript.STAGE, "both", ctx)
    assert outcome.summary == {"source": "captions", "segments": 2, "tokens": 8}  # textbook.tokens: punctuation counts
    t = _transcript(ctx, "both")
    assert t.source == "captions" and t.language == "en" and t.text == "Today we will learn about the city."


def test_auto_captions_are_the_fallback_and_deduplicated(ctx, speech_mp4):
    _with_audio(ctx, "auto_only", speech_mp4, [("en", "auto", "vtt", AUTO_VTT)])
    outcome = run_stage(transcript.STAGE, "auto_only", ctx)
    t = _transcript(ctx, "auto_only")
    assert t.source == "auto_captions" and t.text == "today we learn about the city"
    assert outcome.summary["tokens"] == 6
    assert [w.start for s in t.segments for w in s.words] == [0.5, 1.0, 1.4, 3.01, 3.5, 4.0]


def test_asr_runs_without_usable_captions(ctx, speech_mp4):
    """French captions are not English ones, and a broken English file is skipped with its reason."""
    broken = "WEBVTT\n\n00:00:01.000 --> 00:00:xx.000\nhello\n"
    _with_audio(ctx, "asr_1", speech_mp4, [("fr", "manual", "srt", FRENCH_SRT), ("en", "manual", "vtt", broken)])
    outcome = run_stage(transcript.STAGE, "asr_1", ctx)
    t = _transcript(ctx, "asr_1")
    assert t.source == "faster_whisper" == outcome.summary["source"]
    assert "line 3: bad timestamp" in outcome.summary["rejected_captions"][0]
    heard = set(re.findall(r"[a-z']+", t.text.lower()))
    assert len(heard & set(re.findall(r"[a-z']+", ENGLISH.lower()))) >= 5
    assert all(s.words for s in t.segments) and outcome.summary["tokens"] == count_tokens(t.text)
    assert all(s.avg_logprob is not None and s.compression_ratio is not None for s in t.segments)


def test_captions_can_be_ignored_and_auto_captions_refused(settings, speech_mp4):
    ctx = Context.from_settings(settings.replace(transcript={"prefer_captions": False}))
    _with_audio(ctx, "no_caps", speech_mp4, [("en", "manual", "vtt", MANUAL_VTT)])
    assert run_stage(transcript.STAGE, "no_caps", ctx).summary["source"] == "faster_whisper"

    tracks = [{"lang": "en", "kind": "auto", "key": "a", "ext": "vtt"}]
    assert caption_choices(tracks, "en", allow_auto=False) == []


def test_caption_choice_order():
    tracks = [
        {"lang": "en", "kind": "auto"}, {"lang": "en-orig", "kind": "auto"}, {"lang": "en-GB", "kind": "manual"},
        {"lang": "en", "kind": "manual"}, {"lang": "de", "kind": "manual"}, {"lang": "english", "kind": "manual"},
    ]
    chosen = caption_choices(tracks, "en", allow_auto=True)
    assert [(t["lang"], t["kind"]) for t in chosen] == [("en", "manual"), ("en-GB", "manual"),
                                                         ("en-orig", "auto"), ("en", "auto")]
