"""The paper's LLM judges (drop a video they reject) and transcript refinement under the drift guard."""

from __future__ import annotations

from typing import Any

from textbook import judges, models
from textbook.artifacts import output_key, read_input
from textbook.context import Context
from textbook.drift import Thresholds, guard
from textbook.records import Segment, Transcript, Video
from textbook.refine import PROMPT_VERSION, refine_lines

VERSION = f"2+{judges.PROMPT_VERSION}+{PROMPT_VERSION}"  # a new prompt version re-runs the stage
from textbook.stages.base import StageResult, stage


def score(video: Video, ctx: Context, transcript: Transcript) -> tuple[dict[str, Any], str]:
    """The judges' record and the reason the video is dropped ('' when kept)."""
    cfg, uses = ctx.settings.refine, models.refine_uses(ctx.settings).judges
    if not uses:
        return {"skipped": "no judges configured (refine.judges is empty)", "judges": []}, ""
    panel = [(f"{u.cfg.backend}:{u.cfg.model}", u.load(ctx)) for u in uses]
    for use, (_, llm) in zip(uses, panel):
        if llm is None:
            raise models.BackendError(f"{use.where}.backend is none: a judge needs a model (or remove it)")
    question = judges.question(ctx.knowledge_point_path(video), video.title, video.description, transcript.text)
    decision = judges.combine(judges.ask(panel, question, cfg.min_score), cfg.judge_rule, cfg.min_score)
    record = {"rule": cfg.judge_rule, "min_score": cfg.min_score, "prompt_version": judges.PROMPT_VERSION,
              "drop": decision.drop, "score": decision.score, "reason": decision.reason,
              "judges": [v.to_dict() for v in decision.judges]}
    return record, f"llm_judges: {decision.reason}" if decision.drop else ""


def refine(ctx: Context, transcript: Transcript) -> tuple[dict[str, Any], list[Segment]]:
    """The refinement's record and the segments to keep (originals where the refinement drifted)."""
    cfg, uses = ctx.settings.refine, models.refine_uses(ctx.settings)
    originals = [s.text for s in transcript.segments]
    llm = uses.llm.load(ctx)
    if llm is None:
        return ({"backend": "none", "refined": False, "skipped": "no LLM configured (refine.llm.backend: none)"},
                transcript.segments)
    limits = Thresholds(cfg.drift_min_cosine, cfg.drift_min_kept_words, cfg.drift_max_added_words)
    texts, checks = guard(uses.embedder.load(ctx), originals, refine_lines(llm, originals), limits)
    segments = [Segment(s.start, s.end, t) for s, t in zip(transcript.segments, texts, strict=True)]
    record = {"backend": cfg.llm.backend, "model": cfg.llm.model, "prompt_version": PROMPT_VERSION, "refined": True,
              "changed": sum(not c.rejected for c in checks), "drift_rejected": sum(c.rejected for c in checks),
              "drift": [c.to_dict() for c in checks]}
    return record, segments


@stage("refine", sections=("refine",), requires=("filters",), model=True, version=VERSION)
def run(video: Video, ctx: Context) -> StageResult:
    transcript = Transcript.from_dict(read_input(ctx, video.video_id, "transcript"))
    scoring, dropped = score(video, ctx, transcript)
    if dropped:  # no refinement for a video that leaves the corpus
        refinement, segments = {"backend": ctx.settings.refine.llm.backend, "refined": False,
                                "skipped": "the judges dropped the video"}, transcript.segments
    else:
        refinement, segments = refine(ctx, transcript)
    summary = {"scoring": scoring, "refinement": {k: v for k, v in refinement.items() if k != "drift"}}
    doc = {"scoring": scoring, "refinement": refinement, "segments": [s.to_dict() for s in segments]}
    ref = ctx.store.put_json(output_key(ctx, video.video_id, "refine", "refine.json"), doc)
    return StageResult(artifacts=[ref], summary=summary, filtered=dropped)


STAGE = run
