"""The report's HTML pages: plain markup, inline CSS, nothing fetched from outside.

Every text from the data is HTML-escaped, and every path put in an ``href`` or ``src`` is
percent-encoded: keyframe names hold ``#`` (a URL fragment otherwise) and ``@``.
"""

from __future__ import annotations

from html import escape
from typing import Any, Iterable, Sequence
from urllib.parse import quote

from textbook.report.data import Dataset, SampleRow
from textbook.report.plots import Plot
from textbook.export.card import STATS_HEADER
from textbook.report.stats import funnel, outcome, statistics, subject

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f; background: #fff;
       max-width: 1200px; margin: 0 auto; padding: 1em 1.5em 3em; }
h1 { font-size: 1.6em; margin: .4em 0; } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1em; margin: 0 0 .4em; color: #444; }
table { border-collapse: collapse; margin: .6em 0; } th, td { border: 1px solid #d5d5d5; padding: .3em .6em; }
th { background: #f3f3f3; text-align: left; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.overall td { font-weight: 600; background: #fafafa; }
code { font: 13px ui-monospace, "DejaVu Sans Mono", monospace; }
a { color: #1a5fb4; } nav { margin-bottom: .5em; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; }
dl.facts dt { color: #666; } dl.facts dd { margin: 0; }
.clip { display: grid; grid-template-columns: minmax(230px, 40%) 1fr; gap: 1em; padding: .9em 0;
        border-top: 1px solid #e3e3e3; }
.frames { display: flex; flex-wrap: wrap; gap: .4em; align-content: flex-start; }
.frames img { width: 220px; height: auto; border: 1px solid #ccc; background: #eee; }
.frames.dropped img { opacity: .35; }
.transcript { margin: 0 0 .5em; }
.raw, .ocr { margin: .4em 0; padding: .4em .6em; background: #f6f6f6; border-left: 3px solid #bbb; }
.ocr { white-space: pre-wrap; font: 13px ui-monospace, "DejaVu Sans Mono", monospace; border-left-color: #6a9f6a; }
.label { font-size: .8em; text-transform: uppercase; letter-spacing: .05em; color: #777; }
.note { color: #8a4b00; background: #fff4e0; padding: .2em .5em; display: inline-block; }
.warning { color: #fff; background: #b00020; padding: .4em .8em; }
.muted { color: #777; }
figure { display: inline-block; margin: .5em 1em .5em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
"""

# Counts images that did not load once the page has, shows it, and leaves it on <body> for checks.
SCRIPT = """
window.addEventListener("load", function () {
  var broken = 0;
  for (var i = 0; i < document.images.length; i++) {
    if (!document.images[i].complete || document.images[i].naturalWidth === 0) { broken++; }
  }
  document.body.setAttribute("data-broken-images", String(broken));
  if (broken > 0) {
    var p = document.getElementById("broken-images");
    p.textContent = broken + " image(s) failed to load.";
    p.hidden = false;
  }
});
"""


def url(path: str) -> str:
    """A relative URL for a file path: every character that means something in a URL encoded."""
    return escape(quote(path, safe="/"))


def video_page_path(video_id: str) -> str:
    """Where a video's page lives under report/ (ids are checked: letters, digits, '_' and '-')."""
    return f"videos/{video_id}.html"


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    hours, rest = divmod(float(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{int(hours)}:{int(minutes):02d}:{secs:04.1f}" if hours else f"{int(minutes)}:{secs:04.1f}"


def page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n<script>{SCRIPT}</script>\n</head>\n<body>\n"
        "<p id=\"broken-images\" class=\"warning\" hidden></p>\n"
        f"{body}</body>\n</html>\n"
    )


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, raw: bool = False,
          classes: Sequence[str] = ()) -> str:
    """Numbers right-aligned; cells escaped unless ``raw`` (already markup); one class per row."""

    def cell(value: Any) -> str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return f"<td class=\"n\">{value}</td>"
        return f"<td>{value if raw else escape(str(value))}</td>"

    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    lines = []
    for n, row in enumerate(rows):
        cls = f" class=\"{classes[n]}\"" if n < len(classes) and classes[n] else ""
        lines.append(f"<tr{cls}>" + "".join(cell(c) for c in row) + "</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(lines) + "\n</tbody>\n</table>\n"


def _failed_verdicts(video: dict[str, Any]) -> str:
    failed = [v for v in video.get("verdicts") or [] if not v.get("passed", True)]
    return "; ".join(f"{v.get('name')} (score {v.get('score')})" for v in failed) or "-"


def _sample_list(samples: list[SampleRow]) -> str:
    return ", ".join(f"#{s.index} ({s.shard})" for s in samples) or "none"


def index_page(data: Dataset, charts: list[Plot], *, has_card: bool) -> str:
    exported = [v for v in data.videos if v["exported"]]
    rest = [o for o in (outcome(v) for v in data.videos) if o is not None]
    parts = ["<h1>Dataset report</h1>\n",
             ("<p>Built from this dataset folder's files only: <code>videos.jsonl</code>, the clip view "
              "<code>clips/</code>, the OBELICS shards <code>obelics/</code> and the keyframes under "
              "<code>images/</code>.")]
    if has_card:
        parts.append(" The dataset card: <a href=\"../README.md\">README.md</a>.")
    parts.append("</p>\n<h2>Funnel</h2>\n")
    parts.append(table(["Step", "Videos"], funnel(data)))
    parts.append("<h2>Videos not kept</h2>\n")
    if rest:
        rows = [(f"<code>{escape(o.video['video_id'])}</code>", escape(o.video.get("title") or ""),
                 escape(o.outcome), escape(o.reason), escape(_failed_verdicts(o.video))) for o in rest]
        parts.append(table(["Video", "Title", "Outcome", "Reason", "Failed verdicts"], rows, raw=True))
    else:
        parts.append("<p>Every video found was kept.</p>\n")
    parts.append("<h2>Kept videos</h2>\n")
    if exported:
        rows = []
        for v in exported:
            counts = v.get("counts") or {}
            kp = v.get("knowledge_point") or {}
            link = f"<a href=\"{url(video_page_path(v['video_id']))}\">{escape(v.get('title') or v['video_id'])}</a>"
            rows.append((link, f"<code>{escape(v['video_id'])}</code>", escape(kp.get("path") or subject(v)),
                         clock(v["duration"]), counts.get("clips") or 0,
                         f"{counts.get('images') or 0} of {counts.get('keyframes') or 0}", counts.get("tokens") or 0))
        parts.append(table(["Title", "Video", "Knowledge point", "Duration", "Clips", "Keyframes shown",
                            "Tokens"], rows, raw=True))
    else:
        parts.append("<p>No video is in the samples.</p>\n")
    parts.append("<h2>Statistics</h2>\n")
    rows = statistics(data)
    parts.append(table(STATS_HEADER, rows, classes=[""] * (len(rows) - 1) + ["overall"]))
    parts.append("<p class=\"muted\">Keyframes are those shown in the OBELICS view (kept by the visual filter). "
                 "A sample counts for every subject whose videos it holds.</p>\n")
    parts.append("<h2>Distributions</h2>\n")
    for chart in charts:
        if chart.values:
            parts.append(f"<figure><img src=\"{url(chart.file)}\" alt=\"{escape(chart.title)}\">"
                         f"<figcaption>{escape(chart.title)} (n = {len(chart.values)})</figcaption></figure>\n")
        else:
            parts.append(f"<p class=\"muted\">{escape(chart.title)}: no data.</p>\n")
    return page("Dataset report", "".join(parts))


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
            frames.append(f"<img src=\"{url('../../' + path)}\" alt=\"keyframe {k} of the clip at {clock(start)}\">")
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


def video_page(data: Dataset, video: dict[str, Any], existing: set[str]) -> str:
    vid = video["video_id"]
    clips = data.clips.get(vid, [])
    kp = video.get("knowledge_point") or {}
    counts = video.get("counts") or {}
    facts = [("Video id", f"<code>{escape(vid)}</code>"), ("URL", f"<code>{escape(video.get('url') or '')}</code>"),
             ("Knowledge point", escape(kp.get("path") or subject(video))),
             ("Channel", escape(video.get("channel") or "-")), ("Duration", clock(video["duration"])),
             ("Language", escape(video.get("language") or "-")),
             ("Transcript", escape(video.get("transcript_source") or "-")),
             ("License", escape(video.get("license") or "-")),
             ("In samples", escape(_sample_list(data.samples_of(vid))))]
    parts = ["<nav><a href=\"../index.html\">&larr; Dataset report</a></nav>\n",
             f"<h1>{escape(video.get('title') or vid)}</h1>\n<dl class=\"facts\">\n",
             "".join(f"<dt>{k}</dt><dd>{v}</dd>\n" for k, v in facts), "</dl>\n<h2>Filters</h2>\n"]
    verdicts = [(v.get("name", ""), "passed" if v.get("passed") else "failed", "-" if v.get("score") is None
                 else v["score"], v.get("reason") or "") for v in video.get("verdicts") or []]
    parts.append(table(["Filter", "Verdict", "Score", "Reason"], verdicts) if verdicts else "<p>No verdicts.</p>\n")
    parts.append(f"<h2>Clips</h2>\n<p>{len(clips)} clip(s), {counts.get('keyframes') or 0} keyframe(s) of which "
                 f"{counts.get('images') or 0} in the samples, {counts.get('transcript_tokens') or 0} transcript "
                 f"tokens. Each clip: its keyframes, then what was said over them.</p>\n")
    parts.extend(_clip_section(n, clip, existing) for n, clip in enumerate(clips))
    return page(f"{video.get('title') or vid} ({vid})", "".join(parts))
