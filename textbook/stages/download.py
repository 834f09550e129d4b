"""Download a video (720p cap, with audio) and its English captions; record what was fetched."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from textbook import keys, media
from textbook.artifacts import output_key
from textbook.context import Context
from textbook.records import Video
from textbook.sources.ytdlp import FetchError, YtdlpLog, available_captions, base_options, extract
from textbook.stages.base import StageResult, stage
from textbook.store import ArtifactRef

CAPTION_EXTS = ("vtt", "srt")


def _ytdlp_fetch(video: Video, ctx: Context, tmp: Path) -> tuple[Path, list[tuple[str, str, Path]], dict[str, Any]]:
    cfg = ctx.settings.download
    h = cfg.max_height
    said = YtdlpLog()
    opts = {
        **base_options(cfg, said),
        "format": f"bv*[height<={h}]+ba/b[height<={h}]/bv*+ba/b",
        "merge_output_format": "mp4",
        "noplaylist": True,
        "outtmpl": {"default": str(tmp / "media.%(ext)s")},
        "writesubtitles": True,
        "writeautomaticsub": ctx.settings.download.auto_captions,
        "subtitleslangs": list(cfg.caption_languages),
        "subtitlesformat": "vtt/srt/best",
    }
    info = extract(video.url, opts, download=True, cfg=cfg)
    files = [p for p in tmp.iterdir() if p.name.startswith("media.") and p.suffix.lstrip(".") not in CAPTION_EXTS
             and not p.name.endswith(".part")]
    if not files:
        if too_big := said.said("larger than max-filesize"):
            raise FetchError("too_big", f"{too_big.strip()} (download.max_filesize {cfg.max_filesize})")
        raise FetchError("download_error", "yt-dlp finished without writing a media file")
    manual = set(info.get("subtitles") or {})
    captions = []
    for lang, sub in sorted((info.get("requested_subtitles") or {}).items()):
        path = Path(sub.get("filepath") or "")
        if path.is_file() and sub.get("ext") in CAPTION_EXTS:
            captions.append((lang, "manual" if lang in manual else "auto", path))
    return files[0], captions, info


def _local_fetch(video: Video, ctx: Context) -> tuple[Path, list[tuple[str, str, Path]], dict[str, Any]]:
    path = Path(unquote(urlparse(video.url).path))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    captions = []
    for lang in ctx.settings.download.caption_languages:
        for ext in CAPTION_EXTS:
            side = path.with_name(f"{path.stem}.{lang}.{ext}")
            if side.is_file():
                captions.append((lang, "manual", side))
                break
    return path, captions, {"title": video.title}


def _metadata(video: Video, info: dict[str, Any], probe: media.Probe) -> dict[str, Any]:
    return {
        "title": info.get("title") or video.title,
        "description": info.get("description") or video.description,
        "channel": info.get("channel") or info.get("uploader") or video.channel,
        "duration": probe.duration,
        "view_count": info.get("view_count", video.view_count),
        "license": info.get("license") or video.license,
        "language": info.get("language") or video.language,
    }


@stage("download", sections=("download",), network=True)
def run(video: Video, ctx: Context) -> StageResult:
    with tempfile.TemporaryDirectory(prefix="textbook-dl-") as tmp_name:
        tmp = Path(tmp_name)
        if video.source == "local":
            path, captions, info = _local_fetch(video, ctx)
        else:
            path, captions, info = _ytdlp_fetch(video, ctx, tmp)
        probe = media.probe(path)
        if not probe.has_video:
            raise media.MediaError(f"{path.name}: no video stream")
        media.check_complete(path, probe)
        ext = path.suffix.lstrip(".").lower() or "mp4"
        refs: list[ArtifactRef] = [ctx.store.put_file(output_key(ctx, video.video_id, "download", keys.media_name(ext)), path)]
        caption_docs = []
        for lang, kind, cpath in captions:
            cext = cpath.suffix.lstrip(".")
            ref = ctx.store.put_file(output_key(ctx, video.video_id, "download", keys.captions_name(lang, kind, cext)), cpath)
            refs.append(ref)
            caption_docs.append({"lang": lang, "kind": kind, "key": ref.key, "ext": cext})
    meta = _metadata(video, info, probe)
    available = available_captions(info) if video.source != "local" else _caption_index(caption_docs)
    doc = {**meta, "video_id": video.video_id, "url": video.url, "media_key": refs[0].key, "captions": caption_docs,
           "has_audio": probe.has_audio, "width": probe.width, "height": probe.height, "fps": probe.fps}
    refs.append(ctx.store.put_json(output_key(ctx, video.video_id, "download", "info.json"), doc))
    ctx.db.update_video_meta(video.video_id, {**meta, "captions": available})
    return StageResult(artifacts=refs, summary={"duration": probe.duration, "captions": len(caption_docs),
                                                "height": probe.height})


def _caption_index(docs: list[dict[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d["lang"])
    return out


STAGE = run
