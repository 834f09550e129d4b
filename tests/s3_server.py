"""A real S3 server (s3rver) on loopback for integration tests: started per use, stopped after.

``with start_s3(tmp_path) as s3:`` runs s3rver on a port the kernel picked on 127.0.0.1, waits until
it answers S3 requests, and stops it on exit. s3rver is installed project-locally by
``scripts/s3-server.sh install`` (``make setup`` runs it); without it the harness fails, saying so.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

REPO = Path(__file__).resolve().parents[1]
S3RVER = REPO / ".tools" / "s3rver" / "node_modules" / "s3rver" / "bin" / "s3rver.js"
ACCESS_KEY = SECRET_KEY = "S3RVER"  # s3rver's fixed credentials
REGION = "us-east-1"
START_TIMEOUT = 30.0
_LISTENING = re.compile(r"S3rver listening on 127\.0\.0\.1:(\d+)")


class S3ServerError(RuntimeError):
    """The test S3 server is not installed or did not start."""


@dataclass
class S3Server:
    endpoint_url: str
    process: subprocess.Popen
    log: Path

    @property
    def env(self) -> dict[str, str]:
        """The standard boto3 environment for this server (what S3Store's credential chain reads)."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": REGION}

    def session(self) -> boto3.session.Session:
        return boto3.session.Session(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                                     region_name=REGION)

    def client(self) -> Any:
        """A plain boto3 client, for tests that act behind the store's back."""
        return self.session().client("s3", endpoint_url=self.endpoint_url,
                                     config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"))

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] if log.exists() else ""


def _wait_for_port(proc: subprocess.Popen, log: Path, deadline: float) -> int:
    while time.monotonic() < deadline:
        found = _LISTENING.search(_tail(log))
        if found:
            return int(found.group(1))
        if proc.poll() is not None:
            raise S3ServerError(f"s3rver exited with status {proc.returncode}:\n{_tail(log)}")
        time.sleep(0.05)
    raise S3ServerError(f"s3rver did not report a port within {START_TIMEOUT:.0f} s:\n{_tail(log)}")


def _wait_answering(server: S3Server, deadline: float) -> None:
    client = server.client()
    while True:
        try:
            client.list_buckets()
            return
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"; the deadline bounds it
            if time.monotonic() >= deadline or server.process.poll() is not None:
                raise S3ServerError(f"s3rver at {server.endpoint_url} does not answer ({exc}):\n"
                                    f"{_tail(server.log)}") from None
            time.sleep(0.05)


@contextmanager
def start_s3(tmpdir: Path | str) -> Iterator[S3Server]:
    """Run s3rver with its data under ``tmpdir``; yields the running server and stops it afterwards."""
    if not S3RVER.is_file():
        raise S3ServerError(f"s3rver is not installed at {S3RVER}: run `scripts/s3-server.sh install` "
                            "(make setup does)")
    tmpdir = Path(tmpdir)
    data = tmpdir / "s3rver-data"
    data.mkdir(parents=True, exist_ok=True)
    log = tmpdir / "s3rver.log"
    deadline = time.monotonic() + START_TIMEOUT
    with open(log, "wb") as out:
        # Port 0: the kernel picks a free port, s3rver prints it. The legacy provider serves the DES
        # that s3rver uses for ListObjectsV2 continuation tokens (OpenSSL 3 moved DES there).
        try:
            proc = subprocess.Popen(["node", "--openssl-legacy-provider", str(S3RVER), "-d", str(data),
                                     "-a", "127.0.0.1", "-p", "0"],
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**os.environ, "NODE_OPTIONS": ""})
        except FileNotFoundError:
            raise S3ServerError("node is not on PATH: run `scripts/s3-server.sh install`") from None
    server = S3Server(endpoint_url="", process=proc, log=log)
    try:
        server.endpoint_url = f"http://127.0.0.1:{_wait_for_port(proc, log, deadline)}"
        _wait_answering(server, deadline)
        yield server
    finally:
        server.stop()
