"""LLM scoring (drop low-value videos) and transcript refinement, segment by segment."""

from __future__ import annotations

from textbook.artifacts import output_key, read_input
from textbook.context import Context
from textbook.records import Segment, Transcript, Video
from textbook.refine import get_refiner
from textbook.stages.base import StageResult, stage


@stage("refine", sections=("refine",), requires=("filters",), model=True)
def run(video: Video, ctx: Context) -> StageResult:
    cfg = ctx.settings.refine
    refiner = ctx.backend(f"refiner:{cfg.backend}", lambda: get_refiner(cfg))
    transcript = Transcript.from_dict(read_input(ctx, video.video_id, "transcript"))
    score = refiner.score(video.title, video.description, transcript.text)
    texts = refiner.refine([s.text for s in transcript.segments])
    segments = [Segment(s.start, s.end, t) for s, t in zip(transcript.segments, texts, strict=True)]
    doc = {"backend": refiner.name, "score": score.value, "reason": score.reason,
           "segments": [s.to_dict() for s in segments]}
    ref = ctx.store.put_json(output_key(ctx, video.video_id, "refine", "refine.json"), doc)
    filtered = ""
    if score.value is not None and score.value < cfg.min_score:
        filtered = f"llm_score: {score.value:g} under refine.min_score {cfg.min_score:g} ({score.reason})"
    return StageResult(artifacts=[ref], summary={"backend": refiner.name, "llm_score": score.value,
                                                 "llm_reason": score.reason}, filtered=filtered)


STAGE = run
