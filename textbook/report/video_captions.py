"""The LLaVA-Video view (``llava_video/``) as a person checks it: each segment's video, its level-1,
level-2 and final captions, and its questions."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from textbook.export.llava_video import BUCKETS, FOLDER, array_path, data_source, meta_path
from textbook.report.dataset_pages import ReportPage
from textbook.report.pages import page, url

CAPTIONS_PAGE = "video_captions.html"
SHOWN = 50


def load_segments(root: Path) -> list[dict[str, Any]]:
    """Every captioned segment with its record, its sidecar line and its questions, bucket by bucket."""
    out = []
    for name, _ in BUCKETS:
        cap = root / array_path(name, "cap")
        if not cap.is_file():
            continue
        meta = [json.loads(line) for line in (root / meta_path(name)).read_text(encoding="utf-8").splitlines() if line]
        side = {m["id"]: m for m in meta if m["kind"] == "cap"}
        questions: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for kind in ("oe", "mc"):
            path = root / array_path(name, kind)
            for r in json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []:
                questions.setdefault(r["id"], []).append((kind, r))
        for r in json.loads(cap.read_text(encoding="utf-8")):
            out.append({"bucket": name, "record": r, "meta": side.get(r["id"], {}),
                        "questions": questions.get(r["id"], []),
                        "video": f"{FOLDER}/{data_source(name)}/{r['video']}"})
    return out


def summary(segments: list[dict[str, Any]]) -> str:
    if not segments:
        return f"<p>No captioned video segments (<code>{FOLDER}/</code> holds none).</p>\n"
    asked = sum(len(s["questions"]) for s in segments)
    return (f"<p>{len(segments)} captioned video segment(s) with {asked} question(s) in <code>{FOLDER}/</code> "
            f"(LLaVA-Video-178K). <a href=\"{CAPTIONS_PAGE}\">Browse them</a>.</p>\n")


def _segment(s: dict[str, Any]) -> str:
    r, m = s["record"], s["meta"]
    when = f"{m['start']:.0f}-{m['end']:.0f} s of {escape(m['video_id'])}" if m else ""
    levels = "".join(f"<li class=\"muted\">level {lvl}: {escape(t)}</li>" for lvl in (1, 2)
                     for t in m.get(f"level{lvl}", []))
    asked = "".join(f"<li><b>{kind}</b>: {escape(q['conversations'][0]['value'].removeprefix('<image>').strip())} "
                    f"&rarr; {escape(q['conversations'][1]['value'])}</li>" for kind, q in s["questions"])
    grounded = " (grounded with narration and OCR)" if m.get("grounding") else ""
    return (f"<div class=\"record\" id=\"{escape(r['id'])}\"><h3><code>{escape(r['id'])}</code> "
            f"<span class=\"muted\">{escape(s['bucket'])}, {when}{grounded}</span></h3>\n"
            f"<p><video controls preload=\"none\" width=\"320\" src=\"{url('../' + s['video'])}\"></video></p>\n"
            f"<p><b>Caption</b>: {escape(r['conversations'][1]['value'])}</p>\n<ul>{levels}</ul>\n"
            f"<ul>{asked}</ul></div>\n")


def captions_page(segments: list[dict[str, Any]]) -> str:
    parts = ["<p><a href=\"index.html\">Report</a></p>\n<h1>Video captions and questions (LLaVA-Video)</h1>\n",
             "<p>Each segment's video, its final (level-3) caption as the record holds it, the level-1 and "
             "level-2 captions it was built from, and its open-ended (oe) and multiple-choice (mc) questions.</p>\n"]
    parts += [_segment(s) for s in segments[:SHOWN]]
    if len(segments) > SHOWN:
        parts.append(f"<p class=\"muted\">{len(segments) - SHOWN} more not shown.</p>\n")
    return page("Video captions and questions", "".join(parts))


PAGE = ReportPage(CAPTIONS_PAGE, load_segments, summary, captions_page)
