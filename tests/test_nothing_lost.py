"""Issue 7's library promises, one at a time: fingerprints that ignore operational knobs, the
published result that outlives a failing re-run, claims that die with their worker, the
publishing guard, truncated media, settings ranges, the 0001 -> 0002 upgrade."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text, update

from export_helpers import ClipSpec, add_done_video, add_knowledge_point, make_context, snapshot
from media_helpers import ffmpeg
from state_helpers import finish_stage
import textbook.state.db
from textbook.config import ConfigError, load_settings
from textbook.context import Context
from textbook.export import PublishRefused, export_dataset
from textbook.media import MediaError, check_complete, probe
from textbook.pipeline import STAGES, chain_state, stage_by_name
from textbook.plan import plan
from textbook.runner import fingerprint, is_current
from textbook.state import StageRun, StateDB
from textbook.state.models import utcnow

OPERATIONAL = {"download": {"retries": 0, "socket_timeout": 3, "sleep_interval": 2, "rate_limit": "1M",
                            "proxy": "http://127.0.0.1:3128", "cookies_file": "/x/cookies.txt"},
               "search": {"urls_file": "/elsewhere/urls.txt", "local_dir": "/elsewhere", "source": "urls"}}


def _world(tmp_path) -> Context:
    ctx = make_context(tmp_path, image_tokens=10, token_budget=1000)
    add_knowledge_point(ctx, "math-1")
    add_done_video(ctx, "vidA", "math-1", [ClipSpec(0.0, 15.0, "one two three", keyframes=2, ocr=("x = 1", "y"))])
    add_done_video(ctx, "vidB", "math-1", [ClipSpec(0.0, 12.0, "four five six", keyframes=1, ocr=("z",))])
    return ctx


def _with(ctx: Context, **sections) -> Context:
    return Context(ctx.settings.replace(**sections), ctx.store, ctx.db)


# -- fingerprints ----------------------------------------------------------------------------

def test_operational_knobs_change_no_fingerprint_and_output_knobs_do(tmp_path):
    ctx = make_context(tmp_path)
    before = {s.name: fingerprint(s, ctx) for s in STAGES}
    assert {s.name: fingerprint(s, _with(ctx, **OPERATIONAL)) for s in STAGES} == before
    changed = {s.name for s in STAGES if fingerprint(s, _with(ctx, keyframes={"ssim_threshold": 0.9})) != before[s.name]}
    # and what reads them: the slide questions, the LLaVA-Video captions (grounded with OCR) and questions
    assert changed == {"keyframes", "ocr", "visual_filter", "slide_vqa", "video_captions", "video_qa"}


def test_a_setting_change_on_a_finished_corpus_reruns_nothing_and_exports_the_same_bytes(tmp_path):
    ctx = _world(tmp_path)
    first = snapshot(export_dataset(ctx).root)
    tuned = _with(ctx, **OPERATIONAL)
    assert all(p.counts["re-run"] == 0 and p.counts["up to date"] == 2 for p in plan(tuned))
    assert chain_state("vidA", tuned) == ("done", "")
    summary = export_dataset(tuned)
    assert snapshot(summary.root) == first and not summary.changed
    reruns = {p.stage: p.counts["re-run"] for p in plan(_with(ctx, ocr={"min_confidence": 50}))}
    assert reruns == {**{s.name: 0 for s in STAGES}, **dict.fromkeys(
        ("ocr", "visual_filter", "slide_vqa", "video_captions", "video_qa"), 2)}


def test_runs_recorded_under_the_first_releases_hash_stay_finished(tmp_path):
    ctx = _world(tmp_path)
    legacy = {s.name: _legacy(s, ctx) for s in STAGES}
    with ctx.db.session() as s:
        for name, value in legacy.items():
            s.execute(update(StageRun).where(StageRun.stage == name).values(config_hash=value))
    assert all(is_current(ctx.db.run("vidA", s.name), s, ctx) for s in STAGES)
    changed = _with(ctx, download={"retries": 1})  # the first release hashed retries too
    assert not is_current(changed.db.run("vidA", "download"), stage_by_name("download"), changed)


def _legacy(stage, ctx) -> str:
    from textbook.runner import _fingerprint

    return _fingerprint(stage, ctx, legacy=True)


# -- the published result ------------------------------------------------------------------

def test_a_failing_rerun_keeps_the_last_good_export_byte_for_byte(tmp_path):
    ctx = _world(tmp_path)
    first = snapshot(export_dataset(ctx).root)
    rerun = _with(ctx, keyframes={"ssim_threshold": 0.9})
    old_keys = {a["key"] for a in ctx.db.run("vidA", "keyframes").artifacts}
    finish_stage(rerun, "vidA", "keyframes", files={"vidA@0.0_15.0#1.jpg": b"new"})
    finish_stage(rerun, "vidA", "ocr", status="failed", error="RuntimeError: tesseract crashed")
    rerun.db.set_video_status("vidA", "failed", "ocr: RuntimeError: tesseract crashed")
    assert all(ctx.store.exists(k) for k in old_keys)  # nothing deleted before its replacement is written
    summary = export_dataset(rerun)
    assert snapshot(summary.root) == first and not summary.changed


def test_an_export_that_would_lose_shipped_videos_is_refused_unless_forced(tmp_path):
    ctx = _world(tmp_path)
    first = snapshot(export_dataset(ctx).root)
    ctx.store.delete(ctx.db.run("vidB", "ocr").artifacts[0]["key"])  # a published document went missing
    with pytest.raises(PublishRefused, match="1 of the 2 videos .* would be lost .*vidB"):
        export_dataset(ctx)
    assert snapshot(ctx.settings.export_root) == first
    allowed = _with(ctx, export={"max_lost_share": 0.5})
    assert export_dataset(allowed).videos == 1
    assert export_dataset(ctx, force=True).videos == 1


# -- claims ---------------------------------------------------------------------------------

def _claim_in_a_process_that_exits(db_url: str) -> None:
    code = ("import sys, uuid; from textbook.state import StateDB; db = StateDB(sys.argv[1]); "
            "assert db.claim('vidA', 'keyframes', 'x', uuid.uuid4().hex)")
    subprocess.run([sys.executable, "-c", code, db_url], check=True)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_claim_whose_process_is_gone_is_taken_over_at_once(tmp_path, backend, request):
    url = f"sqlite:///{tmp_path}/s.db" if backend == "sqlite" else request.getfixturevalue("pg_url")
    settings = load_settings(environ={}, data_root=str(tmp_path / "data"), database_url=url)
    ctx = Context.from_settings(settings)
    add_knowledge_point(ctx, "math-1")
    add_done_video(ctx, "vidA", "math-1", [ClipSpec(0.0, 15.0, "one two", keyframes=1, ocr=("x",))])
    _claim_in_a_process_that_exits(url)
    run = ctx.db.run("vidA", "keyframes")
    assert run.status == "running" and "has exited" in ctx.db.stale_reason(run)
    assert ctx.db.claim("vidA", "keyframes", "x", uuid.uuid4().hex)  # no wait for any lease
    ctx.db.engine.dispose()


def test_a_claim_from_another_host_lasts_until_its_heartbeat_stops(tmp_path):
    ctx = _world(tmp_path)
    assert ctx.db.claim("vidA", "keyframes", "x", "theirs")
    with ctx.db.session() as s:
        s.execute(update(StageRun).where(StageRun.stage == "keyframes", StageRun.video_id == "vidA")
                  .values(owner_host="gpu-worker-7", owner_pid=1))
    assert not ctx.db.claim("vidA", "keyframes", "x", "mine")  # heartbeat fresh: alive
    assert ctx.db.heartbeat("vidA", "keyframes", "theirs") and not ctx.db.heartbeat("vidA", "keyframes", "mine")
    with ctx.db.session() as s:
        s.execute(update(StageRun).where(StageRun.stage == "keyframes", StageRun.video_id == "vidA")
                  .values(heartbeat_at=utcnow() - ctx.db.lease * 2))
    assert "no heartbeat" in ctx.db.stale_reason(ctx.db.run("vidA", "keyframes"))
    assert ctx.db.claim("vidA", "keyframes", "x", "mine")


# -- media, settings, upgrade ----------------------------------------------------------------

def test_a_truncated_file_is_named_truncated_and_a_whole_one_passes(tmp_path):
    whole = tmp_path / "whole.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=40", "-c:v", "libx264", "-g", "50",
           "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(whole))
    check_complete(whole, probe(whole))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 3 // 10])
    with pytest.raises(MediaError, match=r"truncated: \d+\.\d of 40\.0 s decodable"):
        check_complete(cut, probe(cut))


@pytest.mark.parametrize("text, needle", [
    ("download:\n  retries: -3\n", "download.retries: -3 must be at least 0"),
    ("download:\n  socket_timeout: 0\n", "download.socket_timeout: 0.0 must be greater than 0"),
    ("keyframes:\n  ssim_threshold: 7\n", "keyframes.ssim_threshold: 7.0 must be at most 1"),
    ("transcript:\n  asr_backend: whisper\n", "transcript.asr_backend: 'whisper' is not one of"),
    ("download:\n  rate_limit: fast\n", "download.rate_limit: 'fast' is not in the expected form"),
])
def test_out_of_range_settings_are_refused_naming_key_and_file(tmp_path, text, needle):
    cfg = tmp_path / "settings.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=needle) as err:
        load_settings(cfg, environ={})
    assert "settings.yaml" in str(err.value)


def test_upgrading_from_0001_publishes_what_was_finished(tmp_path):
    db = StateDB(f"sqlite:///{tmp_path}/old.db")
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(textbook.state.db.__file__).with_name("migrations")))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(text("INSERT INTO videos VALUES ('v1', 'u', 'youtube', '{}', 'done', '', "
                          "'2026-01-01 00:00:00', '2026-01-02 00:00:00')"))
        conn.execute(text("INSERT INTO stage_runs (video_id, stage, status, attempts, error, config_hash, artifacts, "
                          "result, worker, started_at, finished_at, seconds) VALUES ('v1', 'ocr', 'done', 1, '', "
                          "'abc', '[{\"key\": \"videos/v1/ocr.json\"}]', '{}', 'h:1', '2026-01-01 00:00:00', "
                          "'2026-01-01 00:00:01', 1.0)"))
    db.create_schema()
    published = db.video("v1").published
    assert published["status"] == "done"
    assert published["runs"][0]["artifacts"] == [{"key": "videos/v1/ocr.json"}]
    db.engine.dispose()
