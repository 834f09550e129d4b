"""The GPU worker's model server: model tasks sent over loopback HTTP, each model built once."""

from __future__ import annotations

import json
import threading
import urllib.request

import pytest
from media_helpers import register_downloaded, speech_wav, video_with_audio

from textbook.context import Context
from textbook.models import BackendError, cache_key
from textbook.models.embedders import MINILM
from textbook.model_server import ModelServer
from textbook.runner import StageFailed
from textbook.tasks import run_task

SPEECH = "the derivative of a function measures how fast the function changes at a point"


@pytest.fixture
def server(ctx):
    srv = ModelServer(ctx, port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _client(ctx: Context, srv: ModelServer) -> Context:
    """A worker's context: same database and store, model tasks routed to the server."""
    url = f"http://127.0.0.1:{srv.server_port}"
    return Context(ctx.settings.replace(workers={"model_server_url": url}), ctx.store, ctx.db)


def test_model_tasks_run_in_the_server_and_load_each_model_once(ctx, server, tmp_path):
    media = video_with_audio(tmp_path / "talk.mp4", speech_wav(tmp_path / "talk.wav", SPEECH))
    for vid in ("v1", "v2", "v3"):
        register_downloaded(ctx, vid, media, duration=None)
    worker = _client(ctx, server)
    for vid in ("v1", "v2", "v3"):
        out = run_task("audio_transcript", vid, worker)  # audio + ASR, in the server's process
        assert out.stage == "transcript" and out.status == "done"
    stats = json.load(urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/stats"))
    assert stats["requests"] == 3
    assert stats["backend_builds"] == {cache_key("asr", ctx.settings.transcript, "faster_whisper"): 1,
                                       cache_key("llm", ctx.settings.refine.llm): 1,
                                       cache_key("text_embedder", MINILM): 1}  # built at start, used after
    assert ctx.db.run("v3", "transcript").result["source"] == "faster_whisper"
    assert worker.backend_builds == {}  # the worker process itself loaded nothing


def test_a_failure_in_the_server_fails_the_task_with_its_reason(ctx, server, tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    register_downloaded(ctx, "broken", tmp_path / "empty.mp4")
    with pytest.raises(StageFailed, match="empty file") as err:
        run_task("audio_transcript", "broken", _client(ctx, server))
    assert err.value.stage == "audio"
    assert ctx.db.video("broken").status == "failed"


def test_cpu_tasks_never_go_to_the_server(ctx, server):
    with pytest.raises(StageFailed, match="unknown video"):
        run_task("clips", "nope", _client(ctx, server))
    assert server.requests == 0


def test_unreachable_server_is_a_clear_error(ctx):
    worker = Context(ctx.settings.replace(workers={"model_server_url": "http://127.0.0.1:9"}), ctx.store, ctx.db)
    with pytest.raises(RuntimeError, match="model server http://127.0.0.1:9 unreachable"):
        run_task("audio_transcript", "v1", worker)


def test_a_misconfigured_model_stops_the_server_before_it_listens(ctx):
    bad = Context(ctx.settings.replace(refine={"judges": [{"backend": "openai", "model": "m"}]}), ctx.store, ctx.db)
    with pytest.raises(BackendError,
                       match=r"refine\.judges\[0\]\.backend 'openai' needs refine\.judges\[0\]\.endpoint"):
        ModelServer(bad, port=0)
