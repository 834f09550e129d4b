"""ffmpeg/ffprobe helpers. Paths are always absolute, so an id starting with '-' is never an option."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


class MediaError(RuntimeError):
    """A media file is corrupt, empty, or lacks the stream a stage needs."""

    permanent = True  # the same file fails the same way every time


def tool(name: str) -> str:
    """The path of an installed command-line tool, or a MediaError saying how to install it."""
    path = shutil.which(name)
    if path is None:
        raise MediaError(f"{name} is not installed (apt-get install ffmpeg)")
    return path


def run_ffmpeg(args: list[str], what: str) -> None:
    proc = subprocess.run([tool("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise MediaError(f"ffmpeg could not {what}: {last}")


@dataclass(frozen=True)
class Probe:
    duration: float
    has_video: bool
    has_audio: bool
    width: int = 0
    height: int = 0
    fps: float = 0.0


def probe(path: Path) -> Probe:
    """Streams and duration of a media file; MediaError when it is not one."""
    path = Path(path).resolve()
    if not path.is_file():
        raise MediaError(f"{path.name}: no such file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path.name}: empty file")
    proc = subprocess.run([tool("ffprobe"), "-v", "error", "-print_format", "json", "-show_format",
                           "-show_streams", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["unreadable"])[-1]
        raise MediaError(f"{path.name}: not a readable media file ({last})")
    info = json.loads(proc.stdout or "{}")
    streams = info.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not s.get("disposition", {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None and audio is None:
        raise MediaError(f"{path.name}: no audio or video stream")
    duration = float(info.get("format", {}).get("duration") or (video or audio).get("duration") or 0.0)
    fps = 0.0
    if video is not None and video.get("avg_frame_rate", "0/0") not in ("0/0", ""):
        num, den = video["avg_frame_rate"].split("/")
        fps = float(num) / float(den) if float(den) else 0.0
    return Probe(duration=duration, has_video=video is not None, has_audio=audio is not None,
                 width=int(video.get("width", 0)) if video else 0,
                 height=int(video.get("height", 0)) if video else 0, fps=fps)


def check_complete(path: Path, info: Probe) -> None:
    """MediaError when the video decodes for much less than its container says (a truncated
    download or copy), or not at all. Decodes only the codec's keyframes: cheap."""
    path = Path(path).resolve()
    proc = subprocess.run([tool("ffprobe"), "-v", "error", "-skip_frame", "nokey", "-select_streams", "v:0",
                           "-show_entries", "frame=best_effort_timestamp_time", "-of", "csv=p=0", str(path)],
                          capture_output=True, text=True)
    times = sorted(float(t) for t in re.findall(r"^\s*(\d+(?:\.\d+)?)", proc.stdout, flags=re.M))
    if not times:
        raise MediaError(f"undecodable: no video frame of {path.name} decodes")
    spacing = max((b - a for a, b in zip([0.0, *times], times)), default=0.0)
    gap = info.duration - times[-1]
    if gap > max(2 * spacing, 10.0, 0.05 * info.duration):
        raise MediaError(f"truncated: {times[-1]:.1f} of {info.duration:.1f} s decodable ({path.name})")


def extract_audio(src: Path, dst: Path, sample_rate: int = 16000) -> None:
    """Decode the audio track to mono 16-bit PCM WAV at ``sample_rate``."""
    info = probe(src)
    if not info.has_audio:
        raise MediaError(f"{Path(src).name}: no audio track")
    run_ffmpeg(["-i", str(Path(src).resolve()), "-vn", "-ac", "1", "-ar", str(sample_rate), "-c:a", "pcm_s16le",
                "-f", "wav", str(Path(dst).resolve())], "extract audio")
