"""WhisperX: batched Whisper plus wav2vec2 forced alignment, for the GPU worker image.

whisperx pulls in torch audio stacks that the CPU image does not carry, so it is imported only
here, and only when this backend is configured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textbook.records import Segment, Word
from textbook.transcript.asr import AsrError, check_wav

BATCH_SIZE = 16


def _import_whisperx() -> Any:
    try:
        import whisperx
    except ImportError as exc:
        raise AsrError("the whisperx ASR backend belongs to the GPU worker image (whisperx is not installed "
                       f"here: {exc}); use transcript.asr_backend=faster_whisper instead") from None
    return whisperx


def aligned_to_segments(segments: list[dict[str, Any]]) -> list[Segment]:
    """WhisperX's aligned segments -> ours. Words alignment could not place (digits, symbols)
    take the end of the word before them, so every word keeps a time."""
    out = []
    for s in segments:
        text = str(s.get("text", "")).strip()
        if not text:
            continue
        start, end = float(s["start"]), float(s["end"])
        words: list[Word] = []
        for w in s.get("words") or []:
            token = str(w.get("word", "")).strip()
            if not token:
                continue
            w_start = float(w["start"]) if w.get("start") is not None else (words[-1].end if words else start)
            w_end = float(w["end"]) if w.get("end") is not None else w_start
            words.append(Word(w_start, max(w_end, w_start), token))
        out.append(Segment(start, end, text, words or None))
    return out


class WhisperxAsr:
    name = "whisperx"

    def __init__(self, asr_model: str, device: str, compute_type: str) -> None:
        if not asr_model:
            raise AsrError("transcript.asr_model is empty: whisperx needs a Whisper model name or folder "
                           "(e.g. large-v3)")
        self.whisperx = _import_whisperx()
        self.device = device
        self.model = self.whisperx.load_model(asr_model, device, compute_type=compute_type)
        self._aligners: dict[str, tuple[Any, Any]] = {}  # language -> (model, metadata), loaded on first use

    def _aligner(self, language: str) -> tuple[Any, Any]:
        if language not in self._aligners:
            self._aligners[language] = self.whisperx.load_align_model(language_code=language, device=self.device)
        return self._aligners[language]

    def transcribe(self, wav: Path, language: str) -> list[Segment]:
        check_wav(wav)
        audio = self.whisperx.load_audio(str(wav))
        result = self.model.transcribe(audio, batch_size=BATCH_SIZE, language=language or None)
        if not result["segments"]:
            return []
        align_model, metadata = self._aligner(result.get("language") or language)
        aligned = self.whisperx.align(result["segments"], align_model, metadata, audio, self.device,
                                      return_char_alignments=False)
        return aligned_to_segments(aligned["segments"])
