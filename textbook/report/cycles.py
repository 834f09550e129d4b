"""The question-pause-answer view (SoSVQA, ``sos/``) as a person checks it: each cycle's context,
question, pause and answer, the frames of the pause, and its multiple-choice form where there is one."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path, PurePosixPath
from typing import Any

from textbook.report.data import ReportInputError
from textbook.report.dataset_pages import ReportPage
from textbook.report.pages import page, thumb

CYCLES_PAGE = "cycles.html"
DATASET = "sos/dataset.jsonl"
SHOWN = 50


def _relative(path: str, where: str) -> str:
    """A frame path from the data relative to the dataset root (absolute ones cut back to ``sos/frames/…``)."""
    parts = PurePosixPath(path).parts
    if PurePosixPath(path).is_absolute():
        starts = [i for i in range(len(parts) - 1) if parts[i:i + 2] == ("sos", "frames")]
        if not starts:
            raise ReportInputError(f"{where}: absolute frame path {path!r} does not end in sos/frames/<video_id>/<file>")
        parts = parts[starts[-1]:]
    if not parts or any(p in ("", ".", "..") for p in parts):
        raise ReportInputError(f"{where}: frame path {path!r} leaves the dataset folder")
    return PurePosixPath(*parts).as_posix()


def load_cycles(root: Path) -> list[dict[str, Any]]:
    """The cycles of ``sos/dataset.jsonl``, each with its label (pause times) and its MCQ record, if any."""
    path = root / DATASET
    if not path.is_file():
        return []
    labels = {label["id"]: label for f in sorted((root / "sos" / "labels").glob("*.json"))
              for label in json.loads(f.read_text(encoding="utf-8"))}
    mcq_path = root / "sos" / "mcq.json"
    mcq = {m["entry_id"]: m for m in json.loads(mcq_path.read_text(encoding="utf-8"))} if mcq_path.is_file() else {}
    cycles = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            entry = json.loads(line)
            for frame in entry["frames"]:
                frame["image"] = _relative(frame["image"], f"{DATASET}:{n}")
            cycles.append({**entry, "label": labels.get(entry["entry_id"], {}), "mcq": mcq.get(entry["entry_id"])})
    return cycles


def summary(cycles: list[dict[str, Any]]) -> str:
    if not cycles:
        return "<p>No question-pause-answer cycles (<code>sos/</code> holds none).</p>\n"
    videos = len({c["episode"] for c in cycles})
    mcq = sum(1 for c in cycles if c["mcq"])
    return (f"<p>{len(cycles)} question-pause-answer cycle(s) from {videos} video(s) in <code>sos/</code>, "
            f"{mcq} with a multiple-choice form. <a href=\"{CYCLES_PAGE}\">Browse them</a>.</p>\n")


def _cycle(c: dict[str, Any]) -> str:
    label = c["label"]
    frames = "".join(thumb("../" + f["image"], f"frame at {f['timestamp']:.2f} s") for f in c["frames"])
    pause = (f"pause {label['pause_start_s']:.2f}-{label['pause_end_s']:.2f} s "
             f"({label['pause_end_s'] - label['pause_start_s']:.2f} s, {escape(label['detector'])})"
             if label else "pause not labelled")
    mcq = ""
    if c["mcq"]:
        m = c["mcq"]
        mcq = "<ol type=\"A\">" + "".join(
            f"<li>{'<b>' if k == m['correct_index'] else ''}{escape(choice)}{'</b>' if k == m['correct_index'] else ''}</li>"
            for k, choice in enumerate(m["choices"])) + "</ol>\n"
    return (f"<div class=\"record\" id=\"{escape(c['entry_id'])}\"><h3><code>{escape(c['entry_id'])}</code> "
            f"<span class=\"muted\">{escape(c['episode'])}</span></h3>\n"
            f"<p class=\"muted\">Context: {escape(c['transcript']) or '(none)'}</p>\n"
            f"<p><b>Question</b>: {escape(c['question'])}</p>\n<p class=\"muted\">{pause}</p>\n<p>{frames}</p>\n"
            f"<p><b>Answer</b>: {escape(c['answer'])}</p>\n{mcq}</div>\n")


def cycles_page(cycles: list[dict[str, Any]]) -> str:
    parts = ["<p><a href=\"index.html\">Report</a></p>\n<h1>Question-pause-answer cycles (SoSVQA)</h1>\n",
             "<p>What was said before the question (the context a model is given), the question, the pause "
             "with its frames, then the answer; the choices of a multiple-choice form, the correct one in bold.</p>\n"]
    parts += [_cycle(c) for c in cycles[:SHOWN]]
    if len(cycles) > SHOWN:
        parts.append(f"<p class=\"muted\">{len(cycles) - SHOWN} more not shown.</p>\n")
    return page("Question-pause-answer cycles", "".join(parts))


PAGE = ReportPage(CYCLES_PAGE, load_cycles, summary, cycles_page)
