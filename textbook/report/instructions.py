"""The instruction view (M4-Instruct, ``m4/``) as a person checks it: counts per task and
placement, and records shown as the model reads them: the images in order, then the turns."""

from __future__ import annotations

import json
from collections import Counter
from html import escape
from pathlib import Path
from typing import Any

from textbook.report.data import dataset_path
from textbook.report.dataset_pages import ReportPage
from textbook.report.pages import page, table, thumb

INSTRUCTIONS_PAGE = "instructions.html"
ANNOTATIONS = "m4/m4_textbook_annotations.jsonl"
SHOWN_PER_TASK = 5


def load_records(root: Path) -> list[dict[str, Any]]:
    """The records, their image paths relative to the dataset (export.absolute_paths writes them absolute)."""
    path = root / ANNOTATIONS
    if not path.is_file():
        return []
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            record = json.loads(line)
            record["image"] = [dataset_path(p, f"{ANNOTATIONS}:{n}") for p in record["image"]]
            records.append(record)
    return records


def summary(records: list[dict[str, Any]]) -> str:
    """The index page's lines: how many records of each task, and a link."""
    if not records:
        return "<p>No instruction records (export.m4 is off, or no exported video has two kept keyframes).</p>\n"
    tasks = Counter(r["metadata"]["dataset"].removeprefix("textbook_") for r in records)
    listed = ", ".join(f"{n} {escape(task)}" for task, n in sorted(tasks.items()))
    return (f"<p>{len(records)} M4-Instruct record(s) in <code>m4/</code>: {listed}. "
            f"<a href=\"{INSTRUCTIONS_PAGE}\">Browse them</a>.</p>\n")


def _record(r: dict[str, Any]) -> str:
    meta = r["metadata"]
    images = "".join(thumb("../" + p, f"image {k}") for k, p in enumerate(r["image"], start=1))
    turns = "".join(f"<p><b>{escape(t['from'])}</b>: <span class=\"turn\">{escape(t['value'])}</span></p>\n"
                    for t in r["conversations"])
    choices = (f"<p class=\"muted\">choice_list: {escape(', '.join(r['choice_list']))}</p>\n"
               if r.get("choice_list") else "")
    return (f"<div class=\"record\" id=\"{escape(r['id'])}\"><h3><code>{escape(r['id'])}</code></h3>\n"
            f"<p class=\"muted\">{escape(meta['question_type'])}, placement {escape(meta['placement'])}, "
            f"{len(r['image'])} image(s)</p>\n<p>{images}</p>\n{turns}{choices}</div>\n")


def instructions_page(records: list[dict[str, Any]]) -> str:
    by_task: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_task.setdefault(r["metadata"]["dataset"].removeprefix("textbook_"), []).append(r)
    placements = Counter(r["metadata"]["placement"] for r in records)
    parts = ["<p><a href=\"index.html\">Report</a></p>\n<h1>Instruction records (M4-Instruct)</h1>\n",
             "<p>Each record's images in the order of its <code>&lt;image&gt;</code> placeholders, then its turns; "
             "the answer of a multiple-choice record is the letter of its image.</p>\n",
             table(["Task", "Records"], [(t, len(rs)) for t, rs in sorted(by_task.items())]),
             table(["Placement", "Records"], sorted(placements.items()))]
    for task, rs in sorted(by_task.items()):
        parts.append(f"<h2>{escape(task)}</h2>\n" + "".join(_record(r) for r in rs[:SHOWN_PER_TASK]))
        if len(rs) > SHOWN_PER_TASK:
            parts.append(f"<p class=\"muted\">{len(rs) - SHOWN_PER_TASK} more not shown.</p>\n")
    return page("Instruction records", "".join(parts))


PAGE = ReportPage(INSTRUCTIONS_PAGE, load_records, summary, instructions_page)
