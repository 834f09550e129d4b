"""Alembic migrations build exactly the schema the models declare, on SQLite and Postgres."""

from __future__ import annotations

import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from textbook.state import Base, StateDB


def _diff(db: StateDB) -> list:
    with db.engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migrated_schema_equals_the_models(backend, tmp_path, request):
    url = f"sqlite:///{tmp_path}/s.db" if backend == "sqlite" else request.getfixturevalue("pg_url")
    db = StateDB(url)
    db.create_schema()
    assert _diff(db) == []
    db.create_schema()  # idempotent
    db.engine.dispose()


def test_workers_migrating_at_once_do_not_collide(pg_url):
    errors: list[BaseException] = []

    def migrate() -> None:
        db = StateDB(pg_url)
        try:
            db.create_schema()
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            db.engine.dispose()

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    db = StateDB(pg_url)
    assert _diff(db) == []
    db.engine.dispose()
