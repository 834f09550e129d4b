"""The metadata filter, before anything is downloaded: the search listing's duration and language,
and (when ``metadata.llm`` is set) the paper's LLM rule on title and description for relevance to
the knowledge point and unsafe content.

A video this stage drops is never downloaded; its record keeps every verdict and the LLM's raw
answers. The cheap rules run first, so the LLM is asked only about videos they keep.
"""

from __future__ import annotations

from typing import Any, Callable

from textbook import metadata_llm, models
from textbook.artifacts import output_key
from textbook.context import Context
from textbook.records import Verdict, Video
from textbook.stages.base import StageResult, stage

MetadataRule = Callable[[Video, Context], Verdict]

def duration_bounds(video: Video, ctx: Context) -> Verdict:
    """The search-time duration bounds (``search.min_duration`` .. ``search.max_duration``)."""
    lo, hi = ctx.settings.search.min_duration, ctx.settings.search.max_duration
    if video.duration is None:
        return Verdict("metadata_duration", True, None, "duration unknown")
    passed = lo <= video.duration <= hi
    return Verdict("metadata_duration", passed, video.duration,
                   f"listed duration {video.duration:g} s" + ("" if passed else f" outside {lo:g}-{hi:g} s"))


def declared_language(video: Video, ctx: Context) -> Verdict:
    """The language the platform lists for the video, or else the languages of its own captions.

    Catches non-English talks before anything is downloaded. Automatic captions are not evidence
    (YouTube offers machine translations of them).
    """
    if video.language:
        passed = video.language.lower().split("-")[0] == "en"
        return Verdict("metadata_language", passed, None, f"listed language {video.language}"
                       + ("" if passed else ", not English"))
    manual = video.captions.get("manual", [])
    if manual and not any(lang.lower().split("-")[0] == "en" for lang in manual):
        return Verdict("metadata_language", False, None, f"captions only in {', '.join(manual)}, none in English")
    return Verdict("metadata_language", True, None, "no language listed")


METADATA_RULES: tuple[MetadataRule, ...] = (duration_bounds, declared_language)


def metadata_verdicts(video: Video, ctx: Context, rules: tuple[MetadataRule, ...] = METADATA_RULES) -> list[Verdict]:
    return [rule(video, ctx) for rule in rules]


def llm_use(ctx: Context) -> models.ModelUse:
    return models.ModelUse("llm", ctx.settings.metadata.llm, "metadata.llm")


def llm_verdict(video: Video, ctx: Context) -> tuple[Verdict | None, dict[str, Any]]:
    """The LLM rule's verdict and its record; (None, why) when no LLM is configured."""
    use = llm_use(ctx)
    llm = use.load(ctx)
    if llm is None:
        return None, {"skipped": "no LLM configured (metadata.llm.backend: none)"}
    name = f"{use.cfg.backend}:{use.cfg.model}"
    asked = metadata_llm.ask(name, llm, metadata_llm.question(ctx.knowledge_point_path(video), video.title,
                                                               video.channel, video.description))
    verdict = Verdict("metadata_llm", asked.verdict != "reject", None, metadata_llm.verdict_reason(asked))
    return verdict, asked.to_dict()


@stage("metadata", sections=("search", "metadata"), network=True, version=f"1+{metadata_llm.PROMPT_VERSION}")
def run(video: Video, ctx: Context) -> StageResult:
    verdicts = metadata_verdicts(video, ctx)
    llm: dict[str, Any] = {"skipped": "a listing rule dropped the video first"}
    if all(v.passed for v in verdicts):
        verdict, llm = llm_verdict(video, ctx)
        verdicts += [verdict] if verdict is not None else []
    failed = next((v for v in verdicts if not v.passed), None)
    reason = f"{failed.name}: {failed.reason}" if failed else ""
    doc = {"kept": failed is None, "reason": reason, "verdicts": [v.to_dict() for v in verdicts], "llm": llm}
    ref = ctx.store.put_json(output_key(ctx, video.video_id, "metadata", "metadata.json"), doc)
    summary = {"kept": failed is None, "verdicts": doc["verdicts"], "llm": llm}  # videos.jsonl reads them here
    return StageResult(artifacts=[ref], summary=summary, filtered=reason)


STAGE = run
