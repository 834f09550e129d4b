"""Question-pause-answer cycles (SoSVQA) and their optional multiple-choice form.

``qa_cycles`` finds the cycles from the extracted audio and the transcript (textbook.qa_cycles)
and keeps the pause's frames as JPEGs; ``qa_mcq`` asks an LLM for a short answer and distractors
(textbook.qa_mcq). A stage that has nothing to do here (turned off for the video's knowledge
point, no model configured) finishes with ``not_run`` and its reason in the run's summary, so the
chain completes and the export says why the files are absent.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from textbook import models
from textbook import qa_cycles as cycles
from textbook.artifacts import input_key, output_key, read_input
from textbook.context import Context
from textbook.frames import frame_at
from textbook.qa_mcq import BadAnswer, mcq_item
from textbook.records import Transcript, Video
from textbook.stages.base import StageResult, stage, switched_off


def _jpeg(frame: Any, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


@stage("qa_cycles", sections=("qa",), requires=("download", "audio", "transcript"))
def run_cycles(video: Video, ctx: Context) -> StageResult:
    cfg, vid, store = ctx.settings.qa, video.video_id, ctx.store
    reason = switched_off("qa", cfg, vid, ctx)
    if reason:
        return StageResult(summary={"not_run": reason})
    segments = Transcript.from_dict(read_input(ctx, vid, "transcript")).segments
    if cfg.detector == "audio":
        with store.local_path(input_key(ctx, vid, "audio", "audio.wav")) as wav:
            pauses = cycles.find_pauses(cfg, segments, wav)
    else:
        pauses = cycles.find_pauses(cfg, segments, None)
    kept, dropped = cycles.validate(cycles.segment_labels(vid, pauses, segments, cfg), cfg.max_pause_s)
    questions = [label["question_text"] for label in kept]
    refs, entries = [], []
    if kept:
        info = read_input(ctx, vid, "download", "info.json")
        with store.local_path(info["media_key"]) as media:
            for label in kept:
                frames = []
                for k, t in enumerate(cycles.frame_times(label["pause_start_s"], label["pause_end_s"],
                                                         cfg.frame_fps, cfg.max_frames)):
                    picture = frame_at(media, t, cfg.frame_max_height)
                    ref = store.put_bytes(output_key(ctx, vid, "qa_cycles", f"{label['id']}_{k}.jpg"),
                                          _jpeg(picture, cfg.jpeg_quality))
                    refs.append(ref)
                    frames.append({"key": ref.key, "timestamp": t})
                entries.append({"entry_id": label["id"], "question": label["question_text"],
                                "answer": label["answer_text"], "frames": frames,
                                "transcript": cycles.context(segments, label["question_start_s"],
                                                             cfg.context_window_s, questions)})
    doc = {"detector": cfg.detector, "pauses": [[p.start, p.end] for p in pauses], "labels": kept,
           "dropped": dropped, "entries": entries}
    refs.append(store.put_json(output_key(ctx, vid, "qa_cycles", "qa_cycles.json"), doc))
    return StageResult(artifacts=refs, summary={"pauses": len(pauses), "cycles": len(kept), "dropped": len(dropped),
                                                "frames": sum(len(e["frames"]) for e in entries)})


@stage("qa_mcq", sections=("qa_mcq",), requires=("qa_cycles",), network=True)
def run_mcq(video: Video, ctx: Context) -> StageResult:
    cfg, vid = ctx.settings.qa_mcq, video.video_id
    before = ctx.db.run(vid, "qa_cycles")
    if before is not None and before.result.get("not_run"):
        return StageResult(summary={"not_run": f"qa_cycles did not run: {before.result['not_run']}"})
    llm = models.ModelUse("llm", cfg.llm, "qa_mcq.llm").load(ctx)
    if llm is None:
        return StageResult(summary={"not_run": "no LLM configured (qa_mcq.llm.backend: none): "
                                               "no multiple-choice questions"})
    model = cfg.llm.model
    doc = read_input(ctx, vid, "qa_cycles")
    contexts = {e["entry_id"]: e["transcript"] for e in doc["entries"]}
    items, failed = [], []
    for label in doc["labels"]:
        try:
            items.append(mcq_item(llm, model, cfg.seed, label, contexts[label["id"]]))
        except BadAnswer as exc:
            failed.append({"entry_id": label["id"], "reason": str(exc)})
    ref = ctx.store.put_json(output_key(ctx, vid, "qa_mcq", "qa_mcq.json"),
                             {"model": model, "seed": cfg.seed, "items": items, "failed": failed})
    return StageResult(artifacts=[ref], summary={"questions": len(items), "failed": len(failed)})


CYCLES = run_cycles
MCQ = run_mcq
