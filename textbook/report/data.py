"""Read an exported dataset folder back, using only the files the export wrote (FORMAT.md).

The report must work on any exported dataset, also one copied to another machine, so nothing
here touches the database or the artifact store: ``videos.jsonl``, the clip view, the OBELICS
shards and the files under ``images/`` are all there is.
"""

from __future__ import annotations

import json
import re
import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import yaml

from textbook.export.clipview import END_OF_VIDEO_CLIP
from textbook.records import UnsafeIdError, check_video_id

VIDEOS_FILE = "videos.jsonl"
TIMINGS = ".textbook/stage_seconds.jsonl"  # written by the compaction beside the data
CLIPS_GLOB = "clips/part-*.jsonl"
OBELICS_GLOB = "obelics/part-*.jsonl"
END_OF_VIDEO_VID = END_OF_VIDEO_CLIP["vid"]  # the clip view's pseudo-clip at a video boundary (FORMAT.md 3)

VIDEO_FIELDS = ("video_id", "status", "reason", "title", "duration", "verdicts", "counts", "exported")
CLIP_FIELDS = ("clip_start", "clip_end", "asr", "refined_asr", "keyframe_ssim", "ocr_deduplicates", "visual_kept")
SAMPLE_FIELDS = ("metadata", "image_num", "text_num", "token_num")
BROWSED_SAMPLES = 20  # samples the browser shows whole; the others are only counted
CARD_CONFIG = re.compile(r"^## Configuration\n+```yaml\n(.*?)^```", re.DOTALL | re.MULTILINE)


class ReportInputError(ValueError):
    """The folder is not an exported dataset, or one of its files does not follow FORMAT.md."""


@dataclass(frozen=True)
class SampleRow:
    """One OBELICS sample, as far as the report needs it."""

    index: int  # global sample index, as in obelics/shard_id_range.json
    shard: str
    video_ids: tuple[str, ...]  # in order of first appearance
    image_num: int
    text_num: int
    token_num: int
    images: tuple[str | None, ...] = ()  # the sample's interleaved lists, for the first BROWSED_SAMPLES only
    texts: tuple[str | None, ...] = ()
    text_ocr: tuple[str | None, ...] = ()  # text_ocr_list: each text with its clip's OCR lines after it


@dataclass(frozen=True)
class Dataset:
    root: Path
    videos: list[dict[str, Any]]  # videos.jsonl, in file order
    clips: dict[str, list[dict[str, Any]]]  # video id -> its clip-view records in time order
    samples: list[SampleRow]
    config: dict[str, Any] = field(default_factory=dict)  # the card's "Configuration": settings the videos had
    # The videos the report gives pages (and clips, keyframes and duplicate checks) to: all of them,
    # or, above ``load_dataset``'s ``max_videos``, a fixed sample; the funnel and statistics count all.
    shown: frozenset[str] = frozenset()

    @property
    def sampled(self) -> bool:
        return len(self.shown) < len(self.videos)

    @cached_property
    def _by_video(self) -> dict[str, list[SampleRow]]:
        out: dict[str, list[SampleRow]] = {}
        for sample in self.samples:
            for vid in sample.video_ids:
                out.setdefault(vid, []).append(sample)
        return out

    def samples_of(self, video_id: str) -> list[SampleRow]:
        return self._by_video.get(video_id, [])


