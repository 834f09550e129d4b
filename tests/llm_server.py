"""A chat-completions server on loopback whose answers are deterministic functions of the request.

``answer`` (a function of the parsed request body returning the content, or None for an HTTP 500)
is set per test; ``script(...)`` queues answers given in request order instead, ``answer`` taking
over once they are spent. Every request is kept in ``requests``.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator


class _Handler(BaseHTTPRequestHandler):
    server: "LLMServer"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        with self.server.lock:
            content = self.server.scripted.pop(0) if self.server.scripted else self.server.answer(body)
        if content is None:
            self.send_error(500)
            return
        data = content if isinstance(content, bytes) else json.dumps(
            {"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


class LLMServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict[str, Any]] = []
        self.answer: Callable[[dict[str, Any]], str | bytes | None] = lambda body: ""
        self.scripted: list[str | bytes | None] = []
        self.lock = threading.Lock()

    def script(self, *answers: str | bytes | None) -> None:
        """Answer the next requests with these, in order."""
        with self.lock:
            self.scripted = list(answers)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/v1"


@contextmanager
def llm_server() -> Iterator[LLMServer]:
    server = LLMServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
