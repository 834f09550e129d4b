"""Write the dataset: finished videos packed into interleaved samples, plus records and a card.

Two steps, so that a night's cost follows what changed, not the size of the corpus:

- ``pack_knowledge_point`` (each knowledge point's DAG) brings the *parts* of its videos up to
  date: one content-addressed document per video, rebuilt only when the video changed (parts.py).
- ``compact`` (its own DAG) assembles the global view from every part into
  ``settings.export_root`` (FORMAT.md): ``obelics/`` shards, the ``clips/`` view, ``wds/``,
  ``videos.jsonl``, the keyframes under ``images/`` and the ``README.md`` card, streaming, in
  bounded memory (compaction.py).

``export_dataset`` does both for every video (or a slice), rebuilding every part: a full export.
The same parts give the same bytes, and a compaction removes what an earlier one left that it did
not write. It refuses to publish a dataset that lost videos the previous one shipped
(``PublishRefused``), and says whether anything changed. ``validate_dataset`` checks a written
dataset against every invariant of FORMAT.md. An ``s3://`` export.root is written locally the
same way, then mirrored to S3 (remote.py).

The package imports these lazily (from textbook.export.publish), so a module that needs only the
``View`` contract (``textbook.export.views``, what a dataset module subclasses) stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ExportSummary", "PackSummary", "PublishRefused", "collect_garbage", "compact", "export_dataset",
           "pack_knowledge_point", "validate_dataset"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from textbook.export import publish

        return getattr(publish, name)
    raise AttributeError(f"module textbook.export has no attribute {name!r}")