def _lines(root: Path, path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``file:line`` for error messages, JSON object) for each non-empty line."""
    rel = path.relative_to(root).as_posix()
    with open(path, encoding="utf-8") as fh:  # line by line: a corpus's videos.jsonl is large
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{rel}:{number}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReportInputError(f"{where}: not valid JSON ({exc})") from None
            if not isinstance(obj, dict):
                raise ReportInputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            yield where, obj


def _require(obj: dict[str, Any], fields: tuple[str, ...], where: str) -> None:
    missing = [f for f in fields if f not in obj]
    if missing:
        raise ReportInputError(f"{where}: missing field(s) {', '.join(missing)}")


def _video_id(value: Any, where: str) -> str:
    try:
        return check_video_id(value)
    except UnsafeIdError as exc:
        raise ReportInputError(f"{where}: {exc}") from None


def dataset_path(path: str, where: str) -> str:
    """A keyframe path from the data as a path relative to the dataset root.

    Paths are relative by default; with export.absolute_paths they are absolute, and the dataset
    may have moved since, so an absolute path is cut back to its ``images/<video_id>/<file>`` tail.
    """
    parts = PurePosixPath(path).parts
    if PurePosixPath(path).is_absolute():
        parts = parts[-3:]
        if len(parts) != 3 or parts[0] != "images":
            raise ReportInputError(f"{where}: absolute image path {path!r} does not end in images/<video_id>/<file>")
    if not parts or any(p in ("", ".", "..") for p in parts):
        raise ReportInputError(f"{where}: image path {path!r} leaves the dataset folder")
    return "/".join(parts)


def _read_videos(root: Path) -> list[dict[str, Any]]:
    path = root / VIDEOS_FILE
    if not path.is_file():
        raise ReportInputError(f"{path}: missing; is {root} an exported dataset folder?")
    videos, seen = [], set()
    for where, row in _lines(root, path):
        _require(row, VIDEO_FIELDS, where)
        vid = _video_id(row["video_id"], where)
        if vid in seen:
            raise ReportInputError(f"{where}: video {vid!r} has a second line")
        seen.add(vid)
        videos.append(row)
    return videos


def _read_clips(root: Path, shown: frozenset[str]) -> dict[str, list[dict[str, Any]]]:
    clips: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(root.glob(CLIPS_GLOB)):
        for where, sample in _lines(root, path):
            conversations = sample.get("conversations")
            if not isinstance(conversations, list):
                raise ReportInputError(f"{where}: expected a 'conversations' list")
            for n, clip in enumerate(conversations):
                if clip.get("vid") == END_OF_VIDEO_VID:
                    continue
                at = f"{where} conversations[{n}]"
                _require(clip, ("vid", *CLIP_FIELDS), at)
                vid = _video_id(clip["vid"], at)
                if vid not in shown:
                    continue
                record = dict(clip)
                keyframes = clip["keyframe_ssim"] + clip.get("keyframe_ssim_dropped", [])  # dropped ones shown too
                record["keyframe_ssim"] = [dataset_path(p, at) for p in keyframes]
                clips.setdefault(vid, []).append(record)
    for records in clips.values():
        records.sort(key=lambda c: (c["clip_start"], c["clip_end"]))
    return clips


def _read_samples(root: Path) -> list[SampleRow]:
    samples = []
    for path in sorted(root.glob(OBELICS_GLOB)):
        for where, row in _lines(root, path):
            _require(row, SAMPLE_FIELDS, where)
            vids: dict[str, None] = {}
            for n, meta in enumerate(row["metadata"]):
                vid = meta.get("video_id") if isinstance(meta, dict) else None
                vids[_video_id(vid, f"{where} metadata[{n}]")] = None
            whole = len(samples) < BROWSED_SAMPLES
            images = tuple(_image(p, where) for p in row.get("images") or []) if whole else ()
            samples.append(SampleRow(len(samples), f"obelics/{path.name}", tuple(vids), int(row["image_num"]),
                                     int(row["text_num"]), int(row["token_num"]), images,
                                     tuple(row.get("texts") or []) if whole else (),
                                     tuple(row.get("text_ocr_list") or []) if whole else ()))
    return samples


def _image(path: Any, where: str) -> str | None:
    return dataset_path(path, where) if isinstance(path, str) else None


def read_card_config(root: Path) -> dict[str, Any]:
    """The settings block of the dataset card (README.md), {} when there is none or it does not parse:
    the report then shows scores without thresholds rather than failing."""
    card = root / "README.md"
    match = CARD_CONFIG.search(card.read_text(encoding="utf-8")) if card.is_file() else None
    try:
        config = yaml.safe_load(match.group(1)) if match else {}
    except yaml.YAMLError:
        return {}
    return config if isinstance(config, dict) else {}


def _add_stage_seconds(root: Path, videos: list[dict[str, Any]]) -> None:
    """Each video's ``stage_seconds`` from the exporter's bookkeeping (timings are not data: the
    dataset's files stay the same bytes whatever the run took), {} where it is not there."""
    path = root / TIMINGS
    times = {row["video_id"]: row.get("stage_seconds") or {} for _, row in _lines(root, path)} if path.is_file() else {}
    for video in videos:
        video["stage_seconds"] = times.get(video["video_id"], {})


def shown_videos(video_ids: list[str], max_videos: int) -> frozenset[str]:
    """Every video, or ``max_videos`` of them chosen by a hash of their ids: the same ones each
    time, and a video once chosen stays chosen as the corpus grows only if its hash stays low."""
    if len(video_ids) <= max_videos:
        return frozenset(video_ids)
    return frozenset(sorted(video_ids, key=lambda v: hashlib.sha256(v.encode()).digest())[:max_videos])


def load_dataset(root: Path, max_videos: int = 500) -> Dataset:
    """The dataset's files; clips only of the videos the report shows (``shown_videos``)."""
    root = Path(root)
    if not root.is_dir():
        raise ReportInputError(f"{root}: not a folder")
    videos = _read_videos(root)
    _add_stage_seconds(root, videos)
    shown = shown_videos([v["video_id"] for v in videos], max_videos)
    return Dataset(root=root, videos=videos, clips=_read_clips(root, shown), samples=_read_samples(root),
                   config=read_card_config(root), shown=shown)
