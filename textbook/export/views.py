"""Dataset views as plugins: each owns its folders and files, is fed by the compaction's stream,
writes itself, says what it is in the card and checks itself in ``validate_dataset``. A view made
of stages' outputs declares them (``produced_by``) and how to show one item (``examples``): the
plugin counts and browses them from the state database, before any export.

A compaction reads every video once, in reading order, and packs its clips into samples; it hands
each view every video (``add_video``) and every packed sample with its OBELICS row
(``add_sample``), then lets each write its files in the published order (``write``). A new
dataset derived from the corpus declares its view in its ``textbook.datasets`` declaration.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

if TYPE_CHECKING:  # a dataset module subclasses View: importing it must stay cheap at DAG-parse time
    from textbook.config import ExportSettings, Settings
    from textbook.export.packing import Sample
    from textbook.store import ArtifactStore
    from textbook.export.files import DatasetWriter
    from textbook.export.validate import Checker
    from textbook.export.videos import VideoEntry


@dataclass(frozen=True)
class Produced:
    """A stage whose runs make a view's items, counted live (the plugin) before any export."""

    stage: str
    count: str  # the key of the run's summary that counts its items
    label: str  # what an item is ("question-pause-answer cycles")


@dataclass(frozen=True)
class Example:
    """One item of a stage's output as a person checks it: a heading, its text, its images."""

    title: str
    lines: tuple[str, ...] = ()
    images: tuple[str, ...] = ()  # store keys


@dataclass(frozen=True)
class ViewContext:
    """What every view of one compaction shares."""

    settings: Settings
    store: ArtifactStore  # where files a view ships beside the keyframes come from
    tmp: Path  # the compaction's scratch folder, for spools
    path: Callable[[str], str]  # a dataset-relative path as the data writes it (export.absolute_paths)

    @property
    def export(self) -> ExportSettings:
        return self.settings.export


class View:
    name: ClassVar[str]
    folders: ClassVar[tuple[str, ...]] = ()  # folders under the dataset root it owns
    files: ClassVar[tuple[str, ...]] = ()  # top-level files it owns
    produced_by: ClassVar[tuple[Produced, ...]] = ()  # the stages it is made of (none: built at export)

    def __init__(self, vc: ViewContext) -> None:
        self.vc = vc
        # why each stage the view is made of did not run, by reason, over the videos it was handed
        self.not_run: dict[str, Counter[str]] = {p.stage: Counter() for p in self.produced_by}

    def count_not_run(self, entry: VideoEntry) -> None:
        for stage, reasons in self.not_run.items():
            run = entry.run(stage)
            if run is not None and run.result.get("not_run"):
                reasons[run.result["not_run"]] += 1

    @classmethod
    def enabled(cls, exp: ExportSettings) -> bool:
        return True

    def add_video(self, entry: VideoEntry, ready: bool) -> None:
        """Every video, in reading order; ``ready``: finished, with clips, so packed."""

    def add_sample(self, sample: Sample, row: dict[str, Any]) -> None:
        """Every packed sample, in packing order, with its OBELICS row."""

    def write(self, writer: DatasetWriter, order: Sequence[int]) -> None:
        """Write the view; ``order[k]`` is the packing index of the k-th published sample."""

    def card(self) -> list[str]:
        """The view's lines in the card's "Files" section."""
        return []

    def card_section(self) -> list[str]:
        """A section of the card of its own, after the statistics (a measurement of the corpus)."""
        return []

    @classmethod
    def card_when_off(cls, exp: ExportSettings) -> list[str]:
        """What the card says of the view when the settings turn it off."""
        return []

    def close(self) -> None:
        """Release what the view holds (spools)."""

    @staticmethod
    def check(checker: Checker) -> None:
        """Add the problems of this view in the dataset ``checker`` reads, if it is there."""

    @staticmethod
    def examples(stage: str, doc: Any) -> list[Example]:
        """The items of one video's ``stage`` output document (a ``produced_by`` stage), to browse."""
        return []


def derived() -> list[tuple[type[View], Produced]]:
    """Every stage a view is made of, with its view, in the views' order."""
    return [(view, p) for view in registered() for p in view.produced_by]


def registered() -> list[type[View]]:
    """Every registered dataset's view (textbook.datasets), in the order the card lists them and the
    validator checks them."""
    from textbook.datasets import views

    return views()
