"""CMU PocketSphinx with its bundled US English model: offline, CPU-only, and weak.

Its word error rate on lectures is high; it exists so the pipeline runs end to end on any machine.
Voice activity detection cuts the audio into utterances, each is decoded alone, and the decoder's
word segmentation gives word times; words are then grouped into segments at pauses.
"""

from __future__ import annotations

import re
import wave
from pathlib import Path

from pocketsphinx import Decoder, Segmenter

from textbook.records import Segment, Word
from textbook.transcript.asr import AsrError, check_wav

SAMPLE_RATE = 16000
PAUSE_SECONDS = 0.5  # a silence this long between words ends a segment
MAX_SEGMENT_SECONDS = 15.0
_ALTERNATE = re.compile(r"\(\d+\)$")  # "the(2)": second pronunciation of "the"


def _is_word(token: str) -> bool:
    """Decoder tokens that are speech, not <s>, </s>, <sil>, [NOISE] or +FILLER+."""
    return bool(token) and token[0] not in "<[+"


def group_words(words: list[Word], pause: float = PAUSE_SECONDS,
                max_seconds: float = MAX_SEGMENT_SECONDS) -> list[Segment]:
    """Consecutive words -> segments, split where the speaker pauses or a segment grows too long."""
    segments: list[Segment] = []
    current: list[Word] = []
    for word in words:
        if current and (word.start - current[-1].end >= pause or word.end - current[0].start > max_seconds):
            segments.append(Segment(current[0].start, current[-1].end, " ".join(w.text for w in current), current))
            current = []
        current.append(word)
    if current:
        segments.append(Segment(current[0].start, current[-1].end, " ".join(w.text for w in current), current))
    return segments


class PocketsphinxAsr:
    name = "pocketsphinx"

    def __init__(self) -> None:
        self.decoder = Decoder(loglevel="FATAL")
        self.frame_rate = int(self.decoder.config["frate"])

    def transcribe(self, wav: Path, language: str) -> list[Segment]:
        if language and language.split("-")[0] != "en":
            raise AsrError(f"pocketsphinx ships an English model only; cannot transcribe {language!r}")
        check_wav(wav, SAMPLE_RATE)
        words: list[Word] = []
        with wave.open(str(wav), "rb") as w:
            for utterance in Segmenter(sample_rate=SAMPLE_RATE).segment(w.getfp()):
                words += self._decode(utterance.pcm, utterance.start_time)
        return group_words(words)

    def _decode(self, pcm: bytes, offset: float) -> list[Word]:
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        return [Word(round(offset + s.start_frame / self.frame_rate, 3),
                     round(offset + (s.end_frame + 1) / self.frame_rate, 3), _ALTERNATE.sub("", s.word))
                for s in self.decoder.seg() if _is_word(s.word)]
