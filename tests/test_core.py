"""Settings, artifact store, state database and the stage runner's bookkeeping."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from textbook.config import ConfigError, load_settings
from textbook.context import Context
from textbook.records import UnsafeIdError, Video, check_video_id
from textbook.runner import StageFailed, run_stage
from textbook.stages.base import StageResult, stage
from textbook.state import StateDB
from textbook.state.db import ClaimLost
from textbook.store import LocalStore, check_key


# -- settings -----------------------------------------------------------------------------------

def test_settings_file_then_env_then_overrides(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data_root: /srv/x\nkeyframes:\n  ssim_threshold: 0.5\n  fps: 2\n")
    s = load_settings(cfg, environ={"TEXTBOOK_KEYFRAMES__FPS": "3", "TEXTBOOK_EXPORT__SINGLE_JSON": "yes"})
    assert s.data_root == "/srv/x"
    assert s.keyframes.ssim_threshold == 0.5
    assert s.keyframes.fps == 3.0
    assert s.export.single_json is True
    s2 = load_settings(cfg, environ={}, keyframes={"fps": 5})
    assert s2.keyframes.fps == 5.0 and s2.keyframes.ssim_threshold == 0.5


@pytest.mark.parametrize("text, needle", [
    ("keyframes:\n  ssim_treshold: 0.5\n", "ssim_treshold"),
    ("keyframes:\n  fps: fast\n", "keyframes.fps"),
    ("- a\n- b\n", "mapping"),
    ("keyframes: [1, 2\n", "not valid YAML"),
])
def test_bad_config_names_the_key(tmp_path, text, needle):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=needle) as err:
        load_settings(cfg, environ={})
    assert "bad.yaml" in str(err.value)


def test_env_typo_is_an_error():
    with pytest.raises(ConfigError, match="nope"):
        load_settings(environ={"TEXTBOOK_NOPE": "1"})


def test_section_hash_changes_only_with_its_section():
    a = load_settings(environ={})
    b = a.replace(keyframes={"ssim_threshold": 0.5})
    assert a.section_hash("ocr") == b.section_hash("ocr")
    assert a.section_hash("keyframes") != b.section_hash("keyframes")


# -- ids and keys -------------------------------------------------------------------------------

@pytest.mark.parametrize("vid", ["-abc_DEF12", "dQw4w9WgXcQ", "a"])
def test_youtube_like_ids_are_safe(vid):
    assert check_video_id(vid) == vid


@pytest.mark.parametrize("vid", ["../etc", "a/b", "a b", "", ".", "..", "x;rm -rf", "é"])
def test_unsafe_ids_are_refused(vid):
    with pytest.raises(UnsafeIdError):
        check_video_id(vid)
    with pytest.raises(UnsafeIdError):
        Video(video_id=vid, url="http://x")


@pytest.mark.parametrize("key", ["../x", "/abs", "a//b", "a/./b", "a/../b", "a b"])
def test_store_keys_cannot_leave_root(key):
    with pytest.raises(ValueError):
        check_key(key)


# -- local store --------------------------------------------------------------------------------

def test_local_store_roundtrip_and_checksums(tmp_path):
    store = LocalStore(tmp_path / "s")
    ref = store.put_json("videos/a/x.json", {"b": 1})
    assert store.get_json("videos/a/x.json") == {"b": 1}
    assert store.checksum(ref.key) == ref.sha256
    src = tmp_path / "f.bin"
    src.write_bytes(b"z" * 1000)
    ref2 = store.put_file("videos/a/f.bin", src)
    assert ref2.size == 1000
    with store.local_path("videos/a/f.bin") as p:
        assert p.read_bytes() == b"z" * 1000
    assert list(store.list("videos/a")) == ["videos/a/f.bin", "videos/a/x.json"]


def test_local_store_write_is_atomic(tmp_path):
    """A write that dies half-way leaves the old artifact intact and no temp file behind."""
    store = LocalStore(tmp_path / "s")
    store.put_bytes("k/a.txt", b"old")

    class Boom(Exception):
        pass

    def bad_write(tmp: Path) -> None:
        tmp.write_bytes(b"partial")
        raise Boom

    with pytest.raises(Boom):
        store._atomic("k/a.txt", bad_write)
    assert store.get_bytes("k/a.txt") == b"old"
    assert [p.name for p in (tmp_path / "s" / "k").iterdir()] == ["a.txt"]


# -- state database -----------------------------------------------------------------------------

class KP:
    def __init__(self, kp_id: str) -> None:
        self.id, self.subject, self.course, self.sub_course = kp_id, "s", "c", "sc"
        self.name, self.path, self.query, self.level = kp_id, f"S / C / SC / {kp_id}", kp_id, 3


def _db_roundtrip(db: StateDB) -> None:
    db.create_schema()
    db.upsert_knowledge_points([KP("k1"), KP("k2")])
    assert db.add_video(Video("v1", "http://a/v1", search_keyword="q1"), "k1") is True
    assert db.add_video(Video("v1", "http://a/v1", search_keyword="q2"), "k2") is False  # same video, new link
    assert [link.kp_id for link in db.links("v1")] == ["k1", "k2"]
    assert [v.video_id for v in db.videos(kp_ids=["k2"])] == ["v1"]
    assert db.claim("v1", "download", "h1", "t1") is True
    assert db.claim("v1", "download", "h1", "t1") is True  # a retried claim that did commit is ours
    assert db.claim("v1", "download", "h1", "t2") is False  # held by a live worker
    db.finish("v1", "download", "failed", "t1", error="http_500: boom")
    assert db.claim("v1", "download", "h1", "t3") is True  # a failed run may be claimed again
    with pytest.raises(ClaimLost):
        db.finish("v1", "download", "done", "t1")  # the old claim cannot overwrite the new one
    db.finish("v1", "download", "done", "t3", artifacts=[{"key": "k", "sha256": "x", "size": 1}], result={"n": 1})
    run = db.run("v1", "download")
    assert (run.status, run.attempts, run.result, run.error) == ("done", 2, {"n": 1}, "")


def test_state_on_sqlite(tmp_path):
    _db_roundtrip(StateDB(f"sqlite:///{tmp_path}/s.db"))


def test_state_on_postgres(pg_url):
    db = StateDB(pg_url)
    _db_roundtrip(db)
    db.engine.dispose()


def _race(db: StateDB, n: int) -> dict[str, bool]:
    """n threads (own connections) try to claim the same run at once: exactly one may win."""
    barrier = threading.Barrier(n)
    wins: dict[str, bool] = {}

    def attempt(i: int) -> None:
        barrier.wait()
        wins[f"t{i}"] = db.claim("v1", "keyframes", "h", f"t{i}")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return wins


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_claims_have_one_winner(backend, tmp_path, request):
    url = f"sqlite:///{tmp_path}/s.db" if backend == "sqlite" else request.getfixturevalue("pg_url")
    db = StateDB(url)
    db.create_schema()
    db.add_video(Video("v1", "http://a/v1"))
    wins = _race(db, 8)
    assert sorted(wins.values()) == [False] * 7 + [True]
    db.finish("v1", "keyframes", "failed", next(t for t, won in wins.items() if won), error="x")
    assert sorted(_race(db, 8).values()) == [False] * 7 + [True]
    db.engine.dispose()


# -- runner -------------------------------------------------------------------------------------

calls: list[str] = []


@stage("probe_stage", sections=("keyframes",))
def probe_stage(video: Video, ctx: Context) -> StageResult:
    calls.append(video.video_id)
    if video.title == "bad":
        raise ValueError("corrupt input")
    ref = ctx.store.put_json(f"videos/{video.video_id}/probe.json", {"ok": True})
    return StageResult(artifacts=[ref], summary={"n": 1}, filtered="too_short" if video.title == "short" else "")


def test_runner_skips_finished_work_and_reruns_on_config_change(ctx):
    calls.clear()
    ctx.db.add_video(Video("v1", "http://a/v1"))
    assert run_stage(probe_stage, "v1", ctx).status == "done"
    assert run_stage(probe_stage, "v1", ctx).status == "cached"
    assert calls == ["v1"]
    other = ctx.settings.replace(ocr={"language": "deu"})  # a section this stage does not read
    assert run_stage(probe_stage, "v1", Context(other, ctx.store, ctx.db)).status == "cached"
    changed = ctx.settings.replace(keyframes={"ssim_threshold": 0.5})
    assert run_stage(probe_stage, "v1", Context(changed, ctx.store, ctx.db)).status == "done"
    assert calls == ["v1", "v1"]
    run = ctx.db.run("v1", "probe_stage")
    assert run.artifacts[0]["key"] == "videos/v1/probe.json" and run.artifacts[0]["sha256"]


def test_runner_records_failure_and_filter(ctx):
    ctx.db.add_video(Video("bad1", "http://a/bad1", title="bad"))
    ctx.db.add_video(Video("short1", "http://a/short1", title="short"))
    with pytest.raises(StageFailed, match="corrupt input"):
        run_stage(probe_stage, "bad1", ctx)
    row = ctx.db.video("bad1")
    assert row.status == "failed" and row.reason == "probe_stage: error: corrupt input"  # category: one line
    assert ctx.db.run("bad1", "probe_stage").error == "ValueError: corrupt input"
    out = run_stage(probe_stage, "short1", ctx)
    assert out.filtered and ctx.db.video("short1").status == "filtered"
    assert ctx.db.video("short1").reason == "too_short"


def test_runner_refuses_unknown_video(ctx):
    with pytest.raises(StageFailed, match="unknown video"):
        run_stage(probe_stage, "nope", ctx)


class Killed(BaseException):
    """What an orchestrator's timeout looks like: not an Exception."""


