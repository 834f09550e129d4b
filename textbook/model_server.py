"""A long-lived process that runs model stages, so each model loads once per GPU worker.

Airflow 3 runs every task in a fresh process: a model loaded there dies with the task, and CUDA
cannot be shared with forked children. The GPU worker therefore starts this server next to its
Celery worker; gpu-queue tasks only send ``(step, video ids)`` to it over loopback HTTP and wait.
The server keeps one Context (and so one copy of every backend) for its whole life and runs one
request at a time, which is what one GPU can do anyway. A request may carry several videos.
Every model the settings configure (textbook.models.configured) is built before the port opens, so
``/health`` answers only once they are loaded, and a misconfigured one stops the server at start.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from textbook import models
from textbook.context import Context
from textbook.runner import StageBusy, StageFailed

log = logging.getLogger(__name__)


class ModelServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, ctx: Context, host: str = "127.0.0.1", port: int = 8790) -> None:
        for use in models.configured(ctx.settings):
            use.load(ctx)
        super().__init__((host, port), _Handler)
        self.ctx = ctx
        self.gpu = threading.Lock()
        self.requests = 0

    def run(self, step: str, video_ids: list[str], force_stage: str | None = None) -> list[dict[str, Any]]:
        """Run ``step`` on each video in turn; a failure is reported for its video, the rest go on."""
        from textbook.tasks import run_task

        out = []
        with self.gpu:
            self.requests += 1
            for vid in video_ids:
                try:
                    out.append({"ok": True, **asdict(run_task(step, vid, self.ctx, remote_ok=False,
                                                                  force_stage=force_stage))})
                except StageFailed as exc:
                    out.append({"ok": False, "video_id": vid, "stage": exc.stage, "reason": exc.reason,
                                "permanent": exc.permanent})
                except StageBusy as exc:
                    out.append({"ok": False, "video_id": vid, "busy": str(exc)})
        return out

    def stats(self) -> dict[str, Any]:
        return {"requests": self.requests, "backend_builds": dict(self.ctx.backend_builds)}


class _Handler(BaseHTTPRequestHandler):
    server: ModelServer

    def _reply(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/health":
            self._reply(200, {"ok": True})
        elif self.path == "/stats":
            self._reply(200, self.server.stats())
        else:
            self._reply(404, {"error": f"no route {self.path}"})

    def do_POST(self) -> None:  # noqa: N802
        if self.path != "/run":
            self._reply(404, {"error": f"no route {self.path}"})
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            step, video_ids, force_stage = body["step"], list(body["video_ids"]), body.get("force_stage")
        except (ValueError, KeyError, TypeError) as exc:
            self._reply(400, {"error": f"bad request: {exc}"})
            return
        try:
            self._reply(200, {"results": self.server.run(step, video_ids, force_stage)})
        except KeyError as exc:  # unknown step
            self._reply(400, {"error": str(exc)})

    def log_message(self, fmt: str, *args: Any) -> None:
        log.info("model server: " + fmt, *args)


def run_remote(url: str, step: str, video_id: str, timeout: float,
               force_stage: str | None = None) -> dict[str, Any]:
    """Ask the model server at ``url`` to run ``step`` on one video; StageFailed if it failed."""
    body = {"step": step, "video_ids": [video_id], "force_stage": force_stage}
    req = urllib.request.Request(url.rstrip("/") + "/run", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            result = json.load(resp)["results"][0]
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"model server {url}: HTTP {exc.code}: {exc.read()[:300].decode(errors='replace')}") from None
    except (urllib.error.URLError, TimeoutError) as exc:
        raise RuntimeError(f"model server {url} unreachable: {exc}") from None
    if not result.pop("ok"):
        if "busy" in result:
            raise StageBusy(result["busy"])
        raise StageFailed(result["video_id"], result["stage"], result["reason"], result["permanent"])
    return result
