"""The SoSVQA view ("Structure Over Scale"): question-pause-answer cycles in the public release's files.

- ``sos/labels/<video_id>.json``: the video's label array (SoS ``*_filtered.json``), SRT-string
  timestamps plus our ``*_s`` seconds and the ``detector`` that found the pause;
- ``sos/dataset.jsonl``: ``transcript`` (the context: transcript before the question, never the
  answer), ``question``, ``answer``, ``frames`` (``image`` path, ``timestamp``), ``video_path``,
  ``season`` (null), ``episode``, ``entry_id``, and our ``knowledge_point``;
- ``sos/grpo.jsonl``: the same entries as TRL's conversational prompt (one image slot per frame,
  then the text) with ``answer``, ``entry_id`` and the ``images`` in slot order;
- ``sos/mcq.json``: the multiple-choice form, only where the qa_mcq stage ran;
- ``sos/manifest.json``: counts, dropped cycles by reason, and why a stage did not run;
- ``sos/frames/<video_id>/<entry_id>_<k>.jpg``: the pause frames, files, never pixel lists in JSON.

Only exported videos contribute, so the view ships with the corpus it comes from.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any, Sequence

from textbook.export.files import DatasetWriter, dumps
from textbook.export.obelics import write_array
from textbook.export.spool import Ordered, Spool
from textbook.export.views import Example, Produced, View, ViewContext
from textbook.qa_mcq import LETTERS

if TYPE_CHECKING:
    from textbook.export.validate import Checker
    from textbook.export.videos import VideoEntry

FOLDER = "sos"
DATASET = f"{FOLDER}/dataset.jsonl"
GRPO = f"{FOLDER}/grpo.jsonl"
MCQ = f"{FOLDER}/mcq.json"
MANIFEST = f"{FOLDER}/manifest.json"
SYSTEM = ("You are watching an educational video. It asked a question and paused for the viewer. Answer the "
          "question from the frames of the pause and what was said before it, in a few words.")
DATASET_FIELDS = ("transcript", "question", "answer", "frames", "video_path", "season", "episode", "entry_id")
LABEL_FIELDS = ("id", "episode", "question_text", "question_start_ts", "question_end_ts_id", "pause_start",
                "pause_end", "answer_start_ts_id", "answer_end_ts_id", "has_answer", "answer_text")
MCQ_TAGS = ("reasoning_category", "compositional_complexity", "temporal_span", "requires_visual",
            "requires_transcript", "modality", "question_word_count", "answer_word_count")


def labels_path(video_id: str) -> str:
    return f"{FOLDER}/labels/{video_id}.json"


def frame_path(video_id: str, entry_id: str, k: int) -> str:
    return f"{FOLDER}/frames/{video_id}/{entry_id}_{k}.jpg"


def grpo_record(entry: dict[str, Any]) -> dict[str, Any]:
    images = [f["image"] for f in entry["frames"]]
    text = f"{SYSTEM}\n\nContext: {entry['transcript']}\nQuestion: {entry['question']}\nAnswer:"
    return {"prompt": [{"role": "user", "content": [{"type": "image"} for _ in images] + [{"type": "text", "text": text}]}],
            "answer": entry["answer"], "entry_id": entry["entry_id"], "images": images}


def mcq_record(item: dict[str, Any], transcript: str, episode: str) -> dict[str, Any]:
    """An ``mcq.json`` record in the release's field order."""
    return {"transcript": transcript, **{k: item[k] for k in ("question", "answer", "original_answer", "choices",
                                                              "correct_index", "correct_choice", "num_choices",
                                                              "generation_method")},
            "season": None, "episode": episode, "entry_id": item["entry_id"], **{k: item[k] for k in MCQ_TAGS}}