@stage("killed_stage")
def killed_stage(video: Video, ctx: Context) -> StageResult:
    raise Killed("execution_timeout")


def test_a_killed_stage_is_recorded_failed_not_left_running(ctx):
    ctx.db.add_video(Video("k1", "http://a/k1"))
    with pytest.raises(Killed):
        run_stage(killed_stage, "k1", ctx)
    run = ctx.db.run("k1", "killed_stage")
    assert run.status == "failed" and "Killed: execution_timeout" in run.error
    with pytest.raises(Killed):  # claimable again at once: no StageBusy for hours
        run_stage(killed_stage, "k1", ctx)
    assert ctx.db.run("k1", "killed_stage").attempts == 2


def test_a_stage_held_by_another_worker_is_busy(ctx):
    from textbook.runner import StageBusy

    ctx.db.add_video(Video("b1", "http://a/b1"))
    assert ctx.db.claim("b1", "probe_stage", "x", "a-live-worker")  # this process: alive, heartbeat fresh
    with pytest.raises(StageBusy, match="is being run by"):
        run_stage(probe_stage, "b1", ctx)


def test_permanent_failures_are_marked_and_finish_the_video(ctx):
    from textbook.media import MediaError
    from textbook.pipeline import is_finished, stage_by_name

    @stage("corrupt_stage")
    def corrupt(video: Video, ctx: Context) -> StageResult:
        raise MediaError("empty file")

    ctx.db.add_video(Video("c1", "http://a/c1"))
    with pytest.raises(StageFailed) as err:
        run_stage(corrupt, "c1", ctx)
    assert err.value.permanent and ctx.db.run("c1", "corrupt_stage").result == {"permanent": True, "category": "corrupt", "source": ""}
    # a transient failure in the pipeline's first stage leaves the video unfinished (retried next run)
    ctx.db.add_video(Video("t1", "http://127.0.0.1:9/t1.mp4", source="urls"))
    with pytest.raises(StageFailed) as err:
        run_stage(stage_by_name("download"), "t1", Context(ctx.settings.replace(download={"retries": 0}),
                                                           ctx.store, ctx.db))
    assert not err.value.permanent and not is_finished("t1", ctx)


