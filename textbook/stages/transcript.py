"""The transcript of a video: its captions when it has good ones, else speech recognition.

Manual captions in the configured language are preferred (people wrote them), automatic captions
come next when allowed (YouTube's recogniser beats ours), and the configured ASR backend runs on
the extracted audio otherwise. A caption file that cannot be parsed falls through to the next
choice, and the summary says why.
"""

from __future__ import annotations

import logging
from typing import Any

from textbook.artifacts import input_key, output_key, read_input
from textbook.context import Context
from textbook.records import Transcript, Video
from textbook.stages.base import StageResult, stage
from textbook.tokens import count_tokens
from textbook import models
from textbook.transcript.captions import CaptionError, parse_captions

log = logging.getLogger(__name__)


def _language_rank(lang: str, wanted: str, kind: str) -> int | None:
    """Lower is better; None when the track is not in the wanted language.

    For automatic tracks, '<lang>-orig' is the recogniser's own output, while a plain '<lang>'
    track may be a machine translation of another language's captions.
    """
    lang, wanted = lang.lower(), wanted.lower()
    if kind == "auto" and lang == f"{wanted}-orig":
        return 0
    if lang == wanted:
        return 1
    if lang.startswith(f"{wanted}-"):
        return 2
    return None


def caption_choices(captions: list[dict[str, Any]], language: str, allow_auto: bool) -> list[dict[str, Any]]:
    """The caption tracks worth trying, best first: manual ones, then automatic ones if allowed."""
    ranked = []
    for track in captions:
        kind = track.get("kind")
        if kind not in ("manual", "auto") or (kind == "auto" and not allow_auto):
            continue
        rank = _language_rank(str(track.get("lang", "")), language, kind)
        if rank is not None:
            ranked.append(((0 if kind == "manual" else 1, rank), track))
    return [track for _, track in sorted(ranked, key=lambda pair: pair[0])]


@stage("transcript", sections=("transcript",), requires=("download", "audio"), model=True, version="2")
def run(video: Video, ctx: Context) -> StageResult:
    cfg = ctx.settings.transcript
    vid = video.video_id
    transcript: Transcript | None = None
    rejected: list[str] = []
    if cfg.prefer_captions:
        info = read_input(ctx, vid, "download", "info.json")
        for track in caption_choices(info.get("captions") or [], cfg.language, ctx.settings.download.auto_captions):
            auto = track["kind"] == "auto"
            text = ctx.store.get_bytes(track["key"]).decode("utf-8-sig", errors="replace")
            try:
                segments = parse_captions(text, track.get("ext") or track["key"].rsplit(".", 1)[-1], auto=auto,
                                          name=track["key"])
            except CaptionError as exc:
                log.warning("%s: %s; trying the next transcript source", vid, exc)
                rejected.append(str(exc))
                continue
            transcript = Transcript("auto_captions" if auto else "captions", cfg.language, segments)
            break
    if transcript is None:
        asr = models.asr_use(ctx.settings).load(ctx)
        with ctx.store.local_path(input_key(ctx, vid, "audio", "audio.wav")) as wav:
            transcript = Transcript(asr.name, cfg.language, asr.transcribe(wav, cfg.language))
    ref = ctx.store.put_json(output_key(ctx, vid, "transcript", "transcript.json"), transcript.to_dict())
    summary: dict[str, Any] = {"source": transcript.source, "segments": len(transcript.segments),
                               "tokens": count_tokens(transcript.text)}
    if rejected:
        summary["rejected_captions"] = rejected
    return StageResult(artifacts=[ref], summary=summary)


STAGE = run
