"""faster-whisper (CTranslate2 Whisper) from a local model folder: good transcripts on CPU or GPU.

The folder is a converted model (``ct2-transformers-converter`` output, or a downloaded
``Systran/faster-whisper-*`` snapshot) holding ``model.bin`` and ``tokenizer.json``; naming a
folder keeps workers offline and every worker on the same weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from textbook.records import Segment, Word
from textbook.transcript.asr import AsrError, check_wav

REQUIRED_FILES = ("model.bin", "tokenizer.json")


def model_folder(asr_model: str) -> Path:
    """The model folder ``transcript.asr_model`` names; AsrError saying what is missing otherwise."""
    if not asr_model:
        raise AsrError("transcript.asr_model is empty: faster_whisper needs the folder of a CTranslate2 Whisper "
                       "model (e.g. a Systran/faster-whisper-small snapshot)")
    folder = Path(asr_model).expanduser()
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
        out.append(Segment(float(s.start), float(s.end), text, words or None))
    return out


class FasterWhisperAsr:
    name = "faster_whisper"

    def __init__(self, asr_model: str, device: str = "cpu", compute_type: str = "int8") -> None:
        from faster_whisper import WhisperModel

        self.model = WhisperModel(str(model_folder(asr_model)), device=device, compute_type=compute_type)

    def transcribe(self, wav: Path, language: str) -> list[Segment]:
        check_wav(wav)
        segments, _info = self.model.transcribe(str(wav), language=language or None, word_timestamps=True,
                                                vad_filter=True)
        return to_segments(segments)
