"""Two ``textbook run`` started in the same second on one fresh data root share the work."""

from __future__ import annotations

import pytest
from fault_harness import local_place, pg_place, start, verdict

pytestmark = pytest.mark.slow


def _race(place, reference, scenario: str, matrix) -> None:  # noqa: ANN001
    first, second = start(place, name="first"), start(place, name="second")
    codes = {w.log.name: (w.wait(), w.output) for w in (first, second)}
    v = verdict(scenario, place, reference.files, reference.exported)  # attempts == 1 for every stage run
    matrix(v)
    for log, (rc, output) in codes.items():
        assert rc == 0, f"{log}: exited {rc}:\n{output[-3000:]}"
    v.check(place.data)
    assert {status for status, _ in v.db.videos.values()} == {"done"}


def test_two_runs_at_once_on_sqlite(tmp_path, world, reference_sqlite, matrix):
    _race(local_place(tmp_path, world), reference_sqlite, "two runs at once, SQLite", matrix)


def test_two_runs_at_once_on_postgres(tmp_path, world, postgres, reference_postgres, matrix):
    _race(pg_place(tmp_path, world, postgres), reference_postgres, "two runs at once, Postgres", matrix)
