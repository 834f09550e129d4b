"""The refine stage: the paper's two LLM judges over a loopback endpoint, the offline default, and
what videos.jsonl shows of them; refinement under the drift guard is in tests/test_drift.py."""

from __future__ import annotations

import json

import pytest
from export_helpers import ClipSpec, add_done_video, add_knowledge_point, read_jsonl, register, two_judges
from llm_server import llm_server
from state_helpers import finish_stage

from textbook import judges
from textbook.context import Context
from textbook.export import export_dataset
from textbook.pipeline import stage_by_name
from textbook.records import Segment, Transcript
from textbook.runner import StageFailed, run_stage

SCORES = {"keep": (8, 7, 9), "reject": (2, 6, 8)}


def judge_answer(body: dict) -> str:
    """Judges named by what they do: keep, reject, late (readable only when reminded), garbled."""
    model, last = body["model"], body["messages"][-1]["content"]
    if model == "late":
        model = "keep" if last == judges.REMINDER else "garbled"
    if model == "garbled":
        return "What a lovely video! I would give it full marks."
    r, d, t = SCORES[model]
    return (f'Here you go: {{"relevance": {r}, "knowledge_density": {d}, "transcription_quality": {t}, '
            f'"reason": "{model}s it"}}')


@pytest.fixture
def server():
    with llm_server() as srv:
        srv.answer = judge_answer
        yield srv


def _video(ctx: Context, vid: str = "vid1",
           said: tuple[str, ...] = ("the derivative measures how fast a function changes",)):
    """A video whose stages up to filters finished, its transcript one 5 s segment per line of ``said``."""
    add_knowledge_point(ctx, "math-1")
    video = register(ctx, vid, "math-1", title="Derivatives")
    segments = [Segment(5.0 * i, 5.0 * (i + 1), text) for i, text in enumerate(said)]
    for stage in ("metadata", "download", "audio"):
        finish_stage(ctx, vid, stage)
    finish_stage(ctx, vid, "transcript", files={"transcript.json": Transcript("captions", "en", segments).to_dict()})
    finish_stage(ctx, vid, "filters", result={"kept": True})
    return video


def _with(ctx: Context, server, models: list[str], rule: str = "all_reject") -> Context:
    panel = [{"backend": "openai", "endpoint": server.url, "model": m} for m in models]
    return Context(ctx.settings.replace(refine={"judges": panel, "judge_rule": rule}), ctx.store, ctx.db)


def _refine(ctx: Context, vid: str = "vid1"):
    outcome = run_stage(stage_by_name("refine"), vid, ctx)
    run = ctx.db.run(vid, "refine")
    return outcome, run, ctx.store.get_json(run.artifacts[0]["key"])


def test_offline_default_scores_nothing_and_says_so(ctx):
    _video(ctx)
    outcome, run, doc = _refine(ctx)
    assert outcome.status == "done" and not run.result.get("filtered")
    assert doc["scoring"] == {"skipped": "no judges configured (refine.judges is empty)", "judges": []}
    assert doc["refinement"] == {"backend": "none", "refined": False,
                                 "skipped": "no LLM configured (refine.llm.backend: none)"}
    assert doc["segments"][0]["text"] == "the derivative measures how fast a function changes"


def test_two_judges_drop_a_video_only_when_both_reject(ctx, server):
    _video(ctx)
    _, run, doc = _refine(_with(ctx, server, ["keep", "reject"]))
    scoring = doc["scoring"]
    assert not run.result.get("filtered") and run.result["scoring"] == scoring  # state and artifact agree
    assert [(j["judge"], j["verdict"], j["score"]) for j in scoring["judges"]] == [
        ("openai:keep", "keep", 7.0), ("openai:reject", "reject", 2.0)]
    assert scoring["judges"][1]["scores"] == {"relevance": 2.0, "knowledge_density": 6.0, "transcription_quality": 8.0}
    assert scoring["judges"][0]["answers"][0].startswith("Here you go: {")
    assert (scoring["score"], scoring["prompt_version"]) == (7.0, judges.PROMPT_VERSION)
    assert scoring["reason"] == "1 of 2 judges rejected (a criterion under 5); rule all_reject: kept"
    question = server.requests[0]["body"]["messages"][1]["content"]
    assert question.startswith("Knowledge point: Mathematics / Mathematics course / Basics / Point math-1\n"
                               "Title: Derivatives\n")


