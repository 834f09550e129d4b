"""LLM backends: the honest offline default and the OpenAI-compatible HTTP client."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from textbook.config import RefineSettings
from textbook.refine import NoRefiner, OpenAIRefiner, RefineError, get_refiner


def test_offline_default_scores_nothing_and_keeps_text():
    r = get_refiner(RefineSettings())
    assert isinstance(r, NoRefiner) and r.name == "none"
    assert r.score("t", "d", "text").value is None
    assert r.refine(["uh so the derivative", "b"]) == ["uh so the derivative", "b"]


class _Endpoint(BaseHTTPRequestHandler):
    """A chat-completions endpoint that follows the prompt's line protocol deterministically."""

    mode = "ok"
    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if self.mode == "error":
            self.send_error(500)
            return
        user = body["messages"][1]["content"]
        if user.startswith("Title:"):
            answer = "score: 7\nreason: explains derivatives" if self.mode == "ok" else "I like it"
        else:  # refine: capitalise each numbered line, drop line 1 to exercise the fallback
            answer = "\n".join(f"{n}: {t.capitalize()}." for n, t in re.findall(r"^(\d+): (.*)$", user, re.M)
                               if n != "1")
        data = json.dumps({"choices": [{"message": {"content": answer}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Endpoint.mode, _Endpoint.requests = "ok", []
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_openai_backend_scores_and_refines(endpoint, monkeypatch):
    monkeypatch.setenv("TEST_KEY", "sekrit")
    r = get_refiner(RefineSettings(backend="openai", endpoint=endpoint, model="m", api_key_env="TEST_KEY"))
    score = r.score("Derivatives", "a lecture", "the derivative is a rate of change")
    assert (score.value, score.reason) == (7.0, "explains derivatives")
    lines = [f"line {i}" for i in range(45)]
    out = r.refine(lines)
    assert len(out) == 45 and out[0] == "Line 0." and out[2] == "Line 2."
    assert out[1] == "line 1"  # a line the model dropped keeps its original text
    assert out[41] == "line 41"  # second batch starts at 40, its line 1 was dropped too
    assert len(_Endpoint.requests) == 3  # one score + two batches of at most 40 lines
    assert _Endpoint.requests[0]["path"] == "/v1/chat/completions"
    assert _Endpoint.requests[0]["auth"] == "Bearer sekrit"


def test_openai_backend_errors_are_clear(endpoint):
    r = OpenAIRefiner(RefineSettings(backend="openai", endpoint=endpoint, model="m"))
    _Endpoint.mode = "garbled"
    with pytest.raises(RefineError, match="no 'score: N'"):
        r.score("t", "d", "x")
    _Endpoint.mode = "error"
    with pytest.raises(RefineError, match="HTTP 500"):
        r.refine(["a"])
    with pytest.raises(RefineError, match="unreachable"):
        OpenAIRefiner(RefineSettings(backend="openai", endpoint="http://127.0.0.1:9/v1", model="m")).refine(["a"])
    with pytest.raises(RefineError, match="needs refine.endpoint"):
        get_refiner(RefineSettings(backend="openai"))
    with pytest.raises(RefineError, match="unknown backend"):
        get_refiner(RefineSettings(backend="gpt9"))
