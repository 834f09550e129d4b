"""Drive real ``textbook`` processes and judge what a fault left behind.

A scenario runs the CLI in a subprocess (``python -m textbook.cli``, or ``paused_run.py`` to hold a
stage open until the test has sent its signal), reads the state database with plain SQL, and
compares the exported dataset file by file with a clean run's.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from fault_services import PrivatePostgres, RestartableS3, wait_until
from sqlalchemy import create_engine, text

from textbook.export import validate_dataset
from textbook.pipeline import STAGES as PIPELINE

REPO = Path(__file__).resolve().parents[2]
PAUSED_RUN = Path(__file__).with_name("paused_run.py")
KP = "demo.intro.basics.lectures"
STAGES = tuple(s.name for s in PIPELINE)  # every stage: the kill matrix leaves none out
RUN_TIMEOUT = 240.0  # one whole run of the small world takes 10-20 s here; this only catches a hang
MARK_TIMEOUT = 120.0  # from a worker's start to the paused stage
BUCKET = "faults"  # the S3 scenarios' bucket: artifacts under artifacts/, the dataset mirror under dataset/


def downstream(stage: str) -> set[str]:
    """``stage`` and every stage that reads its outputs, directly or through others."""
    out = {stage}
    for s in PIPELINE:
        if out & set(s.requires):
            out.add(s.name)
    return out


def base_settings() -> dict[str, Any]:
    """Settings every scenario starts from.

    ``data_root`` is relative (each run's cwd is its own folder) so no temporary path reaches the
    dataset card. ``relatedness_min_chars`` is raised so the visual filter judges faces and blank
    frames but never loads MiniLM: importing torch costs about 12 s per process on this machine,
    and a scenario starts many processes. A dead server is retried once, after 0.2 s.
    """
    return {"data_root": "data",
            "visual_filter": {"relatedness_min_chars": 100000},
            "download": {"retries": 1, "retry_backoff": 0.2}}


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@dataclass
class Place:
    """One scenario's working folder: its config file, its data root, its state database."""

    cwd: Path
    settings: dict[str, Any]
    source: list[str]  # the `run` arguments naming where the videos come from

    @property
    def config(self) -> Path:
        return self.cwd / "config.yaml"

    @property
    def data(self) -> Path:
        return self.cwd / self.settings["data_root"]

    @property
    def dataset(self) -> Path:
        return self.data / "dataset"

    @property
    def db_url(self) -> str:
        return self.settings.get("database_url") or f"sqlite:///{self.data / 'state.db'}"

    def write(self, **over: Any) -> "Place":
        """Write the config file with ``over`` merged into the settings (kept for later runs)."""
        self.settings = merged(self.settings, over)
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.config.write_text(yaml.safe_dump(self.settings, sort_keys=True))
        return self

    def copy_to(self, cwd: Path) -> "Place":
        """A copy of this finished place (its data root) in ``cwd``, for a scenario that starts from it."""
        shutil.copytree(self.data, cwd / self.settings["data_root"], symlinks=True)
        return Place(cwd, dict(self.settings), list(self.source)).write()


def local_place(cwd: Path, world: Path, **over: Any) -> Place:
    """A place reading the world's folder through the ``local`` source, with ``over`` merged in."""
    return Place(cwd, base_settings(), ["--local-dir", str(world)]).write(**over)


def s3_settings(s3: RestartableS3) -> dict:
    """Artifacts in the bucket, the dataset mirrored to it (staged in <data_root>/dataset)."""
    return {"store": {"kind": "s3", "bucket": BUCKET, "root": "artifacts", "endpoint_url": s3.endpoint_url,
                      "region": "us-east-1", "path_style": True},
            "export": {"root": f"s3://{BUCKET}/dataset"}}


def aws_env(s3: RestartableS3) -> dict[str, str]:
    """s3rver's credentials for the worker processes, and no stray AWS config files."""
    return {**s3.server.env, "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}


def pg_place(cwd: Path, world: Path, postgres: PrivatePostgres) -> Place:
    """A place on a fresh database, always named ``textbook``: every Postgres scenario has the very
    settings of the Postgres reference run."""
    return local_place(cwd, world, database_url=postgres.fresh_database("textbook"))


def s3_place(cwd: Path, world: Path, s3: RestartableS3) -> Place:
    s3.empty_bucket(BUCKET)
    return local_place(cwd, world, **s3_settings(s3))


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This worktree's library, offline models, no progress bars, and no TEXTBOOK_* from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTBOOK_")}
    env.update(PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TQDM_DISABLE="1")
    env.update(extra or {})
    return env


@dataclass
class Worker:
    """A ``textbook`` process started by a scenario; its output goes to a log file."""

    proc: subprocess.Popen
    log: Path
    marker: Path
    started: float

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_paused(self, timeout: float = MARK_TIMEOUT) -> dict[str, Any]:
        """Wait until the paused stage has started; returns what the marker says (stage, video, pid)."""
        def marked() -> dict[str, Any] | None:
            if self.marker.exists():
                return json.loads(self.marker.read_text())
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode} before its paused stage "
                                     f"started:\n{self.output[-3000:]}")
            return None

        return wait_until(marked, timeout, f"the paused stage to start (log {self.log})")

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = RUN_TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"worker still running after {timeout:.0f} s; killed. Log:\n"
                                 f"{self.output[-3000:]}") from None

    def kill(self) -> None:
        """SIGKILL, then reap: the worker gets no chance to clean up."""
        self.signal(signal.SIGKILL)
        self.wait(30)


