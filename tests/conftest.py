"""Shared fixtures: a fresh context on SQLite + a local store, and a fresh Postgres database."""

from __future__ import annotations

import os
import uuid

import pytest

from textbook.config import Settings, load_settings
from textbook.context import Context

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PG_ADMIN_URL = os.environ.get("TEXTBOOK_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def settings(tmp_path) -> Settings:
    return load_settings(environ={}, data_root=str(tmp_path / "data"))


@pytest.fixture
def ctx(settings) -> Context:
    return Context.from_settings(settings)


@pytest.fixture
def pg_url():
    """A new, empty Postgres database for one test, dropped afterwards."""
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"textbook_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # the suite needs a real Postgres: scripts/services.sh starts one
        pytest.fail(f"Postgres at {PG_ADMIN_URL} is not reachable ({exc}); run scripts/services.sh")
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def airflow_server(tmp_path_factory):
    """A real Airflow api-server with our dags/ and plugins/ (tests/airflow_server.py), shared by
    the tests that need one; stopped at the end of the session."""
    from airflow_server import start_airflow_server

    with start_airflow_server(tmp_path_factory.mktemp("airflow-api")) as server:
        print(f"\nairflow api-server start-up: {server.timings}")
        yield server