# -- sources: ids -------------------------------------------------------------------------------

@pytest.mark.parametrize("url, vid", [
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=3", "dQw4w9WgXcQ"),
    ("https://youtu.be/-abc_DEF123", "-abc_DEF123"),
    ("https://music.youtube.com/watch?v=dQw4w9WgXcQ", "dQw4w9WgXcQ"),
    ("https://www.youtube.com/shorts/dQw4w9WgXcQ", "dQw4w9WgXcQ"),
    ("https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ", "dQw4w9WgXcQ"),
    ("http://127.0.0.1:8765/lectures/calc-deriv01.html", "calc-deriv01"),
    ("http://h/a b/ü.mp4", "u" + __import__("hashlib").sha1(b"http://h/a b/\xc3\xbc.mp4").hexdigest()[:11]),
])
def test_ids_from_urls(url, vid):
    from textbook.sources import safe_id_from_url

    assert safe_id_from_url(url) == vid


def test_different_videos_with_the_same_file_name_keep_both(ctx, tmp_path):
    from textbook.collect import discover

    urls = tmp_path / "urls.txt"
    urls.write_text("http://h/a/lecture.mp4\nhttp://h/b/lecture.mp4\nhttp://other:8080/a/lecture.mp4\n")
    c = Context(ctx.settings.replace(search={"source": "urls", "urls_file": str(urls)}), ctx.store, ctx.db)
    kp = c.taxonomy.knowledge_points[0]
    ids = discover(kp, c)
    assert len(ids) == 2 and ids[0] == "lecture" and ids[1].startswith("lecture-")  # the third is the first again
    urls.write_text("http://h/c/lecture.mp4\n")  # a later run finds yet another lecture.mp4
    later = discover(kp, c)
    assert later[0].startswith("lecture-") and later[0] not in ids
    assert c.db.video("lecture").url == "http://h/a/lecture.mp4"
