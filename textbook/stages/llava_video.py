"""LLaVA-Video-178K's annotation of our videos: segments, three-level recurrent captions, 16-type QA.

``video_captions`` cuts each video into segments of at most ``max_segment_s`` at clip boundaries
(the release's 0-3 minute videos, untrimmed inside), samples each at 1 fps and runs the recurrent
caption schedule (textbook.recurrent_captions) with a VLM; its state is saved in the artifact store
after every call, so a retry, on any worker, resumes at the next call. ``grounding`` (beyond the
paper, which captioned without audio) adds the interval's narration and on-screen text to its
level-1 prompt, and is recorded. ``video_qa`` asks an LLM for the 16 question types in open-ended
and multiple-choice form from each segment's level-3 caption (textbook.video_qa). A stage without
its model, or switched off for the video's knowledge point, records why it did not run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

from textbook import recurrent_captions, video_qa
from textbook.datasets import llava_video as declared
from textbook.artifacts import output_key, read_input
from textbook.context import Context
from textbook.media import probe, run_ffmpeg
from textbook.records import Video
from textbook.stages.base import StageResult, stage, switched_off


def segments(clips: list[dict[str, Any]], max_s: float) -> list[list[dict[str, Any]]]:
    """Consecutive clips grouped into segments of at most ``max_s`` seconds (a longer clip alone)."""
    out: list[list[dict[str, Any]]] = []
    for clip in clips:
        if out and clip["end"] - out[-1][0]["start"] <= max_s:
            out[-1].append(clip)
        else:
            out.append([clip])
    return out


def cut(media: Path, start: float, end: float, target: Path) -> float:
    """The segment re-encoded (exact boundaries, unlike a stream copy); returns its duration."""
    run_ffmpeg(["-ss", f"{start:.3f}", "-i", str(media), "-t", f"{end - start:.3f}", "-c:v", "libx264",
                "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags", "+faststart",
                str(target)], f"cut the segment {start:.1f}-{end:.1f} s")
    return probe(target).duration


def on_screen(ctx: Context, vid: str) -> list[tuple[float, str]]:
    """(time, OCR text) of every keyframe the score kept, read once per video."""
    ocr = {r["key"]: r["text"] for r in read_input(ctx, vid, "ocr")["results"] if not r.get("dropped")}
    return [(kf["time"], ocr.get(kf["key"], "")) for c in read_input(ctx, vid, "keyframes")["clips"]
            for kf in c["keyframes"]]


def grounding_of(clips: list[dict[str, Any]], shown: list[tuple[float, str]],
                 offset: float) -> Callable[[float, float], str]:
    """An interval's narration (refined where refinement ran) and the OCR of its keyframes."""

    def text(start: float, end: float) -> str:
        lo, hi = offset + start, offset + end
        said = " ".join((c.get("refined_text") or c["text"]).strip() for c in clips if c["start"] < hi and c["end"] > lo)
        read = " ".join(t.strip() for at, t in shown if lo <= at < hi and t.strip())
        return f"Narration: {said}" + (f" On screen: {read}" if read else "")

    return text


@stage("video_captions", sections=("video_captions",), requires=("download", "clips", "ocr"), model=True,
       network=True, version=f"1+{recurrent_captions.PROMPT_VERSION}")
def run_captions(video: Video, ctx: Context) -> StageResult:
    cfg, vid, store = ctx.settings.video_captions, video.video_id, ctx.store
    off = switched_off("video_captions", cfg, vid, ctx)
    if off:
        return StageResult(summary={"not_run": off})
    if cfg.vlm.backend == "none":
        return StageResult(summary={"not_run": "no VLM configured (video_captions.vlm.backend: none)"})
    vlm = declared.caption_use(ctx.settings).load(ctx)
    clips = read_input(ctx, vid, "clips")["clips"]
    media_key = read_input(ctx, vid, "download", "info.json")["media_key"]
    shown = on_screen(ctx, vid) if cfg.grounding else []
    refs, docs = [], []
    with store.local_path(media_key) as media, tempfile.TemporaryDirectory(prefix="textbook-seg-") as tmp:
        for k, group in enumerate(segments(clips, cfg.max_segment_s)):
            start, end = group[0]["start"], group[-1]["end"]
            clip_file = Path(tmp) / f"segment_{k}.mp4"
            duration = cut(media, start, end, clip_file)
            refs.append(store.put_file(output_key(ctx, vid, "video_captions", f"segment_{k}.mp4"), clip_file))
            frames = recurrent_captions.sample_frames(clip_file, Path(tmp) / f"frames_{k}", duration)
            state = recurrent_captions.CaptionState.stored(
                store, output_key(ctx, vid, "video_captions", f"state_{k}.json"))
            grounding = grounding_of(clips, shown, start) if cfg.grounding else None
            recurrent_captions.caption_segment(frames, duration, state, vlm, grounding)
            docs.append({"index": k, "start": start, "end": end, "duration": round(duration, 3),
                         "clips": [c["index"] for c in group], "frames": len(frames), "video_key": refs[-1].key,
                         "captions": state.captions})
    doc = {"prompt_version": recurrent_captions.PROMPT_VERSION, "grounding": cfg.grounding, "model": cfg.vlm.model,
           "segments": docs}
    refs.append(store.put_json(output_key(ctx, vid, "video_captions", "video_captions.json"), doc))
    calls = sum(len(d["captions"]) for d in docs)
    return StageResult(artifacts=refs, summary={"segments": len(docs), "calls": calls, "grounding": cfg.grounding})


@stage("video_qa", sections=("video_qa",), requires=("video_captions",), model=True, network=True,
       version=f"1+{video_qa.PROMPT_VERSION}")
def run_qa(video: Video, ctx: Context) -> StageResult:
    cfg, vid = ctx.settings.video_qa, video.video_id
    before = ctx.db.run(vid, "video_captions")
    if before is not None and before.result.get("not_run"):
        return StageResult(summary={"not_run": f"video_captions did not run: {before.result['not_run']}"})
    llm_use, embedder_use = declared.qa_uses(ctx.settings)
    llm = llm_use.load(ctx)
    if llm is None:
        return StageResult(summary={"not_run": "no LLM configured (video_qa.llm.backend: none)"})
    embedder = embedder_use.load(ctx)
    out = []
    for seg in read_input(ctx, vid, "video_captions")["segments"]:
        final = next(c["text"] for c in seg["captions"] if c["level"] == 3)
        out.append({"index": seg["index"], "pairs": video_qa.generate(final, llm, embedder, cfg.dedup_threshold)})
    ref = ctx.store.put_json(output_key(ctx, vid, "video_qa", "video_qa.json"),
                             {"prompt_version": video_qa.PROMPT_VERSION, "model": cfg.llm.model, "segments": out})
    pairs = sum(len(s["pairs"]) for s in out)
    return StageResult(artifacts=[ref], summary={"segments": len(out), "pairs": pairs})


CAPTIONS = run_captions
QA = run_qa