def start(place: Place, *args: str, pause_at: str = "", pause_seconds: float = 3600, name: str = "run",
          env: dict[str, str] | None = None) -> Worker:
    """Start ``textbook --config <place> <args>`` (default: ``run`` on the place's videos).

    With ``pause_at``, the worker holds that stage open on the first video it runs it on, for
    ``pause_seconds``, after writing its marker (see paused_run.py).
    """
    args = args or ("run", "--kp", KP, *place.source)
    n = len(list(place.cwd.glob(f"{name}-*.log")))
    log = place.cwd / f"{name}-{n}.log"
    marker = place.cwd / f"{name}-{n}.paused"
    fault = {"FAULT_STAGE": pause_at, "FAULT_MARKER": str(marker), "FAULT_SLEEP": str(pause_seconds)} if pause_at \
        else {}
    entry = [str(PAUSED_RUN)] if pause_at else ["-m", "textbook.cli"]
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, *entry, "--config", str(place.config), *args], cwd=place.cwd,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=cli_env({**fault, **(env or {})}))
    return Worker(proc, log, marker, time.monotonic())


def run(place: Place, *args: str, expect: int | None = 0, timeout: float = RUN_TIMEOUT,
        env: dict[str, str] | None = None) -> Worker:
    """Run to the end; with ``expect``, assert the exit status."""
    worker = start(place, *args, env=env)
    rc = worker.wait(timeout)
    if expect is not None:
        assert rc == expect, f"textbook {' '.join(args) or 'run'} exited {rc}, expected {expect}:\n" \
                             f"{worker.output[-3000:]}"
    return worker


# -- what the database says -----------------------------------------------------------------------

@dataclass(frozen=True)
class StageRow:
    video_id: str
    stage: str
    status: str
    attempts: int
    error: str


@dataclass(frozen=True)
class DbState:
    videos: dict[str, tuple[str, str]]  # video id -> (status, reason)
    runs: dict[tuple[str, str], StageRow]

    def attempts(self) -> dict[tuple[str, str], int]:
        return {key: row.attempts for key, row in self.runs.items()}

    @property
    def stuck(self) -> list[tuple[str, str]]:
        return sorted(key for key, row in self.runs.items() if row.status == "running")


def read_db(url: str) -> DbState:
    """The videos and stage runs, read with plain SQL (what any operator's query would see)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            videos = {r.video_id: (r.status, r.reason or "")
                      for r in conn.execute(text("SELECT video_id, status, reason FROM videos"))}
            runs = {(r.video_id, r.stage): StageRow(r.video_id, r.stage, r.status, r.attempts, r.error or "")
                    for r in conn.execute(text("SELECT video_id, stage, status, attempts, error FROM stage_runs"))}
    finally:
        engine.dispose()
    return DbState(videos, runs)


# -- what the dataset holds -----------------------------------------------------------------------

NOT_DATA = ("report/", ".textbook/stage_seconds.jsonl")  # run times differ between runs of the same input


def dataset_files(root: Path) -> dict[str, bytes]:
    """Every file under the dataset folder, by relative path (a leftover temporary file counts too),
    but the report and the run timings, which show how long this run's stages took."""
    if not root.is_dir():
        return {}
    files = {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}
    return {rel: p.read_bytes() for rel, p in files.items() if not rel.startswith(NOT_DATA)}


