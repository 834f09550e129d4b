"""Atomic file writes: a reader sees the old file or the whole new one, never a part."""

from __future__ import annotations

import filecmp
import os
import tempfile
from pathlib import Path
from typing import Callable


def atomic_write(target: Path, fill: Callable[[Path], None], mode: int = 0o644, durable: bool = True,
                 unless_same: bool = False) -> bool:
    """Let ``fill`` write a temp file beside ``target``, fsync it, then rename it over ``target``.
    ``durable=False`` skips the fsync, for a caller that syncs many files at once afterwards;
    ``unless_same`` leaves ``target`` alone when the new bytes equal it. True when it was replaced."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        fill(tmp)
        if unless_same and target.is_file() and filecmp.cmp(tmp, target, shallow=False):
            tmp.unlink()
            return False
        if durable:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True