class SosView(View):
    name = "sos"
    folders = (FOLDER,)
    produced_by = (Produced("qa_cycles", "cycles", "question-pause-answer cycles"),
                   Produced("qa_mcq", "questions", "multiple-choice questions"))

    @staticmethod
    def examples(stage: str, doc: Any) -> list[Example]:
        if stage == "qa_cycles":
            return [Example(e["question"], (f"Answer: {e['answer']}", f"Context: {e['transcript']}"),
                            tuple(f["key"] for f in e["frames"])) for e in doc["entries"]]
        return [Example(i["question"], tuple(f"{LETTERS[k]}. {c}" + (" (correct)" if k == i["correct_index"] else "")
                                             for k, c in enumerate(i["choices"]))) for i in doc["items"]]

    def __init__(self, vc: ViewContext) -> None:
        super().__init__(vc)
        self.spools = {name: Spool(vc.tmp / f"sos-{name}") for name in ("dataset", "grpo", "mcq", "labels", "frames")}
        self.counts: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()

    def add_video(self, entry: VideoEntry, ready: bool) -> None:
        if not ready:
            return
        self.count_not_run(entry)
        cycles = entry.derived.get("qa_cycles")
        if cycles is None:
            return
        vid = entry.video_id
        self.counts["videos"] += 1
        self.counts["pauses"] += len(cycles["pauses"])
        self.dropped.update(d["reason"] for d in cycles["dropped"])
        if not cycles["labels"]:
            return
        self.counts["videos_with_cycles"] += 1
        self.spools["labels"].append((dumps([vid, cycles["labels"]]) + "\n").encode())
        kp = entry.knowledge_point
        transcripts = {}
        for e in cycles["entries"]:
            frames = []
            for k, frame in enumerate(e["frames"]):
                rel = frame_path(vid, e["entry_id"], k)
                self.spools["frames"].append((dumps([frame["key"], rel]) + "\n").encode())
                frames.append({"image": self.vc.path(rel), "timestamp": frame["timestamp"]})
            record = {"transcript": e["transcript"], "question": e["question"], "answer": e["answer"],
                      "frames": frames, "video_path": entry.url, "season": None, "episode": vid,
                      "entry_id": e["entry_id"], "knowledge_point": kp.id if kp else None}
            transcripts[e["entry_id"]] = e["transcript"]
            self.spools["dataset"].append((dumps(record) + "\n").encode())
            self.spools["grpo"].append((dumps(grpo_record(record)) + "\n").encode())
            self.counts["cycles"] += 1
            self.counts["frames"] += len(frames)
        mcq = entry.derived.get("qa_mcq")
        for item in (mcq or {}).get("items", []):
            self.spools["mcq"].append((dumps(mcq_record(item, transcripts[item["entry_id"]], vid)) + "\n").encode())
            self.counts["mcq"] += 1
        self.counts["mcq_failed"] += len((mcq or {}).get("failed", []))

    def write(self, writer: DatasetWriter, order: Sequence[int]) -> None:
        if not self.counts["videos"]:
            return
        for line in self._lines("labels"):
            vid, labels = json.loads(line)
            writer.write_json(labels_path(vid), labels)
        for line in self._lines("frames"):
            key, rel = json.loads(line)
            writer.copy_artifact(self.vc.store, key, rel)
        for name, rel in (("dataset", DATASET), ("grpo", GRPO)):
            writer.write_lines(rel, iter(self._lines(name)))
        if len(self.spools["mcq"]):
            write_array(writer, MCQ, self._lines("mcq"))
        writer.write_json(MANIFEST, self.manifest())

    def _lines(self, name: str) -> Ordered:
        return Ordered(self.spools[name], range(len(self.spools[name])))

    def manifest(self) -> dict[str, Any]:
        return {"dataset": "SoSVQA question-pause-answer cycles", "videos": self.counts["videos"],
                "videos_with_cycles": self.counts["videos_with_cycles"], "pauses": self.counts["pauses"],
                "cycles": self.counts["cycles"], "frames": self.counts["frames"],
                "dropped": dict(sorted(self.dropped.items())), "mcq": self.counts["mcq"],
                "mcq_failed": self.counts["mcq_failed"], "mcq_written": bool(self.counts["mcq"]),
                "not_run": {stage: dict(sorted(c.items())) for stage, c in self.not_run.items()}}

    def card(self) -> list[str]:
        if not self.counts["videos"]:
            why = "; ".join(sorted(self.not_run["qa_cycles"])) or "no exported video ran the qa_cycles stage"
            return [f"- `sos/`: not written ({why})."]
        mcq = (f"`mcq.json` holds {self.counts['mcq']} multiple-choice question(s)" if self.counts["mcq"] else
               "no `mcq.json` (" + ("; ".join(sorted(self.not_run["qa_mcq"])) or "no multiple-choice question") + ")")
        return [f"- `sos/`: {self.counts['cycles']} question-pause-answer cycle(s) from "
                f"{self.counts['videos_with_cycles']} of {self.counts['videos']} video(s) in the SoSVQA layout "
                f"(`labels/<video_id>.json`, `dataset.jsonl`, `grpo.jsonl` for TRL, pause frames under "
                f"`frames/`); {mcq}; counts and reasons in `manifest.json`."]

    def close(self) -> None:
        for spool in self.spools.values():
            spool.close()

    @staticmethod
    def check(checker: Checker) -> None:
        if not (checker.root / FOLDER).exists():
            return
        manifest = checker.load_json(MANIFEST)
        entries = [(n, e) for n, e in checker.lines(DATASET)] if (checker.root / DATASET).is_file() else []
        ids = []
        for n, e in entries:
            where = f"{DATASET} line {n}"
            if not isinstance(e, dict) or not set(DATASET_FIELDS) <= set(e):
                checker.problem(f"{where}: needs {', '.join(DATASET_FIELDS)}")
                continue
            ids.append(e["entry_id"])
            for frame in e["frames"]:
                rel = checker.relative(frame.get("image") if isinstance(frame, dict) else None, where)
                if rel is not None and not (checker.root / rel).is_file():
                    checker.problem(f"{where}: frame file {rel} does not exist")
        if len(set(ids)) != len(ids):
            checker.problem(f"{DATASET}: entry ids repeat")
        grpo = [g for _, g in checker.lines(GRPO)] if (checker.root / GRPO).is_file() else []
        if [g.get("entry_id") if isinstance(g, dict) else None for g in grpo] != ids:
            checker.problem(f"{GRPO}: its entries differ from {DATASET}'s")
        for g, (_, e) in zip(grpo, entries):
            try:
                slots = sum(1 for part in g["prompt"][0]["content"] if part.get("type") == "image")
            except (KeyError, IndexError, TypeError, AttributeError):
                checker.problem(f"{GRPO} entry {g['entry_id']}: prompt is not one user turn of typed parts")
                continue
            if slots != len(e["frames"]) or g.get("images") != [f["image"] for f in e["frames"]]:
                checker.problem(f"{GRPO} entry {g['entry_id']}: {slots} image slot(s) for {len(e['frames'])} frame(s)")
        labelled = []
        labels_dir = checker.root / FOLDER / "labels"
        for path in sorted(labels_dir.glob("*.json")) if labels_dir.is_dir() else []:
            rel = path.relative_to(checker.root).as_posix()
            labels = checker.load_json(rel)
            for label in labels if isinstance(labels, list) else []:
                if not isinstance(label, dict) or not set(LABEL_FIELDS) <= set(label):
                    checker.problem(f"{rel}: a label lacks some of {', '.join(LABEL_FIELDS)}")
                    continue
                labelled.append(label["id"])
        if sorted(labelled) != sorted(ids):
            checker.problem(f"{FOLDER}/labels/: the labels are not the entries of {DATASET}")
        mcq = checker.load_json(MCQ) if (checker.root / MCQ).is_file() else []
        for n, item in enumerate(mcq if isinstance(mcq, list) else []):
            choices, index = item.get("choices"), item.get("correct_index")
            if (not isinstance(choices, list) or not isinstance(index, int) or not 0 <= index < len(LETTERS[:len(choices)])
                    or item.get("correct_choice") != LETTERS[index] or choices[index] != item.get("answer")):
                checker.problem(f"{MCQ} record {n}: correct_index, correct_choice and answer disagree")
        if isinstance(manifest, dict) and (manifest.get("cycles") != len(ids)
                                           or manifest.get("mcq") != (len(mcq) if isinstance(mcq, list) else None)):
            checker.problem(f"{MANIFEST}: its counts differ from the files")
