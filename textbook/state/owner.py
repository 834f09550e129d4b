"""Who holds a claim: host, pid and the process's start time, and whether that process still lives.

On the claim's own host a dead owner is certain at once (no such pid, or the pid now belongs to a
process started at another time). From another host only the claim's heartbeat can tell.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    started: str  # the process's start time in clock ticks since boot ("" where /proc is absent)

    @property
    def label(self) -> str:
        return f"{self.host}:{self.pid}"


def _stat(pid: int) -> tuple[str, str]:
    """(state, start time) of ``pid`` from /proc/<pid>/stat (fields 3 and 22); ("", "") if unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    except OSError:
        return "", ""
    return fields[0], fields[19]


def process_start(pid: int) -> str:
    return _stat(pid)[1]


def this_process() -> Owner:
    pid = os.getpid()
    return Owner(socket.gethostname(), pid, process_start(pid))


def gone_here(host: str, pid: int | None, started: str) -> bool:
    """True when the owner ran on this host and its process has ended; False when it lives or
    belongs to another host."""
    if host != socket.gethostname() or pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    state, start = _stat(pid)
    return state in ("Z", "X") or (bool(started) and start not in ("", started))  # a zombie is dead
