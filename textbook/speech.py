"""How many seconds of a recording are speech, by the Silero voice-activity model faster-whisper ships.

The filters compare this with what the transcript holds: a recogniser that turns 20 s of speech
into no words at all did not hear its language (an English-only Whisper on French, for one), and
a transcript with no speech behind it is silence or music. The model (an ONNX file inside the
faster-whisper wheel) runs offline on the CPU at several hundred times realtime.
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_RATE = 16000


def speech_seconds(wav: Path) -> float:
    """Seconds of ``wav`` (16 kHz mono) that voice-activity detection marks as speech."""
    from faster_whisper.audio import decode_audio
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    audio = decode_audio(str(wav), sampling_rate=SAMPLE_RATE)
    spans = get_speech_timestamps(audio, VadOptions(), sampling_rate=SAMPLE_RATE)
    return round(sum(s["end"] - s["start"] for s in spans) / SAMPLE_RATE, 3)
