"""The metadata filter before download: the listing rules, and the paper's LLM rule on title and
description over a loopback endpoint; what it drops is never downloaded, and its record says why."""

from __future__ import annotations

import json

import pytest
from export_helpers import add_knowledge_point, read_jsonl
from llm_server import llm_server

from textbook import metadata_llm
from textbook.context import Context
from textbook.export import export_dataset
from textbook.pipeline import STAGES, run_video
from textbook.records import Video

GATE_AND_DOWNLOAD = STAGES[:2]  # metadata, then download


def listing_answer(body: dict) -> str:
    """Relevant unless the title says otherwise; 'garbled' readable only when reminded."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    title = user.split("Title: ", 1)[1].split("\n", 1)[0]
    if title == "Garbled" and body["messages"][-1]["content"] != metadata_llm.REMINDER:
        return "I think this one is fine, probably."
    if title == "Never readable":
        return "Sure!"
    relevant, unsafe = title != "Cat compilation", title == "Street fight"
    return f'{{"relevant": {json.dumps(relevant)}, "unsafe": {json.dumps(unsafe)}, "reason": "{title} judged"}}'


@pytest.fixture
def server():
    with llm_server() as srv:
        srv.answer = listing_answer
        yield srv


def _with_llm(ctx: Context, server) -> Context:
    llm = {"backend": "openai", "endpoint": server.url, "model": "screener"}
    return Context(ctx.settings.replace(metadata={"llm": llm}), ctx.store, ctx.db)


def _video(ctx: Context, vid: str, title: str, **meta) -> Video:
    """A listed video whose media does not exist: a download that starts fails at once."""
    add_knowledge_point(ctx, "math-1")
    video = Video(vid, f"file:///nonexistent/{vid}.mp4", source="local", title=title,
                  description="A lesson", channel="Teacher", duration=meta.pop("duration", 120.0), **meta)
    ctx.db.add_video(video, "math-1")
    return video


def _runs(ctx: Context, vid: str) -> dict[str, str]:
    return {s.name: run.status for s in STAGES if (run := ctx.db.run(vid, s.name)) is not None}


@pytest.mark.parametrize("title, why", [("Cat compilation", "not relevant to the knowledge point"),
                                        ("Street fight", "unsafe")])
def test_what_the_llm_rejects_is_never_downloaded(ctx, server, title, why):
    ctx = _with_llm(ctx, server)
    _video(ctx, "v1", title)
    [outcome] = run_video("v1", ctx, GATE_AND_DOWNLOAD)
    assert outcome.filtered and _runs(ctx, "v1") == {"metadata": "done"}  # no download run at all
    assert ctx.db.video("v1").status == "filtered"
    assert why in ctx.db.run("v1", "metadata").result["filtered"]
    user = server.requests[0]["body"]["messages"][1]["content"]
    assert "Knowledge point: Mathematics / Mathematics course / Basics / Point math-1" in user
    assert f"Title: {title}" in user and "Description: A lesson" in user


def test_a_relevant_safe_listing_goes_on_to_download(ctx, server):
    ctx = _with_llm(ctx, server)
    _video(ctx, "v1", "Derivatives explained")
    with pytest.raises(Exception, match="nonexistent"):
        run_video("v1", ctx, GATE_AND_DOWNLOAD)
    assert _runs(ctx, "v1") == {"metadata": "done", "download": "failed"}
    record = ctx.db.run("v1", "metadata").result
    assert record["llm"]["verdict"] == "keep" and record["llm"]["answers"]


def test_an_unreadable_answer_is_asked_again_then_recorded_and_kept(ctx, server):
    ctx = _with_llm(ctx, server)
    for vid, title in (("late", "Garbled"), ("never", "Never readable")):
        _video(ctx, vid, title)
        with pytest.raises(Exception, match="nonexistent"):
            run_video(vid, ctx, GATE_AND_DOWNLOAD)
    late, never = (ctx.db.run(v, "metadata").result["llm"] for v in ("late", "never"))
    assert (late["verdict"], len(late["answers"]), late["relevant"]) == ("keep", 2, True)
    assert (never["verdict"], len(never["answers"]), never["relevant"]) == ("unparseable", 2, None)
    [verdict] = [v for v in ctx.db.run("never", "metadata").result["verdicts"] if v["name"] == "metadata_llm"]
    assert verdict["passed"] and "unparseable answer, kept" in verdict["reason"]


def test_offline_the_listing_rules_run_and_no_llm_is_asked(ctx, server):
    _video(ctx, "short", "Derivatives", duration=4.0)
    _video(ctx, "french", "Dérivées", language="fr")
    for vid in ("short", "french"):
        [outcome] = run_video(vid, ctx, GATE_AND_DOWNLOAD)
        assert outcome.filtered and _runs(ctx, vid) == {"metadata": "done"}
    assert ctx.db.run("short", "metadata").result["filtered"].startswith("metadata_duration: listed duration 4 s")
    assert ctx.db.run("french", "metadata").result["filtered"] == "metadata_language: listed language fr, not English"
    assert ctx.db.run("short", "metadata").result["llm"] == {"skipped": "a listing rule dropped the video first"}
    _video(ctx, "fine", "Derivatives")
    with pytest.raises(Exception, match="nonexistent"):
        run_video("fine", ctx, GATE_AND_DOWNLOAD)
    assert ctx.db.run("fine", "metadata").result["llm"] == {"skipped": "no LLM configured (metadata.llm.backend: none)"}
    assert not server.requests


def test_videos_jsonl_says_the_metadata_stage_dropped_it_with_every_verdict(ctx, server):
    ctx = _with_llm(ctx, server)
    _video(ctx, "cats", "Cat compilation")
    run_video("cats", ctx, GATE_AND_DOWNLOAD)
    [record] = read_jsonl(export_dataset(ctx).root / "videos.jsonl")
    assert (record["status"], record["filtered_by"]) == ("filtered", "metadata")
    assert [(v["name"], v["passed"]) for v in record["verdicts"]] == [
        ("metadata_duration", True), ("metadata_language", True), ("metadata_llm", False)]
    assert record["reason"].startswith("metadata_llm: openai:screener: not relevant to the knowledge point")


def test_a_prompt_change_reruns_the_gate_and_nothing_after_it():
    """The stage's version carries the prompt's, and no later stage reads the gate's output."""
    from textbook.stages import metadata

    assert metadata.STAGE.version.endswith(metadata_llm.PROMPT_VERSION)
    assert not [s.name for s in STAGES if "metadata" in s.requires]
