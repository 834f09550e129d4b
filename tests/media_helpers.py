"""Real audio/video for the audio, transcript and filter tests: espeak-ng speech, ffmpeg silence and tones.

Everything is tiny (16 kHz mono, 64x48 video at 5 fps) because the test machine is small.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from textbook import keys
from textbook.context import Context
from textbook.artifacts import output_key
from textbook.records import Video

from state_helpers import finish_stage

ENGLISH = ("Today we will learn about the history of the city and the people who live there. "
           "The river runs through the middle of the town and the market opens every morning.")
FRENCH = ("Aujourd'hui nous allons apprendre l'histoire de la ville et des gens qui y habitent. "
          "La rivière traverse le centre de la ville et le marché ouvre chaque matin.")


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed; the media tests need it (apt-get install {tool})")
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run([need("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def speech_wav(path: Path, text: str, voice: str = "en-us", speed: int = 120) -> Path:
    """``text`` spoken by espeak-ng, as 16 kHz mono 16-bit WAV."""
    raw = path.with_suffix(".espeak.wav")
    subprocess.run([need("espeak-ng"), "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
    ffmpeg("-i", str(raw), "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", str(path))
    raw.unlink()
    return path


def silence_wav(path: Path, seconds: float) -> Path:
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", str(seconds), "-c:a", "pcm_s16le", str(path))
    return path


def pad_wav(src: Path, dst: Path, seconds: float) -> Path:
    """``src`` followed by silence up to ``seconds`` (espeak-ng speaks fast; filters want long videos)."""
    ffmpeg("-i", str(src), "-af", f"apad=whole_dur={seconds}", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le",
            str(dst))
    return dst


def video_with_audio(path: Path, wav: Path) -> Path:
    """A small colour video as long as ``wav``, with ``wav`` as its AAC audio track."""
    ffmpeg("-f", "lavfi", "-i", "color=c=navy:s=64x48:r=5", "-i", str(wav), "-shortest",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "32k", str(path))
    return path


def video_without_audio(path: Path, seconds: float) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"color=c=green:s=64x48:r=5:d={seconds}", "-c:v", "libx264",
            "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))
    return path


def mark_done(ctx: Context, video_id: str, stage_name: str, result: dict | None = None) -> None:
    """Record ``stage_name`` as finished for ``video_id`` with the current config, as the runner would."""
    finish_stage(ctx, video_id, stage_name, result=result)


def register_downloaded(ctx: Context, video_id: str, media: Path, captions: list[tuple[str, str, str, str]] = (),
                        duration: float | None = None) -> Video:
    """A video as the download stage leaves it: row in the DB, media + captions + info.json in the store.

    ``captions``: (lang, kind, ext, text) tuples.
    """
    video = Video(video_id=video_id, url=f"file://{media}", source="local", title="test video", duration=duration)
    ctx.db.add_video(video)
    media_name = keys.media_name(media.suffix.lstrip("."))
    caption_files = {keys.captions_name(lang, kind, ext): text.encode() for lang, kind, ext, text in captions}
    caption_docs = [{"lang": lang, "kind": kind, "key": output_key(ctx, video_id, "download",
                                                                   keys.captions_name(lang, kind, ext)), "ext": ext}
                    for lang, kind, ext, _ in captions]
    info = {"video_id": video_id, "media_key": output_key(ctx, video_id, "download", media_name),
            "captions": caption_docs, "duration": duration, "has_audio": True, "width": 64, "height": 48}
    finish_stage(ctx, video_id, "metadata", result={"kept": True, "verdicts": []})
    finish_stage(ctx, video_id, "download", result={"duration": duration},
                 files={media_name: media, **caption_files, "info.json": info})
    return video


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level Levenshtein distance over the reference's length (case and punctuation ignored)."""
    ref, hyp = re.findall(r"[a-z0-9']+", reference.lower()), re.findall(r"[a-z0-9']+", hypothesis.lower())
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(1, len(ref))
