"""Real services the fault scenarios stop and start: a private Postgres, a restartable s3rver, a
loopback HTTP site.

Each keeps its port across a restart, so a worker that lost its connection finds the service
again where its settings say it is (the machine's own Postgres on 5432 is never touched).
"""

from __future__ import annotations

import functools
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from airflow_server import free_port
from s3_server import S3RVER, S3Server, S3ServerError
from sqlalchemy import create_engine, text

START_TIMEOUT = 60.0


def wait_until(check, timeout: float, what: str, interval: float = 0.1):  # noqa: ANN001, ANN201
    """Poll ``check()`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class PrivatePostgres:
    """A Postgres cluster of our own (initdb in a temporary folder, trust auth, a free port).

    Postgres refuses to run as root, so as root the cluster belongs to the ``postgres`` user.
    """

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
        if not bins:
            raise RuntimeError("no Postgres server binaries under /usr/lib/postgresql/*/bin (apt-get install "
                               "postgresql)")
        self.bin = Path(bins[-1]).parent
        self.user = "postgres" if os.geteuid() == 0 else None
        # Under /tmp, not pytest's tmp_path: that one is private to root and the server user must enter it.
        self.dir = Path(tempfile.mkdtemp(prefix="textbook-faults-pg-"))
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.data = self.dir / "data"
        self.port = free_port()
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def _pg(self, tool: str, *args: str) -> None:
        subprocess.run([str(self.bin / tool), *args], check=True, user=self.user, cwd=self.dir,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=START_TIMEOUT)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w", "-t", "60", "start",
                 "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off")

    def stop(self) -> None:
        """Stop now: open connections are cut, as when a database server restarts under a worker."""
        self._pg("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "stop", "-m", "fast")

    def fresh_database(self, name: str) -> str:
        """(Re)create database ``name`` empty; returns its URL."""
        admin = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.url(name)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class RestartableS3:
    """s3rver on a fixed port with its objects on disk, so it can be stopped and started again."""

    def __init__(self, folder: Path) -> None:
        if not S3RVER.is_file():
            raise S3ServerError(f"s3rver is not installed at {S3RVER}: run `scripts/s3-server.sh install`")
        self.folder = folder
        (folder / "data").mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.server: S3Server | None = None
        self.start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.folder / "s3rver.log"
        with open(log, "ab") as out:
            # The legacy provider serves the DES s3rver uses for continuation tokens (as tests/s3_server.py).
            proc = subprocess.Popen(["node", "--openssl-legacy-provider", str(S3RVER), "-d", str(self.folder / "data"),
                                     "-a", "127.0.0.1", "-p", str(self.port)], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env={**os.environ, "NODE_OPTIONS": ""})
        self.server = S3Server(self.endpoint_url, proc, log)
        client = self.server.client()

        def answers() -> bool:
            if proc.poll() is not None:
                raise S3ServerError(f"s3rver exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                client.list_buckets()
                return True
            except Exception:  # noqa: BLE001 - not listening yet; the deadline bounds the wait
                return False

        wait_until(answers, START_TIMEOUT, f"s3rver to answer on {self.endpoint_url}")

    def stop(self) -> None:
        self.server.stop()

    def empty_bucket(self, name: str) -> str:
        """Bucket ``name``, created if needed, with every object deleted."""
        client = self.server.client()
        if name not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
            client.create_bucket(Bucket=name)
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=obj["Key"])
        return name


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class Site:
    """A folder served over HTTP on loopback (what the urls source fetches through yt-dlp)."""

    def __init__(self, folder: Path) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop serving and free the port: from now on the site refuses connections."""
        self.httpd.shutdown()
        self.httpd.server_close()
