"""The orchestrators' task plan agrees with the pipeline's stages."""

from __future__ import annotations

import pytest

from textbook.pipeline import STAGES, stage_by_name
from textbook.tasks import TASK_PLAN, run_task


def test_task_plan_covers_every_stage_once_in_order():
    assert [s for t in TASK_PLAN for s in t.stages] == [s.name for s in STAGES]


def test_task_plan_queues_and_retries_follow_the_stage_flags():
    for spec in TASK_PLAN:
        stages = [stage_by_name(s) for s in spec.stages]
        assert (spec.queue == "gpu") == any(s.model for s in stages), spec.task_id
        assert spec.network >= any(s.network for s in stages), spec.task_id


def test_unknown_task_is_named(ctx):
    with pytest.raises(KeyError, match="unknown task 'nope'"):
        run_task("nope", "v1", ctx)


def test_a_video_found_by_two_knowledge_points_is_processed_by_the_first_only(ctx, tmp_path):
    from textbook.context import Context
    from textbook.tasks import search

    urls = tmp_path / "urls.txt"
    urls.write_text("http://127.0.0.1:9/a.mp4\nhttp://127.0.0.1:9/b.mp4\n")
    c = Context(ctx.settings.replace(search={"source": "urls", "urls_file": str(urls)}), ctx.store, ctx.db)
    first, second = c.taxonomy.knowledge_points[:2]
    assert search(first.id, ctx=c) == ["a", "b"]
    assert search(second.id, ctx=c) == []  # linked to both, processed by the first one's DAG
    assert [link.kp_id for link in c.db.links("a")] == [first.id, second.id]


def test_a_task_logs_what_it_did_to_which_video(tmp_path, caplog):
    from export_helpers import ClipSpec, add_done_video, add_knowledge_point, make_context
    from textbook.tasks import run_task

    ctx = make_context(tmp_path)
    add_knowledge_point(ctx, "math-1")
    add_done_video(ctx, "vidA", "math-1", [ClipSpec(0.0, 12.0, "force and mass", ocr=("F = ma",))])
    with caplog.at_level("INFO", logger="textbook.tasks"):
        run_task("visual_filter", "vidA", ctx)
    assert "vidA: visual_filter up to date (finished earlier with the same output settings" in caplog.text
    assert "vidA: done" in caplog.text  # the video's status once its last stage ran
