"""One page per video considered: a kept one as its clips (keyframes beside transcript and OCR), a
dropped one (filtered, failed, unfinished) with why, every verdict, and what was collected before."""

from __future__ import annotations

from html import escape
from typing import Any

from textbook.report.data import Dataset, SampleRow
from textbook.report.pages import clock, page, sample_page_path, table, thumb, url
from textbook.report.stats import outcome, subject
from textbook.report.verdicts import rule, threshold_text, value_text


def _unique_lines(texts: list[str]) -> list[str]:
    """Each non-empty line once, in order: how the exporter joins a clip's OCR into its text."""
    lines: dict[str, None] = {}
    for text in texts:
        for line in (text or "").splitlines():
            if line.strip():
                lines[line.strip()] = None
    return list(lines)


def _clip_section(n: int, clip: dict[str, Any], existing: set[str]) -> str:
    start, end = float(clip["clip_start"]), float(clip["clip_end"])
    kept = bool(clip["visual_kept"])
    frames = []
    for k, path in enumerate(clip["keyframe_ssim"], start=1):
        if path in existing:
            frames.append(thumb("../../" + path, f"keyframe {k} of the clip at {clock(start)}"))
        else:
            frames.append(f"<span class=\"warning\">missing: {escape(path)}</span>")
    words = [f"<h3>{clock(start)} – {clock(end)} <span class=\"muted\">({end - start:.1f} s)</span></h3>\n"]
    if not kept:
        reason = clip.get("visual_reason") or ""
        words.append(f"<p class=\"note\">images dropped{': ' + escape(reason) if reason else ''}</p>\n")
    refined, raw = clip["refined_asr"] or "", clip["asr"] or ""
    shown = escape(refined) if refined else "<span class=\"muted\">(no transcript)</span>"
    words.append(f"<p class=\"transcript\">{shown}</p>\n")
    if raw != refined:
        words.append(f"<div class=\"raw\"><div class=\"label\">Raw transcript</div>{escape(raw)}</div>\n")
    ocr = "\n".join(_unique_lines(clip["ocr_deduplicates"]))
    if ocr:
        label = "OCR (deduplicated)" if kept else "OCR (deduplicated; dropped with the images)"
        words.append(f"<div class=\"ocr\"><div class=\"label\">{label}</div>{escape(ocr)}</div>\n")
    frames_html = "\n".join(frames) or "<span class=\"muted\">no keyframes</span>"
    return (f"<section class=\"clip\" id=\"clip-{n}\">\n"
            f"<div class=\"frames{'' if kept else ' dropped'}\">\n{frames_html}\n</div>\n"
            f"<div class=\"words\">\n{''.join(words)}</div>\n</section>\n")


def _sample_list(samples: list[SampleRow]) -> str:
    links = []
    for s in samples:
        label = f"#{s.index} ({escape(s.shard)})"
        links.append(f"<a href=\"{url('../' + sample_page_path(s.index))}\">{label}</a>" if s.images or s.texts
                     else label)
    return ", ".join(links) or "none"


def _verdicts(video: dict[str, Any], config: dict[str, Any]) -> str:
    rows = []
    for v in video.get("verdicts") or []:
        name = str(v.get("name", ""))
        rows.append((name, "passed" if v.get("passed") else "failed", rule(name).quantity,
                     value_text(name, v.get("score")), threshold_text(name, config), v.get("reason") or ""))
    if not rows:
        return "<p>No verdicts: the video did not reach the filters.</p>\n"
    return table(["Filter", "Verdict", "Measures", "Score", "Threshold", "Reason"], rows)


def _stage_times(video: dict[str, Any]) -> str:
    times = video.get("stage_seconds") or {}
    if not times:
        return "<p class=\"muted\">No stage ran to the end.</p>\n"
    total = sum(float(s) for s in times.values())
    return table(["", *times, "all stages"], [("seconds", *(float(s) for s in times.values()), round(total, 2))])


def _outcome(video: dict[str, Any]) -> str:
    why = outcome(video)
    if why is None:
        return ""
    category = video.get("failure_category")
    extra = f" <span class=\"muted\">(category: {escape(category)})</span>" if category else ""
    return (f"<p class=\"warning\">Not in the samples: {escape(why.outcome)}: {escape(why.reason)}{extra}</p>\n"
            + (f"<p class=\"muted\">{escape(video['export_error'])}</p>\n" if video.get("export_error") else ""))


def video_page(data: Dataset, video: dict[str, Any], existing: set[str]) -> str:
    vid = video["video_id"]
    clips = data.clips.get(vid, [])
    kp = video.get("knowledge_point") or {}
    counts = video.get("counts") or {}
    facts = [("Video id", f"<code>{escape(vid)}</code>"), ("URL", f"<code>{escape(video.get('url') or '')}</code>"),
             ("Status", escape(video["status"])),
             ("Knowledge point", escape(kp.get("path") or subject(video))),
             ("Search keyword", escape(video.get("search_keyword") or "-")),
             ("Channel", escape(video.get("channel") or "-")), ("Duration", clock(video["duration"])),
             ("Language", escape(video.get("language") or "-")),
             ("Transcript", escape(video.get("transcript_source") or "-")),
             ("License", escape(video.get("license") or "-")),
             ("In samples", _sample_list(data.samples_of(vid)))]
    parts = ["<nav><a href=\"../index.html\">&larr; Dataset report</a></nav>\n",
             f"<h1>{escape(video.get('title') or vid)}</h1>\n", _outcome(video), "<dl class=\"facts\">\n",
             "".join(f"<dt>{k}</dt><dd>{v}</dd>\n" for k, v in facts), "</dl>\n<h2>Filters</h2>\n",
             _verdicts(video, data.config), "<h2>Stage times</h2>\n", _stage_times(video)]
    if video["exported"]:
        parts.append(f"<h2>Clips</h2>\n<p>{len(clips)} clip(s), {counts.get('keyframes') or 0} keyframe(s) kept by "
                     f"SSIM of which {counts.get('images') or 0} in the samples, "
                     f"{counts.get('transcript_tokens') or 0} transcript tokens, {counts.get('ocr_tokens') or 0} OCR "
                     f"tokens. Each clip: its keyframes (click for full size), then what was said over them.</p>\n")
        parts.extend(_clip_section(n, clip, existing) for n, clip in enumerate(clips))
    return page(f"{video.get('title') or vid} ({vid})", "".join(parts))
