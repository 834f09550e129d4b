"""A real distributed deployment on loopback, for the integration test and the overhead benchmark.

Postgres (Airflow's metadata and our own state database, fresh ones), Redis (broker), a real S3
server, and the Airflow 3 components as separate processes: api-server, scheduler, dag-processor,
a Celery worker on queue ``default`` and one on queue ``gpu`` beside a ``textbook model-server``.
Our state database and bucket are reached through Airflow connections (``textbook_db``,
``textbook_s3``), as in docker-compose.yaml. Everything is stopped and dropped on exit.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import redis
from airflow_server import free_port
from s3_server import S3Server
from sqlalchemy import create_engine, text

from textbook.airflow_api import AirflowClient
from textbook.config import Settings, load_settings
from textbook.demo.through_airflow import REPO, airflow

PG = "postgres@127.0.0.1:5432"
ADMIN = ("admin", "admin-" + secrets.token_hex(4))


@dataclass
class Cluster:
    api_url: str
    env: dict[str, str]
    settings: Settings  # what a library user on this machine would set to reach the same state and bucket
    model_server_url: str
    logs: Path
    timings: dict[str, float] = field(default_factory=dict)

    def client(self) -> AirflowClient:
        return AirflowClient(self.api_url, *ADMIN, timeout=60)

    def wait_for_dag(self, dag_id: str, timeout: float = 300.0) -> None:
        """Until the dag-processor has parsed and serialized ``dag_id``."""
        client, deadline = self.client(), time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(d["dag_id"] == dag_id for d in client.dags(dag_id)):
                return
            time.sleep(2)
        raise TimeoutError(f"{dag_id} not parsed after {timeout:.0f} s; see {self.logs}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 1800.0) -> str:
        """Until the run ends; its final state."""
        client, deadline = self.client(), time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = client.dag_run(dag_id, run_id)["state"]
            if state in ("success", "failed"):
                return state
            time.sleep(3)
        raise TimeoutError(f"{dag_id} run {run_id} not finished after {timeout:.0f} s; see {self.logs}")


def _database(name: str) -> None:
    engine = create_engine(f"postgresql+psycopg://{PG}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


def _drop(name: str) -> None:
    engine = create_engine(f"postgresql+psycopg://{PG}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def _start(stack: ExitStack, name: str, argv: list[str], env: dict[str, str], logs: Path) -> subprocess.Popen:
    """A component in its own process group, stopped (with its children) when the stack closes."""
    out = (logs / f"{name}.log").open("a")
    proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)

    def stop() -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        out.close()

    stack.callback(stop)
    return proc


def _wait_http(url: str, proc: subprocess.Popen, what: str, log: Path, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{what} did not answer at {url} after {timeout:.0f} s; see {log}")


@contextmanager
def start_cluster(root: Path, s3: S3Server, bucket: str, textbook_env: dict[str, str]) -> Iterator[Cluster]:
    """The whole deployment; ``textbook_env`` adds TEXTBOOK_* settings (source, retries...)."""
    started = time.monotonic()
    tag = uuid.uuid4().hex[:8]
    meta_db, state_db = f"airflow_it_{tag}", f"textbook_it_{tag}"
    redis_db = 1 + int(tag, 16) % 15
    logs = root / "logs"
    logs.mkdir(parents=True)
    api_port, model_port = free_port(), free_port()
    api_url, model_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{model_port}"
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps({ADMIN[0]: ADMIN[1]}))
    state_url = f"postgresql+psycopg://{PG}/{state_db}"
    textbook = {
        "TEXTBOOK_DATA_ROOT": str(root / "data"),
        "TEXTBOOK_DATABASE_CONN_ID": "textbook_db",
        "TEXTBOOK_STORE__KIND": "s3", "TEXTBOOK_STORE__BUCKET": bucket, "TEXTBOOK_STORE__PATH_STYLE": "true",
        "TEXTBOOK_STORE__ROOT": "artifacts",
        "TEXTBOOK_STORE__ENDPOINT_URL": s3.endpoint_url, "TEXTBOOK_STORE__AWS_CONN_ID": "textbook_s3",
        "TEXTBOOK_EXPORT__ROOT": f"s3://{bucket}/dataset",
        "TEXTBOOK_DAGS__SCHEDULE": "none",
        **textbook_env,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEXTBOOK_", "AIRFLOW__", "AWS_"))}
    env.update(textbook, **{
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{PG}/{meta_db}",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{redis_db}",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{PG}/{meta_db}",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN[0]}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__API__BASE_URL": api_url,
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW_CONN_TEXTBOOK_DB": f"postgresql://{PG}/{state_db}",
        "AIRFLOW_CONN_TEXTBOOK_S3": json.dumps({"conn_type": "aws", "login": s3.env["AWS_ACCESS_KEY_ID"],
                                                "password": s3.env["AWS_SECRET_ACCESS_KEY"],
                                                "extra": {"endpoint_url": s3.endpoint_url,
                                                          "region_name": s3.env["AWS_DEFAULT_REGION"]}}),
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
    })
    # The model server is a plain textbook process: it gets the state URL and credentials directly.
    model_env = {**env, **s3.env, "TEXTBOOK_DATABASE_URL": state_url, "TEXTBOOK_DATABASE_CONN_ID": ""}
    settings = load_settings(environ={k: v for k, v in model_env.items() if k.startswith("TEXTBOOK_")})
    exe = shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"
    textbook_exe = shutil.which("textbook", path=str(Path(sys.executable).parent)) or "textbook"
    timings: dict[str, float] = {}
    _database(meta_db)
    _database(state_db)
    try:
        with ExitStack() as stack:
            airflow(["db", "migrate"], env, logs / "setup.log")
            for pool, slots in (("youtube", 2), ("gpu", 1), ("textbook_pack", 1)):
                airflow(["pools", "set", pool, str(slots), pool], env, logs / "setup.log")
            timings["db migrate + pools"] = time.monotonic() - started
            api = _start(stack, "api-server", [exe, "api-server", "--host", "127.0.0.1", "--port", str(api_port),
                                               "--workers", "1"], env, logs)
            _start(stack, "scheduler", [exe, "scheduler"], env, logs)
            _start(stack, "dag-processor", [exe, "dag-processor"], env, logs)
            _start(stack, "worker-default", [exe, "celery", "worker", "--queues", "default", "--concurrency", "2",
                                             "--celery-hostname", f"default-{tag}@%h"],
                   {**env, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}, logs)
            model = _start(stack, "model-server", [textbook_exe, "model-server", "--port", str(model_port)],
                           model_env, logs)
            _start(stack, "worker-gpu", [exe, "celery", "worker", "--queues", "gpu", "--concurrency", "1",
                                         "--celery-hostname", f"gpu-{tag}@%h"],
                   {**env, "TEXTBOOK_WORKERS__MODEL_SERVER_URL": model_url,
                    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}, logs)
            _wait_http(f"{api_url}/api/v2/monitor/health", api, "airflow api-server", logs / "api-server.log")
            _wait_http(f"{model_url}/health", model, "model server", logs / "model-server.log")
            timings["components up"] = time.monotonic() - started
            yield Cluster(api_url, env, settings, model_url, logs, timings)
    finally:
        _drop(meta_db)
        _drop(state_db)
        redis.Redis(host="127.0.0.1", port=6379, db=redis_db).flushdb()
