"""Fixtures of the fault-injection suite, and the matrix it prints at the end.

The world (three captioned lectures) is rendered once per session; a clean reference run per
backend (SQLite, Postgres, S3) is made once and every scenario compares its dataset with it.
Each scenario adds one row (scenario, videos, lost, duplicated, stuck) to the matrix printed by
``pytest_terminal_summary``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fault_harness import Place, Reference, aws_env, dataset_files, local_place, pg_place, read_db, run, s3_place
from fault_services import PrivatePostgres, RestartableS3
from fault_world import render_world

_MATRIX = pytest.StashKey[list]()
_OUTCOME = pytest.StashKey[str]()


# -- the matrix -----------------------------------------------------------------------------------

def pytest_configure(config: pytest.Config) -> None:
    config.stash[_MATRIX] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ANN001, ANN201
    """Keep each test's outcome for its matrix row."""
    report = (yield).get_result()
    if report.when == "call":
        item.stash[_OUTCOME] = "xfailed" if getattr(report, "wasxfail", None) and report.skipped else report.outcome


@pytest.fixture
def matrix(request):
    """``matrix(verdict)`` adds the scenario's row. A scenario that failed before judging its end
    state still gets a row, with its counts unknown."""
    verdicts = []
    yield verdicts.append
    result = request.node.stash.get(_OUTCOME, "error")
    rows = [{**v.row(), "result": result} for v in verdicts] or [
        {"scenario": request.node.name, "videos": "?", "lost": "?", "duplicated": "?", "stuck": "?", "result": result}]
    request.config.stash[_MATRIX].extend(rows)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    rows = config.stash.get(_MATRIX, [])
    if not rows:
        return
    cols = ("scenario", "videos", "lost", "duplicated", "stuck", "result")
    width = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    terminalreporter.section("fault matrix")
    terminalreporter.write_line("  ".join(c.ljust(width[c]) for c in cols))
    for r in rows:
        terminalreporter.write_line("  ".join(str(r[c]).ljust(width[c]) for c in cols))


# -- the world and its services -------------------------------------------------------------------

@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    """The folder of lectures the ``local`` source reads (media + ``.en.vtt`` captions)."""
    folder = tmp_path_factory.mktemp("world") / "lectures"
    render_world(folder)
    return folder


@pytest.fixture(scope="session")
def postgres():
    """Our own Postgres cluster for the session: scenarios may stop and start it."""
    pg = PrivatePostgres()
    yield pg
    pg.close()


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    server = RestartableS3(tmp_path_factory.mktemp("s3rver"))
    yield server
    server.stop()


# -- clean reference runs -------------------------------------------------------------------------

def _reference(place: Place, env: dict[str, str] | None = None) -> Reference:
    run(place, env=env)
    db = read_db(place.db_url)
    assert {s for s, _ in db.videos.values()} == {"done"}, f"reference run did not finish every video: {db.videos}"
    ref = Reference(dataset_files(place.dataset))
    assert len(ref.exported) == 3, f"the reference exported {sorted(ref.exported)}"
    return ref


@pytest.fixture(scope="session")
def sqlite_finished(tmp_path_factory, world) -> Place:
    """A clean run on SQLite and the local store: its data root is the start of several scenarios."""
    place = local_place(tmp_path_factory.mktemp("ref-sqlite"), world)
    _reference(place)
    return place


@pytest.fixture(scope="session")
def reference_sqlite(sqlite_finished) -> Reference:
    return Reference(dataset_files(sqlite_finished.dataset))


@pytest.fixture(scope="session")
def reference_postgres(tmp_path_factory, world, postgres) -> Reference:
    return _reference(pg_place(tmp_path_factory.mktemp("ref-pg"), world, postgres))


@pytest.fixture(scope="session")
def reference_s3(tmp_path_factory, world, s3) -> Reference:
    return _reference(s3_place(tmp_path_factory.mktemp("ref-s3"), world, s3), aws_env(s3))
