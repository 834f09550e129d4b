"""Extract the audio track as 16 kHz mono WAV: the input of speech recognition and the loudness filter."""

from __future__ import annotations

import tempfile
import wave
from pathlib import Path

from textbook import media
from textbook.artifacts import output_key, read_input
from textbook.context import Context
from textbook.records import Video
from textbook.stages.base import StageResult, stage


@stage("audio", sections=("audio",), requires=("download",))
def run(video: Video, ctx: Context) -> StageResult:
    info = read_input(ctx, video.video_id, "download", "info.json")
    rate = ctx.settings.audio.sample_rate
    with tempfile.TemporaryDirectory(prefix="textbook-audio-") as tmp:
        wav = Path(tmp) / "audio.wav"
        with ctx.store.local_path(info["media_key"]) as src:
            media.extract_audio(src, wav, rate)  # MediaError "<file>: no audio track" when there is none
        with wave.open(str(wav), "rb") as w:
            duration = w.getnframes() / w.getframerate()
        ref = ctx.store.put_file(output_key(ctx, video.video_id, "audio", "audio.wav"), wav)
    return StageResult(artifacts=[ref], summary={"duration": round(duration, 3), "sample_rate": rate})


STAGE = run
