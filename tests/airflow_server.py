"""A real Airflow api-server for tests, started once per session (the ``airflow_server`` fixture).

SQLite metadata in a temporary AIRFLOW_HOME (``airflow db migrate``), the SimpleAuthManager with
known users and passwords, our dags/ and plugins/ folders, a small taxonomy of its own, and the
DAGs serialized by ``airflow dags reserialize`` (no dag-processor, no scheduler: a triggered run
stays queued). The same environment runs ``airflow dags test`` for a real run to retry.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from textbook.airflow_api import AirflowClient
from textbook.config import Settings, load_settings
from textbook.demo.through_airflow import REPO, airflow

# user -> (role, password)
USERS = {"admin": ("admin", "admin-" + secrets.token_hex(4)), "viewer": ("viewer", "viewer-" + secrets.token_hex(4))}

TAXONOMY = """\
subject: {id: %s, name: %s}
courses:
  - id: c
    name: Course
    level: 3
    sub_courses:
      - id: s
        name: Sub
        knowledge_points:
%s
"""
SUBJECTS = {  # subject id -> knowledge point ids (under c.s)
    "bt": ["one", "two", "three"],  # backfill
    "rt": ["lectures"],  # retry: `airflow dags test` with failing URLs
    "pt": ["alpha", "beta"],  # plugin view
    "br": ["mixed", "other"],  # bulk retry from the plugin, DAG params (tests/test_bulk_retry.py)
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AirflowServer:
    url: str
    env: dict[str, str]  # for `airflow` commands against the same metadata database
    settings: Settings  # what the server's plugin and its DAG tasks read
    log: Path
    timings: dict[str, float] = field(default_factory=dict)

    def client(self, user: str = "admin") -> AirflowClient:
        return AirflowClient(self.url, user, USERS[user][1], timeout=60)

    def dag_id(self, subject: str, kp: str) -> str:
        return f"textbook__{subject}__c__s__{kp}"


def _write_taxonomy(folder: Path, subjects: dict[str, list[str]]) -> None:
    folder.mkdir(parents=True)
    for subject, kps in subjects.items():
        points = "\n".join(f"          - {{id: {kp}, name: {kp.title()}}}" for kp in kps)
        (folder / f"{subject}.yaml").write_text(TAXONOMY % (subject, subject.upper(), points))


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"airflow api-server exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"airflow api-server not healthy after {timeout:.0f} s; see {log}")


@contextmanager
def start_airflow_server(root: Path, *, subjects: dict[str, list[str]] = SUBJECTS, scheduler: bool = False,
                         extra_env: dict[str, str] | None = None) -> Iterator[AirflowServer]:
    """``scheduler``: a real scheduler too (``extra_env`` then usually points the metadata at
    Postgres, which takes a scheduler and an api-server side by side better than SQLite)."""
    taxonomy, urls = root / "taxonomy", root / "urls.txt"
    _write_taxonomy(taxonomy, subjects)
    refused = free_port()  # nothing listens here: every download fails at once
    urls.write_text(f"http://127.0.0.1:{refused}/rt_first\nhttp://127.0.0.1:{refused}/rt_second\n")
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps({user: password for user, (_, password) in USERS.items()}))
    textbook_env = {"TEXTBOOK_TAXONOMY_DIR": str(taxonomy), "TEXTBOOK_DAGS__SCHEDULE": "none",
                    "TEXTBOOK_DAGS__RETRIES": "0", "TEXTBOOK_DOWNLOAD__RETRIES": "0",
                    "TEXTBOOK_SEARCH__SOURCE": "urls", "TEXTBOOK_SEARCH__URLS_FILE": str(urls)}
    settings = load_settings(environ=textbook_env, data_root=str(root / "data"))
    home = settings.data_path / "airflow"
    log = home / "test-server.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # Only what is set here: no TEXTBOOK_* or AIRFLOW__* variable of the calling shell leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEXTBOOK_", "AIRFLOW__"))}
    env.update({
        **textbook_env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{role}" for u, (role, _) in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",  # where a scheduler's tasks report
        "TEXTBOOK_DATA_ROOT": str(settings.data_path),
        **(extra_env or {}),
    })
    timings: dict[str, float] = {}

    started = time.monotonic()
    airflow(["db", "migrate"], env, log)
    timings["db migrate"] = time.monotonic() - started
    exe = shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"
    with log.open("a") as out:
        # The api-server and the DAG parse start together: neither needs the other.
        server = subprocess.Popen([exe, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                                  env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    processes = [server]
    try:
        parse_started = time.monotonic()
        airflow(["dags", "reserialize"], env, log)
        timings["dags reserialize"] = time.monotonic() - parse_started
        if scheduler:
            with log.open("a") as out:
                processes.append(subprocess.Popen([exe, "scheduler"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                                  start_new_session=True))
        _wait_healthy(url, server, log)
        timings["api-server healthy"] = time.monotonic() - parse_started
        timings["total"] = time.monotonic() - started
        yield AirflowServer(url, env, settings, log, timings)
    finally:
        for proc in processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # its own session: the process and its workers
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