def test_any_reject_rule_and_a_unanimous_rejection_drop_it(ctx, server):
    _video(ctx)
    _, run, doc = _refine(_with(ctx, server, ["keep", "reject"], rule="any_reject"))
    assert run.result["filtered"] == ("llm_judges: 1 of 2 judges rejected (a criterion under 5); "
                                      "rule any_reject: dropped")
    assert doc["refinement"]["skipped"] == "the judges dropped the video"
    _video(ctx, "vid2")
    _, run, _ = _refine(_with(ctx, server, ["reject", "reject"]), "vid2")
    assert run.result["filtered"].endswith("2 of 2 judges rejected (a criterion under 5); rule all_reject: dropped")


def test_an_unreadable_answer_is_asked_again_then_recorded_unparseable(ctx, server):
    _video(ctx)
    _, run, doc = _refine(_with(ctx, server, ["late", "garbled", "reject"]))
    late, garbled, rejecting = doc["scoring"]["judges"]
    assert (late["verdict"], len(late["answers"]), late["scores"]["relevance"]) == ("keep", 2, 8.0)
    assert garbled == {"judge": "openai:garbled", "answers": ["What a lovely video! I would give it full marks."] * 2,
                       "scores": None, "reason": "no readable scores in two answers", "verdict": "unparseable",
                       "prompt_version": judges.PROMPT_VERSION, "score": None}
    retry = [r["body"]["messages"] for r in server.requests if r["body"]["model"] == "garbled"][1]
    assert [m["role"] for m in retry] == ["system", "user", "assistant", "user"]
    assert retry[-1]["content"] == judges.REMINDER
    assert rejecting["verdict"] == "reject" and not run.result.get("filtered")
    assert doc["scoring"]["reason"] == ("1 of 3 judges rejected (a criterion under 5), 1 unparseable; "
                                        "rule all_reject: kept")


def test_an_unparseable_judge_never_passes_or_rejects_on_its_own():
    garbled = judges.JudgeVerdict("g", ["?", "?"], None, "", "unparseable")
    rejecting = judges.JudgeVerdict("r", ["{}"], {"relevance": 1.0}, "", "reject")
    assert not judges.combine([garbled, rejecting], "all_reject", 5).drop  # not every judge rejected
    assert judges.combine([garbled, rejecting], "any_reject", 5).drop
    alone = judges.combine([garbled], "all_reject", 5)
    assert (alone.drop, alone.score) == (False, None) and "1 unparseable" in alone.reason


@pytest.mark.parametrize("answer", ['{"relevance": 11, "knowledge_density": 5, "transcription_quality": 5}',
                                    '{"relevance": 5, "knowledge_density": 5}', '{"relevance": "high"}', "[1, 2, 3]",
                                    '{"relevance": true, "knowledge_density": 5, "transcription_quality": 5}'])
def test_scores_out_of_range_or_missing_are_unreadable(answer):
    assert judges.parse(answer) is None


def test_videos_jsonl_shows_every_judge_and_the_combined_verdict(tmp_path):
    from export_helpers import make_context

    ctx = make_context(tmp_path)
    add_knowledge_point(ctx, "math-1")
    add_done_video(ctx, "vidJ", "math-1", [ClipSpec(0.0, 15.0, "one two three", keyframes=1)], scoring=two_judges())
    add_done_video(ctx, "vidO", "math-1", [ClipSpec(0.0, 15.0, "four five six", keyframes=1)])
    records = {r["video_id"]: r for r in read_jsonl(export_dataset(ctx).root / "videos.jsonl")}
    judged = records["vidJ"]
    assert [j["judge"] for j in judged["judges"]] == ["openai:deepseek-v2", "openai:llama3-70b-instruct"]
    assert judged["judges"][1]["answers"] == [json.dumps(
        {"relevance": 3.0, "knowledge_density": 6.5, "transcription_quality": 8.0, "reason": "on topic"})]
    assert {"name": "llm_judges", "passed": True, "score": 6.5,
            "reason": "1 of 2 judges rejected; rule all_reject: kept"} in judged["verdicts"]
    assert records["vidO"]["judges"] == [] and all(v["name"] != "llm_judges" for v in records["vidO"]["verdicts"])
    assert records["vidO"]["refinement"] == {"backend": "test", "refined": False}


def test_a_judge_without_a_model_is_an_error_naming_it(ctx):
    _video(ctx)
    bad = Context(ctx.settings.replace(refine={"judges": [{"backend": "none"}]}), ctx.store, ctx.db)
    with pytest.raises(StageFailed, match=r"refine\.judges\[0\]\.backend is none: a judge needs a model"):
        _refine(bad)
    assert ctx.db.run("vid1", "refine").result["category"] == "model_error"
