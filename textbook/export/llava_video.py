"""The LLaVA-Video-178K view: our segments' captions and questions in the release's bucket layout.

``llava_video/<bucket>_textbook_v0_1/`` per duration bucket (``0_30_s``, ``30_60_s``, ``1_2_m``,
``2_3_m``; ``3_10_m`` only when ``video_captions.max_segment_s`` is raised past the release's 3
minutes) holds three JSON arrays, ``<bucket>_textbook_v0_1_cap_processed.json``,
``<bucket>_textbook_oe_v0_1_qa_processed.json`` and ``<bucket>_textbook_mc_v0_1_qa_processed.json``,
of ``{"id", "conversations": [human, gpt], "data_source", "video"}`` with one leading ``<image>``
(the release's video placeholder) in the human turn and ``video`` relative to the bucket folder;
the segment mp4s under ``videos/``; and ``<bucket>_textbook_v0_1_meta.jsonl``, a sidecar with what
the records leave out (question type, the level-1 and level-2 captions, grounding, prompt versions).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any, Sequence

from textbook.export.files import DatasetWriter, dumps
from textbook.export.obelics import write_array
from textbook.export.spool import Ordered, Spool
from textbook.export.views import Example, Produced, View, ViewContext

if TYPE_CHECKING:
    from textbook.export.validate import Checker
    from textbook.export.videos import VideoEntry

FOLDER = "llava_video"
SOURCE = "textbook"
BUCKETS = (("0_30_s", 30.0), ("30_60_s", 60.0), ("1_2_m", 120.0), ("2_3_m", 180.0), ("3_10_m", 600.0))
KINDS = ("cap", "oe", "mc")
IMAGE = "<image>"
DESCRIBE = "Please describe this video in detail."
MC_SUFFIX = "\nPlease respond with only the letter of the correct answer."


def bucket(duration: float) -> str:
    return next(name for name, limit in BUCKETS if duration <= limit + 0.5)  # ffprobe rounds up a frame


def data_source(name: str) -> str:
    return f"{name}_{SOURCE}_v0_1"


def array_path(name: str, kind: str) -> str:
    base = data_source(name)
    file = f"{base}_cap_processed.json" if kind == "cap" else f"{name}_{SOURCE}_{kind}_v0_1_qa_processed.json"
    return f"{FOLDER}/{base}/{file}"


def meta_path(name: str) -> str:
    return f"{FOLDER}/{data_source(name)}/{data_source(name)}_meta.jsonl"


def record(rid: str, name: str, video: str, human: str, answer: str) -> dict[str, Any]:
    return {"id": rid, "conversations": [{"from": "human", "value": f"{IMAGE}\n{human}"},
                                         {"from": "gpt", "value": answer}],
            "data_source": data_source(name), "video": video}


class LlavaVideoView(View):
    name = "llava_video"
    folders = (FOLDER,)
    produced_by = (Produced("video_captions", "segments", "captioned segments (LLaVA-Video)"),
                   Produced("video_qa", "pairs", "video questions (LLaVA-Video)"))

    def __init__(self, vc: ViewContext) -> None:
        super().__init__(vc)
        self.spools: dict[tuple[str, str], Spool] = {}
        self.videos = Spool(vc.tmp / "llava-videos")  # (store key, dataset path) of each segment mp4
        self.counts: Counter[str] = Counter()

    @staticmethod
    def examples(stage: str, doc: Any) -> list[Example]:
        if stage == "video_captions":
            return [Example(f"Segment {s['index']}: {s['start']:.0f}-{s['end']:.0f} s",
                            tuple(f"Level {c['level']}, interval {c['interval']}: {c['text']}" for c in s["captions"]))
                    for s in doc["segments"]]
        return [Example(p["question"], (f"Answer: {p['answer']}", f"{p['type']} ({p['variant']})"))
                for s in doc["segments"] for p in s["pairs"]]

    def _spool(self, name: str, kind: str) -> Spool:
        if (name, kind) not in self.spools:
            self.spools[(name, kind)] = Spool(self.vc.tmp / f"llava-{name}-{kind}")
        return self.spools[(name, kind)]

    def add_video(self, entry: VideoEntry, ready: bool) -> None:
        if not ready:
            return
        self.count_not_run(entry)
        captions = entry.derived.get("video_captions")
        if not captions:
            return
        questions = {s["index"]: s["pairs"] for s in (entry.derived.get("video_qa") or {}).get("segments", [])}
        self.counts["videos"] += 1
        for seg in captions["segments"]:
            name = bucket(seg["duration"])
            rid = f"{entry.video_id}_{seg['index']}"
            video = f"videos/{rid}.mp4"
            self.videos.append((dumps([seg["video_key"], f"{FOLDER}/{data_source(name)}/{video}"]) + "\n").encode())
            final = next(c["text"] for c in seg["captions"] if c["level"] == 3)
            self._spool(name, "cap").append((dumps(record(rid, name, video, DESCRIBE, final)) + "\n").encode())
            meta = {"kind": "cap", "id": rid, "video_id": entry.video_id, "segment": seg["index"],
                    "start": seg["start"], "end": seg["end"], "grounding": captions["grounding"],
                    "prompt_version": captions["prompt_version"],
                    "level1": [c["text"] for c in seg["captions"] if c["level"] == 1],
                    "level2": [c["text"] for c in seg["captions"] if c["level"] == 2]}
            self._spool(name, "meta").append((dumps(meta) + "\n").encode())
            self.counts["segments"] += 1
            for pair in questions.get(seg["index"], []):
                kind = pair["variant"]
                human = pair["question"] + (MC_SUFFIX if kind == "mc" else "")
                self._spool(name, kind).append((dumps(record(rid, name, video, human, pair["answer"])) + "\n").encode())
                self._spool(name, "meta").append((dumps({"kind": kind, "id": rid, "question": pair["question"],
                                                         "type": pair["type"]}) + "\n").encode())
                self.counts[kind] += 1

    def write(self, writer: DatasetWriter, order: Sequence[int]) -> None:
        for n in range(len(self.videos)):
            key, rel = json.loads(self.videos.line(n))
            writer.copy_artifact(self.vc.store, key, rel)
        for (name, kind), spool in sorted(self.spools.items()):
            lines = Ordered(spool, range(len(spool)))
            if kind == "meta":
                writer.write_lines(meta_path(name), iter(lines))
            else:
                write_array(writer, array_path(name, kind), lines)

    def card(self) -> list[str]:
        if not self.counts["segments"]:
            why = "; ".join(sorted(self.not_run["video_captions"])) or "no exported video ran video_captions"
            return [f"- `{FOLDER}/`: not written ({why})."]
        qa = (f"{self.counts['oe']} open-ended and {self.counts['mc']} multiple-choice question(s)"
              if self.counts["oe"] or self.counts["mc"] else
              "no questions (" + ("; ".join(sorted(self.not_run["video_qa"])) or "none generated") + ")")
        return [f"- `{FOLDER}/`: {self.counts['segments']} captioned segment(s) of {self.counts['videos']} video(s) "
                f"in LLaVA-Video-178K's bucket layout (`<bucket>_textbook_v0_1/`: `cap`, `oe`, `mc` JSON arrays, "
                f"segment mp4s under `videos/`, a `_meta.jsonl` sidecar); {qa}."]

    def close(self) -> None:
        self.videos.close()
        for spool in self.spools.values():
            spool.close()

    @staticmethod
    def check(checker: Checker) -> None:
        for name, _ in BUCKETS:
            for kind in KINDS:
                rel = array_path(name, kind)
                if (checker.root / rel).is_file():
                    _check_array(checker, rel, data_source(name))


def _check_array(checker: Checker, rel: str, source: str) -> None:
    records = checker.load_json(rel)
    if not isinstance(records, list):
        checker.problem(f"{rel}: not a JSON array")
        return
    for n, r in enumerate(records):
        where = f"{rel} record {n}"
        if not isinstance(r, dict) or not {"id", "conversations", "data_source", "video"} <= set(r):
            checker.problem(f"{where}: needs id, conversations, data_source and video")
            continue
        human = r["conversations"][0].get("value", "") if r["conversations"] else ""
        if not human.startswith(f"{IMAGE}\n") or human.count(IMAGE) != 1:
            checker.problem(f"{where}: the human turn must begin with the one {IMAGE}")
        if r["data_source"] != source:
            checker.problem(f"{where}: data_source {r['data_source']!r} in the folder {source}")
        if not (checker.root / FOLDER / source / r["video"]).is_file():
            checker.problem(f"{where}: video {r['video']} does not exist")
