"""State queries at corpus scale: `search`'s work-left check and `textbook status` read whole
knowledge points and subjects with a fixed number of queries, and say what the per-video
checks say."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from typing import Iterator

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from textbook import status
from textbook.cli import main
from textbook.collect import linked_videos
from textbook.config import load_settings
from textbook.context import Context
from textbook.pipeline import STAGES, is_finished, work_left
from textbook.records import Video
from textbook.runner import _fingerprint, fingerprint
from textbook.sources.local import source_stamp


@contextmanager
def counted() -> Iterator[list[str]]:
    """Every SQL statement any engine executes inside the block."""
    statements: list[str] = []

    def note(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", note)
    try:
        yield statements
    finally:
        event.remove(Engine, "before_cursor_execute", note)


def record(ctx: Context, video_id: str, stage: str, status: str = "done", *, config_hash: str | None = None,
           result: dict | None = None, error: str = "") -> None:
    token = uuid.uuid4().hex
    stage_obj = next(s for s in STAGES if s.name == stage)
    assert ctx.db.claim(video_id, stage, config_hash or fingerprint(stage_obj, ctx), token)
    ctx.db.finish(video_id, stage, status, token, result=result or {}, error=error)


def chain(ctx: Context, video_id: str, upto: int | None = None, **kwargs) -> None:  # noqa: ANN003
    for s in STAGES[:upto]:
        record(ctx, video_id, s.name, **kwargs)


@pytest.fixture
def mixed(ctx, tmp_path) -> tuple[Context, str, str, dict[str, bool]]:
    """Videos of one knowledge point in every state a chain can be in; video id -> finished."""
    kp, other = ctx.taxonomy.knowledge_points[:2]
    ctx.db.upsert_knowledge_points([kp, other])
    media = tmp_path / "media"
    media.mkdir()

    def add(vid: str, url: str | None = None, kp_id: str = kp.id) -> str:
        ctx.db.add_video(Video(vid, url or f"https://example.org/{vid}"), kp_id)
        return vid

    chain(ctx, add("done"))
    legacy = add("legacy")
    for s in STAGES:
        record(ctx, legacy, s.name, config_hash=_fingerprint(s, ctx, legacy=True))
    filters = next(k for k, s in enumerate(STAGES) if s.name == "filters")
    chain(ctx, add("stale"), filters)
    record(ctx, "stale", "filters", config_hash="0123456789abcdef")
    filtered = add("filtered")
    chain(ctx, filtered, filters)
    record(ctx, filtered, "filters", result={"filtered": "too_short: 12 s"})
    chain(ctx, add("skipped"), filters + 1)
    for s in STAGES[filters + 1:]:
        record(ctx, "skipped", s.name, status="skipped", result={"skipped": "too_short"})
    record(ctx, add("transient"), "metadata")  # the metadata filter passed it; its download failed
    record(ctx, "transient", "download", "failed", result={"permanent": False}, error="HTTP 503")
    for name in ("same", "changed"):
        file = media / f"{name}.mp4"
        file.write_bytes(b"broken")
        add(name, file.as_uri())
        record(ctx, name, "metadata")
        record(ctx, name, "download", "failed", result={"permanent": True, "source": source_stamp(file.as_uri())},
               error="corrupt file")
    (media / "changed.mp4").write_bytes(b"fixed now")
    record(ctx, add("removed"), "metadata")
    record(ctx, "removed", "download", "failed", result={"permanent": True, "source": ""}, error="removed")
    chain(ctx, add("half"), filters + 2)
    add("new")
    add("found-by-other", kp_id=other.id)
    add("found-by-other", kp_id=kp.id)  # found again: the first knowledge point's DAG processes it
    finished = {"done": True, "legacy": True, "stale": False, "filtered": True, "skipped": True, "transient": False,
                "same": True, "changed": False, "removed": True, "half": False, "new": False}
    return ctx, kp.id, other.id, finished


def per_video(ctx: Context, kp_id: str) -> list[str]:
    """The check `search` made before: one video at a time."""
    return [vid for vid in linked_videos(ctx, [kp_id])
            if ctx.db.links(vid)[0].kp_id == kp_id and not is_finished(vid, ctx)]


def test_work_left_is_one_query_and_agrees_with_the_per_video_check(mixed):
    ctx, kp_id, other, finished = mixed
    assert {vid: is_finished(vid, ctx) for vid in finished} == finished  # the set covers both answers
    with counted() as statements:
        left = work_left(kp_id, ctx)
    assert len(statements) == 1
    assert left == per_video(ctx, kp_id) == sorted(vid for vid, done in finished.items() if not done)
    assert work_left(other, ctx) == per_video(ctx, other) == ["found-by-other"]


def _corpus(ctx: Context, videos_per_kp: int) -> list:
    kps = ctx.taxonomy.select(subject="mathematics")[:4]
    ctx.db.upsert_knowledge_points(kps)
    for kp in kps:
        for i in range(videos_per_kp):
            vid = f"{kp.id.replace('.', '_')}-{i}"
            ctx.db.add_video(Video(vid, f"https://example.org/{vid}"), kp.id)
            if i % 3 == 0:
                ctx.db.set_video_status(vid, "failed", "download: HTTP 403")
            elif i % 3 == 1:
                ctx.db.set_video_status(vid, "done")
    return kps


@pytest.mark.parametrize("videos_per_kp", [3, 30])
def test_status_reads_subjects_and_knowledge_points_in_a_fixed_number_of_queries(ctx, videos_per_kp):
    kps = _corpus(ctx, videos_per_kp)
    with counted() as statements:
        rows = status.kp_progress(ctx, ctx.taxonomy.select(subject="mathematics"))
        subjects = status.subject_progress(ctx)
        total = status.video_counts(ctx)
        links = status.video_links(ctx, status="failed")
    assert len(statements) == 6  # two per progress call, one for the totals, one for the links
    by_kp = {row.kp.id: row for row in rows}
    n = videos_per_kp
    assert all(by_kp[kp.id].searched and by_kp[kp.id].counts.total == n for kp in kps)
    assert by_kp[kps[0].id].counts.by_status == {"failed": (n + 2) // 3, "done": (n + 1) // 3, "new": n // 3}
    assert next(s for s in subjects if s.id == "mathematics").counts.total == 4 * n == total.total
    assert links == {row.video_id: [row.video_id.rsplit("-", 1)[0].replace("_", ".")]
                     for row in ctx.db.videos(status="failed")}


def test_cli_status_per_subject_and_per_knowledge_point(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEXTBOOK_DATA_ROOT", str(tmp_path))
    ctx = Context.from_settings(load_settings())
    kps = _corpus(ctx, 3)
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "12 videos: 4 new, 4 done, 4 failed"
    assert "  mathematics             4/" in out and "knowledge points searched, 12 videos" in out
    assert main(["status", "--subject", "mathematics"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("mathematics: 4/") and out[0].endswith("12 videos: 4 new, 4 done, 4 failed")
    assert any(line.split()[:2] == [kps[0].id, "searched"] and line.endswith("3 videos: 1 new, 1 done, 1 failed")
               for line in out)
    assert main(["status", "--subject", "mathematics", "--failed"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "4 videos: 4 failed"
    assert [f"{kps[0].id.replace('.', '_')}-0", "failed", kps[0].id, "download:", "HTTP", "403"] in [
        line.split() for line in out[1:]]
    assert main(["status", "--subject", "nope"]) == 1
    assert "unknown subject 'nope'" in capsys.readouterr().err
