"""Every dataset made from the corpus, registered in one place.

A dataset is one module that declares a ``DATASET``: the view that writes it (its files, card
lines, validator and how the plugin shows an item) and, where stages of its own make it, those
stages, the tasks that run them in the video chain, its settings sections, the models the GPU
queue loads for it and its report page. Registering it is one line: a built-in one in
``BUILTIN``, any other an entry point of its package in the ``textbook.datasets`` group
(``outline = "my_package.outline"``). Nothing else in the library names a dataset.

A declaration names its parts as ``"module:attribute"`` and imports nothing heavy, because DAG
files read the task plan and the settings at parse time; stages, view, models and report page are
imported where a worker, an export or the report uses them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Mapping

from textbook.taskspec import TaskSpec

if TYPE_CHECKING:
    from textbook.export.views import View
    from textbook.models import ModelUse
    from textbook.report.dataset_pages import ReportPage
    from textbook.stages.base import Stage

ENTRY_POINTS = "textbook.datasets"


class DatasetError(ValueError):
    """A dataset declaration that cannot be used; the message names the dataset and what is wrong."""


@dataclass(frozen=True, eq=False)
class Dataset:
    name: str  # its view's name, and the folder it writes under the dataset root
    view: str  # "module:Class" of its View
    stages: tuple[str, ...] = ()  # "module:attribute" of each of its stages, in the order they run
    tasks: tuple[TaskSpec, ...] = ()  # its stages as orchestrators run them, after the corpus chain
    settings: Mapping[str, type] = field(default_factory=dict)  # its settings sections: name -> frozen dataclass
    models: str = ""  # "module:function" (settings) -> the ModelUses its stages will load on the GPU queue
    report: str = ""  # "module:attribute" of its ReportPage

    def __post_init__(self) -> None:
        for ref in (self.view, *self.stages, *(r for r in (self.models, self.report) if r)):
            if ref.count(":") != 1 or not all(ref.split(":")):
                raise DatasetError(f"dataset {self.name}: {ref!r} is not of the form 'module:attribute'")
        if bool(self.stages) != bool(self.tasks):
            raise DatasetError(f"dataset {self.name}: stages and the tasks that run them come together")


def load(ref: str, dataset: str) -> Any:
    """The object ``"module:attribute"`` names; an import error names the dataset that declared it."""
    module, attribute = ref.split(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise DatasetError(f"dataset {dataset}: cannot load {ref}: {exc}") from exc


# The corpus's own views, then the datasets derived from it, in the order the card lists them, the
# validator checks them and their stages run; entry points' datasets follow; measurements come last.
CORPUS = (
    Dataset("obelics", view="textbook.export.obelics:ObelicsView"),
    Dataset("clips", view="textbook.export.clipview:ClipView"),
    Dataset("wds", view="textbook.export.wds:WdsView"),
)
BUILTIN = ("textbook.datasets.sos", "textbook.datasets.m4instruct", "textbook.datasets.llava_video")
MEASUREMENTS = (Dataset("insi_sim", view="textbook.export.insi_sim_view:InSiSimView"),)


def _declared(module: str, where: str) -> Dataset:
    try:
        declared = importlib.import_module(module).DATASET
    except (ImportError, AttributeError) as exc:
        raise DatasetError(f"{where} {module}: {exc}") from exc
    if not isinstance(declared, Dataset):
        raise DatasetError(f"{where} {module}: DATASET is a {type(declared).__name__}, not a textbook Dataset")
    return declared


def _installed() -> list[Dataset]:
    """Datasets other packages register under the ``textbook.datasets`` entry point group."""
    out = []
    for ep in sorted(entry_points(group=ENTRY_POINTS), key=lambda e: e.name):
        where = f"entry point {ep.name} ({ep.dist.name if ep.dist else 'unknown package'})"
        out.append(_declared(ep.value.split(":")[0], where))
    return out


@cache
def registered() -> tuple[Dataset, ...]:
    """Every dataset, in order; two declaring the same name, section or stage are an error."""
    datasets = (*CORPUS, *(_declared(m, "dataset module") for m in BUILTIN), *_installed(), *MEASUREMENTS)
    for what, names in (("dataset", [d.name for d in datasets]),
                        ("settings section", [s for d in datasets for s in d.settings]),
                        ("stage", [s for d in datasets for t in d.tasks for s in t.stages])):
        seen: set[str] = set()
        for name in names:
            if name in seen:
                owners = [d.name for d in datasets if name == d.name or name in d.settings
                          or any(name in t.stages for t in d.tasks)]
                raise DatasetError(f"{what} {name!r} is declared twice (datasets {', '.join(owners)})")
            seen.add(name)
    return datasets


def section_types() -> dict[str, type]:
    """The settings sections the datasets add, by name."""
    return {name: cls for d in registered() for name, cls in d.settings.items()}


def tasks() -> tuple[TaskSpec, ...]:
    return tuple(t for d in registered() for t in d.tasks)


def stages() -> list[Stage]:
    """The datasets' stages, in order; each must be the stage its tasks name, in that order."""
    out = []
    for d in registered():
        loaded = [load(ref, d.name) for ref in d.stages]
        named = [s for t in d.tasks for s in t.stages]
        if [getattr(s, "name", None) for s in loaded] != named:
            raise DatasetError(f"dataset {d.name}: its stages {[getattr(s, 'name', s) for s in loaded]} are not the "
                               f"ones its tasks run, in order: {named}")
        by_name = {s.name: s for s in loaded}
        for t in d.tasks:
            runs_model = any(by_name[s].model for s in t.stages)
            if (t.queue == "gpu") != runs_model or t.network < any(by_name[s].network for s in t.stages):
                raise DatasetError(f"dataset {d.name}: task {t.task_id} must be on the gpu queue exactly when one of "
                                   f"its stages runs a model, and network when one talks to the outside world")
        out += loaded
    return out


def views() -> list[type[View]]:
    out = []
    for d in registered():
        view = load(d.view, d.name)
        if getattr(view, "name", None) != d.name:
            raise DatasetError(f"dataset {d.name}: its view {d.view} is named {getattr(view, 'name', None)!r}")
        out.append(view)
    return out


def model_uses(settings: Any) -> list[ModelUse]:
    """The models the datasets' stages will load under ``settings`` (for the GPU model server)."""
    return [use for d in registered() if d.models for use in load(d.models, d.name)(settings)]


def report_pages() -> list[ReportPage]:
    return [load(d.report, d.name) for d in registered() if d.report]