def exported_videos(files: dict[str, bytes]) -> list[str]:
    """Ids of the videos ``videos.jsonl`` marks exported, once per record (duplicates stay visible)."""
    lines = files.get("videos.jsonl", b"").decode().splitlines()
    return [rec["video_id"] for rec in map(json.loads, lines) if rec.get("exported")]


def differences(got: dict[str, bytes], want: dict[str, bytes]) -> list[str]:
    """Relative paths missing, extra, or with other bytes (a text file's first differing lines shown)."""
    return sorted([f"missing {p}" for p in want.keys() - got.keys()] + [f"extra {p}" for p in got.keys() - want.keys()]
                  + [f"differs {p}{_first_lines(got[p], want[p])}" for p in want.keys() & got.keys() if got[p] != want[p]])


def _first_lines(got: bytes, want: bytes) -> str:
    try:
        diff = difflib.unified_diff(want.decode().splitlines(), got.decode().splitlines(), "expected", "got", n=0, lineterm="")
    except UnicodeDecodeError:
        return ""
    return ":\n" + "\n".join(list(diff)[:12])


@dataclass(frozen=True)
class Reference:
    """A clean run's outcome: the dataset bytes and the videos it exported."""

    files: dict[str, bytes]

    @property
    def exported(self) -> set[str]:
        return set(exported_videos(self.files))


# -- the verdict on a scenario --------------------------------------------------------------------

@dataclass
class Verdict:
    """What a scenario left behind, counted for the matrix and checked against the promises."""

    scenario: str
    db: DbState
    files: dict[str, bytes]
    expected_files: dict[str, bytes] | None  # None: any dataset that FORMAT.md accepts
    previously_exported: set[str]
    expected_attempts: dict[tuple[str, str], int] = field(default_factory=dict)  # most allowed; default 1

    @property
    def lost(self) -> list[str]:
        return sorted(self.previously_exported - set(exported_videos(self.files)))

    @property
    def duplicated(self) -> list[str]:
        extra_runs = [f"{v}/{s}: {row.attempts} attempts, expected {self.expected_attempts.get((v, s), 1)}"
                      for (v, s), row in sorted(self.db.runs.items())
                      if row.attempts > self.expected_attempts.get((v, s), 1)]
        ids = exported_videos(self.files)
        return extra_runs + [f"{v} exported {ids.count(v)} times" for v in sorted(set(ids)) if ids.count(v) > 1]

    @property
    def unsettled(self) -> list[str]:
        """Videos neither done, filtered, nor failed with a reason."""
        return [f"{v}: {status!r} {reason!r}" for v, (status, reason) in sorted(self.db.videos.items())
                if status not in ("done", "filtered", "failed") or (status == "failed" and not reason.strip())]

    def row(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "videos": len(self.db.videos), "lost": len(self.lost),
                "duplicated": len(self.duplicated), "stuck": len(self.db.stuck)}

    def check(self, data_root: Path) -> None:
        """The promises every scenario keeps (issue 7, item 9)."""
        assert not self.db.stuck, f"stage runs left running: {self.db.stuck}"
        assert not self.unsettled, f"videos not settled: {self.unsettled}"
        assert not self.lost, f"videos exported before and missing now: {self.lost}"
        assert not self.duplicated, f"work done twice: {self.duplicated}"
        if self.expected_files is not None:
            diff = differences(self.files, self.expected_files)
            assert not diff, f"dataset differs from the expected one: {diff[:20]}"
        else:
            problems = validate_dataset(data_root / "dataset")
            assert not problems, f"the dataset breaks FORMAT.md: {problems[:10]}"
        leaked = [p for p, data in self.files.items() if str(data_root.resolve()).encode() in data]
        assert not leaked, f"dataset files name the temporary data root {data_root}: {leaked}"


def verdict(scenario: str, place: Place, expected: dict[str, bytes] | None, previously_exported: set[str],
            expected_attempts: dict[tuple[str, str], int] | None = None) -> Verdict:
    return Verdict(scenario, read_db(place.db_url), dataset_files(place.dataset), expected, previously_exported,
                   expected_attempts or {})
