"""The orchestrators' task plan agrees with the pipeline's stages."""

from __future__ import annotations

import pytest

from textbook.context import Context

from textbook.pipeline import STAGES, stage_by_name
from textbook.tasks import STAGE_NAMES, TASK_PLAN, run_task


def test_task_plan_covers_every_stage_once_in_order():
    assert [s for t in TASK_PLAN for s in t.stages] == [s.name for s in STAGES] == list(STAGE_NAMES)


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
    from textbook.tasks import TASK_PLAN, run_task

    ctx = make_context(tmp_path)
    add_knowledge_point(ctx, "math-1")
    add_done_video(ctx, "vidA", "math-1", [ClipSpec(0.0, 12.0, "force and mass", ocr=("F = ma",))])
    with caplog.at_level("INFO", logger="textbook.tasks"):
        run_task(TASK_PLAN[-1].task_id, "vidA", ctx)
    assert f"vidA: {TASK_PLAN[-1].stages[-1]} up to date (finished earlier with the same output settings" in caplog.text
    assert "vidA: done" in caplog.text  # the video's status once its last stage ran


def test_run_options_refuse_what_the_dag_params_refuse_naming_the_param():
    from textbook.tasks import RunOptionError, RunOptions

    for bad, name in (({"limit": 0}, "limit"), ({"limit": True}, "limit"), ({"source": "ftp"}, "source"),
                      ({"source_path": "/x"}, "source_path"), ({"force_stage": "nope"}, "force_stage")):
        with pytest.raises(RunOptionError, match=f"^{name}: "):
            RunOptions(**bad)
    params = {"limit": 3, "source": None, "dry_run": False, "force_stage": "ocr", "airflow_own": 1}
    assert RunOptions.from_params(params) == RunOptions(limit=3, force_stage="ocr")


def _urls_kp(ctx, tmp_path, n: int):
    from textbook.tasks import RunOptions

    urls = tmp_path / "other.txt"
    urls.write_text("".join(f"http://127.0.0.1:9/v{i}.mp4\n" for i in range(n)))
    return ctx.taxonomy.knowledge_points[0].id, RunOptions(source="urls", source_path=str(urls))


def test_search_takes_the_runs_source_and_limit(ctx, tmp_path):
    from dataclasses import replace

    from textbook.tasks import search

    kp, options = _urls_kp(ctx, tmp_path, 3)  # the configured source is youtube: only the override finds these
    assert search(kp, ctx, replace(options, limit=2)) == ["v0", "v1"]
    assert search(kp, ctx, options) == ["v0", "v1", "v2"]


def test_a_dry_run_searches_and_runs_nothing_and_says_what_would_run(ctx, tmp_path, caplog):
    from dataclasses import replace

    from textbook.tasks import search

    kp, options = _urls_kp(ctx, tmp_path, 3)
    search(kp, ctx, replace(options, limit=2))
    with caplog.at_level("INFO", logger="textbook.tasks"):
        assert search(kp, ctx, replace(options, dry_run=True)) == []
    assert f"dry run of {kp}: nothing is searched or run; a real run would search urls" in caplog.text
    assert "would run v0: tasks metadata_download, audio_transcript, filters_refine, clips, keyframes, ocr, visual_filter" in caplog.text
    assert "2 of the 2 known videos would run" in caplog.text
    assert ctx.db.video("v2") is None and ctx.db.runs("v0") == []  # not searched, not run


def test_forcing_a_stage_runs_it_again_on_finished_videos(tmp_path, caplog):
    from export_helpers import ClipSpec, add_done_video, add_knowledge_point, make_context
    from textbook.tasks import RunOptions, search

    ctx = make_context(tmp_path)
    kp = ctx.taxonomy.knowledge_points[0].id
    add_knowledge_point(ctx, kp)
    add_done_video(ctx, "vidA", kp, [ClipSpec(0.0, 12.0, "force and mass")])
    before = ctx.db.run("vidA", "clips").attempts
    with caplog.at_level("INFO", logger="textbook.tasks"):
        run_task("clips", "vidA", ctx)
        assert ctx.db.run("vidA", "clips").attempts == before
        run_task("clips", "vidA", ctx, force_stage="clips")
    assert ctx.db.run("vidA", "clips").attempts == before + 1
    assert "vidA: clips up to date" in caplog.text and "vidA: clips done in" in caplog.text
    assert ctx.db.run("vidA", "keyframes").status == "done"  # only the named stage ran again
    assert ctx.db.video("vidA").status == "done"
    # A finished video is mapped again only when a stage is forced.
    c = Context(ctx.settings.replace(search={"source": "urls", "urls_file": str(tmp_path / "none.txt")}), ctx.store, ctx.db)
    (tmp_path / "none.txt").write_text("")
    assert search(kp, c) == [] and search(kp, c, RunOptions(force_stage="ocr")) == ["vidA"]
