"""Rows on disk while a compaction runs: appended in packing order, read back in published order.

The published order (the seeded shuffle) is only known once every sample exists, and a corpus of
samples does not fit in memory; a spool keeps each row's encoded line in a temporary file and
its offset in an array of integers (8 bytes a sample).
"""

from __future__ import annotations

from array import array
from pathlib import Path
from typing import Iterator, Sequence


class Spool:
    def __init__(self, path: Path) -> None:
        self.file = open(path, "w+b")
        self.offsets = array("Q", [0])

    def append(self, line: bytes) -> None:
        self.file.seek(self.offsets[-1])
        self.file.write(line)
        self.offsets.append(self.offsets[-1] + len(line))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def line(self, i: int) -> bytes:
        self.file.seek(self.offsets[i])
        return self.file.read(self.offsets[i + 1] - self.offsets[i])

    def close(self) -> None:
        self.file.close()


class Ordered:
    """A spool's lines in a given order (``order[k]`` is the spool index of the k-th line)."""

    def __init__(self, spool: Spool, order: Sequence[int]) -> None:
        self.spool, self.order = spool, order

    def __len__(self) -> int:
        return len(self.order)

    def chunk(self, start: int, stop: int) -> list[bytes]:
        return [self.spool.line(i) for i in self.order[start:stop]]

    def __iter__(self) -> Iterator[bytes]:
        for i in self.order:
            yield self.spool.line(i)
