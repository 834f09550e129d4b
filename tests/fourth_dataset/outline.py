"""A fourth derived dataset in one module: each lecture's outline, the titles of its slides in order.

It is what adding a dataset takes. This module holds the dataset's settings section, its stage,
its view (files, card line, validator, how the plugin shows an item) and its declaration; one
registration makes the pipeline run it: here an entry point of the package that ships it,
``[project.entry-points."textbook.datasets"] outline = "outline"`` (a built-in dataset is one line
in ``textbook.datasets.BUILTIN``). Nothing heavy is imported at module level, because DAG files
read the declaration at parse time.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from textbook.config import knob
from textbook.datasets import Dataset
from textbook.export.views import Example, Produced, View, ViewContext
from textbook.stages.base import StageResult, stage, switched_off
from textbook.taskspec import TaskSpec

if TYPE_CHECKING:
    from textbook.context import Context
    from textbook.export.files import DatasetWriter
    from textbook.export.validate import Checker
    from textbook.export.videos import VideoEntry
    from textbook.records import Video

FOLDER = "outline"
FILE = f"{FOLDER}/outline.jsonl"


@dataclass(frozen=True)
class OutlineSettings:
    """A slide's title is the first line the OCR read on it; repeated titles are one entry."""

    enabled: bool = knob(True)
    knowledge_points: tuple[str, ...] = knob(())
    min_title_chars: int = knob(3, ge=1)
    max_title_chars: int = knob(80, ge=8, le=400)


def titles(keyframes: dict[str, Any], ocr: dict[str, Any], cfg: OutlineSettings) -> list[dict[str, Any]]:
    text = {r["key"]: r["text"] for r in ocr["results"]}
    out: list[dict[str, Any]] = []
    for clip in keyframes["clips"]:
        for kf in clip["keyframes"]:
            first = next((line.strip() for line in text.get(kf["key"], "").splitlines() if line.strip()), "")
            title = first[: cfg.max_title_chars]
            if len(title) >= cfg.min_title_chars and (not out or out[-1]["title"] != title):
                out.append({"time": kf["time"], "title": title, "key": kf["key"]})
    return out


@stage("outline", sections=("outline",), requires=("keyframes", "ocr"))
def run(video: Video, ctx: Context) -> StageResult:
    from textbook.artifacts import output_key, read_input

    cfg, vid = ctx.settings.outline, video.video_id
    off = switched_off("outline", cfg, vid, ctx)
    if off:
        return StageResult(summary={"not_run": off})
    found = titles(read_input(ctx, vid, "keyframes"), read_input(ctx, vid, "ocr"), cfg)
    ref = ctx.store.put_json(output_key(ctx, vid, "outline", "outline.json"), {"titles": found})
    return StageResult(artifacts=[ref], summary={"titles": len(found)})


class OutlineView(View):
    name = "outline"
    folders = (FOLDER,)
    produced_by = (Produced("outline", "titles", "slide titles"),)

    def __init__(self, vc: ViewContext) -> None:
        from textbook.export.spool import Spool

        super().__init__(vc)
        self.spool = Spool(vc.tmp / "outline")
        self.counts: Counter[str] = Counter()

    @staticmethod
    def examples(stage: str, doc: Any) -> list[Example]:
        return [Example(t["title"], (f"at {t['time']:.1f} s",), (t["key"],)) for t in doc["titles"]]

    def add_video(self, entry: VideoEntry, ready: bool) -> None:
        from textbook.export.files import dumps

        if not ready:
            return
        self.count_not_run(entry)
        doc = entry.derived.get("outline")
        if doc is None:
            return
        kp = entry.knowledge_point
        record = {"video_id": entry.video_id, "knowledge_point": kp.id if kp else None,
                  "titles": [{"time": t["time"], "title": t["title"]} for t in doc["titles"]]}
        self.spool.append((dumps(record) + "\n").encode())
        self.counts["videos"] += 1
        self.counts["titles"] += len(doc["titles"])

    def write(self, writer: DatasetWriter, order: Sequence[int]) -> None:
        from textbook.export.spool import Ordered

        if self.counts["videos"]:
            writer.write_lines(FILE, iter(Ordered(self.spool, range(len(self.spool)))))

    def card(self) -> list[str]:
        if not self.counts["videos"]:
            why = "; ".join(sorted(self.not_run["outline"])) or "no exported video ran the outline stage"
            return [f"- `{FOLDER}/`: not written ({why})."]
        return [f"- `{FILE}`: the outline of {self.counts['videos']} lecture(s), {self.counts['titles']} slide "
                f"title(s) in time order."]

    def close(self) -> None:
        self.spool.close()

    @staticmethod
    def check(checker: Checker) -> None:
        if not (checker.root / FILE).is_file():
            return
        seen = set()
        for n, record in checker.lines(FILE):
            where = f"{FILE} line {n}"
            if not isinstance(record, dict) or not isinstance(record.get("titles"), list):
                checker.problem(f"{where}: needs video_id and a list of titles")
                continue
            if record.get("video_id") in seen:
                checker.problem(f"{where}: video {record.get('video_id')} is outlined twice")
            seen.add(record.get("video_id"))
            times = [t.get("time") for t in record["titles"] if isinstance(t, dict)]
            if len(times) != len(record["titles"]) or times != sorted(times) or not all(
                    isinstance(t.get("title"), str) and t["title"] for t in record["titles"]):
                checker.problem(f"{where}: titles must be non-empty strings in time order ({json.dumps(times)})")


DATASET = Dataset(
    "outline",
    view="outline:OutlineView",
    stages=("outline:run",),
    tasks=(TaskSpec(("outline",)),),
    settings={"outline": OutlineSettings},
)
