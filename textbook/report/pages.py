"""The report's HTML pages: plain markup, inline CSS, nothing fetched from outside.

Every text from the data is HTML-escaped, and every path put in an ``href`` or ``src`` is
percent-encoded: keyframe names hold ``#`` (a URL fragment otherwise) and ``@``.
"""

from __future__ import annotations

from html import escape
from typing import Any, Iterable, Sequence
from urllib.parse import quote

from textbook.report.data import Dataset
from textbook.report.dedup import Audit
from textbook.report.plots import Plot
from textbook.export.card import STATS_HEADER
from textbook.report.stats import failure_groups, funnel, outcome, stage_costs, statistics, subject
from textbook.report.verdicts import score_text

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
.frames img, img.thumb { width: 220px; height: auto; border: 1px solid #ccc; background: #eee; }
.frames.dropped img { opacity: .35; }
.transcript { margin: 0 0 .5em; }
.raw, .ocr { margin: .4em 0; padding: .4em .6em; background: #f6f6f6; border-left: 3px solid #bbb; }
.ocr { white-space: pre-wrap; font: 13px ui-monospace, "DejaVu Sans Mono", monospace; border-left-color: #6a9f6a; }
.label { font-size: .8em; text-transform: uppercase; letter-spacing: .05em; color: #777; }
.note { color: #8a4b00; background: #fff4e0; padding: .2em .5em; display: inline-block; }
.warning { color: #fff; background: #b00020; padding: .4em .8em; }
.muted { color: #777; }
.sample { max-width: 900px; } .sample p { margin: .3em 0; } .sample img.thumb { width: 360px; }
.eov { display: inline-block; margin: .5em 0; padding: .2em .6em; background: #1d1d1f; color: #fff;
       font: 13px ui-monospace, "DejaVu Sans Mono", monospace; }
.pair { display: flex; gap: .6em; align-items: flex-start; margin: .6em 0; }
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


def sample_page_path(index: int) -> str:
    return f"samples/{index:05d}.html"


DUPLICATES_PAGE = "duplicates.html"


def thumb(src: str, alt: str) -> str:
    """An image that opens at full size when clicked."""
    return (f"<a href=\"{url(src)}\"><img class=\"thumb\" src=\"{url(src)}\" alt=\"{escape(alt)}\"></a>")


def image_tokens(data: Dataset) -> int | None:
    """Tokens each image counts for in token_num (export.image_tokens), None when the card does not say."""
    value = (data.config.get("export") or {}).get("image_tokens")
    return value if isinstance(value, int) else None


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


def failed_verdicts(video: dict[str, Any], config: dict[str, Any]) -> str:
    failed = [v for v in video.get("verdicts") or [] if not v.get("passed", True)]
    out = []
    for v in failed:
        score = score_text(str(v.get("name")), v.get("score"), config)
        out.append(f"{v.get('name')}: {v.get('reason') or 'failed'}" + ("" if score == "-" else f" [{score}]"))
    return "; ".join(out) or "-"


def _video_link(video: dict[str, Any], text: str) -> str:
    return f"<a href=\"{url(video_page_path(video['video_id']))}\">{text}</a>"


def sampled_note(data: Dataset, listed: int, of: int) -> str:
    """Says that a table lists only the report's sample of a large corpus."""
    if listed == of:
        return ""
    return (f"<p class=\"muted\">{listed} of {of} listed: above export.report_max_videos videos the report shows a "
            f"fixed sample of {len(data.shown)}; the funnel and statistics count every video.</p>\n")


def _not_kept(data: Dataset) -> str:
    everyone = [o for o in (outcome(v) for v in data.videos) if o is not None]
    rest = [o for o in everyone if o.video["video_id"] in data.shown]
    if not everyone:
        return "<p>Every video found was kept.</p>\n"
    rows = [(_video_link(o.video, f"<code>{escape(o.video['video_id'])}</code>"), escape(o.video.get("title") or ""),
             escape(o.outcome), escape(o.reason), escape(failed_verdicts(o.video, data.config))) for o in rest]
    out = table(["Video", "Title", "Outcome", "Reason", "Failed filters: reason [score (threshold)]"], rows, raw=True)
    out += sampled_note(data, len(rest), len(everyone))
    groups = failure_groups(data)
    if groups:
        out += "<h3>Failures by category</h3>\n" + table(["Category", "Videos", "What usually helps"], groups)
    return out


def _kept(data: Dataset) -> str:
    everyone = [v for v in data.videos if v["exported"]]
    exported = [v for v in everyone if v["video_id"] in data.shown]
    if not everyone:
        return "<p>No video is in the samples.</p>\n"
    per_image = image_tokens(data)
    rows = []
    for v in exported:
        counts = v.get("counts") or {}
        kp = v.get("knowledge_point") or {}
        images = counts.get("images") or 0
        image_cell = f"{images} × {per_image} = {images * per_image}" if per_image is not None else f"{images} × ?"
        rows.append((_video_link(v, escape(v.get("title") or v["video_id"])), f"<code>{escape(v['video_id'])}</code>",
                     escape(kp.get("path") or subject(v)), clock(v["duration"]), counts.get("clips") or 0,
                     f"{images} of {counts.get('keyframes') or 0}", counts.get("transcript_tokens") or 0,
                     counts.get("ocr_tokens") or 0, image_cell, counts.get("tokens") or 0))
    return (table(["Title", "Video", "Knowledge point", "Duration", "Clips", "Keyframes in samples (of SSIM-kept)",
                   "Transcript tokens", "OCR tokens", "Image tokens (images × per image)",
                   "Sample tokens (transcript + images)"], rows, raw=True)
            + sampled_note(data, len(exported), len(everyone))
            + "<p class=\"muted\">Sample tokens are what the video costs in the packed samples' <code>token_num</code>: "
              "its transcript tokens plus each image at the export's tokens per image (the End-of-Video marker "
              "adds a few). OCR tokens travel in <code>text_ocr_list</code> only and are not in that budget. "
              "Tokens are estimated offline (no model tokenizer).</p>\n")


def _costs(data: Dataset) -> str:
    costs = stage_costs(data)
    if not costs:
        return "<p class=\"muted\">No stage times recorded (<code>.textbook/stage_seconds.jsonl</code>).</p>\n"
    rows = [(c.stage, c.videos, f"{c.seconds:.1f}", f"{c.seconds / c.videos:.1f}", f"{c.video_hours * 60:.1f}",
             "-" if c.per_video_hour is None else f"{c.per_video_hour:.0f}") for c in costs]
    total = sum(c.seconds for c in costs)
    hours = sum(float(v["duration"] or 0.0) for v in data.videos if v.get("stage_seconds")) / 3600
    rows.append(("all stages", sum(1 for v in data.videos if v.get("stage_seconds")), f"{total:.1f}", "", f"{hours * 60:.1f}",
                 f"{total / hours:.0f}" if hours else "-"))
    return (table(["Stage", "Videos", "Seconds (sum)", "Seconds per video", "Video minutes", "Seconds per video hour"],
                  rows, classes=[""] * len(costs) + ["overall"])
            + "<p class=\"muted\">Wall time of each stage's last run, over every video whose result includes it "
              "(kept or dropped); a video dropped early only counts for the stages it reached. Seconds per video "
              "hour = stage seconds / hours of those videos.</p>\n")


def _charts(charts: list[Plot]) -> str:
    parts = []
    for chart in charts:
        if chart.values:
            note = f"; dashed line: threshold {chart.threshold:g}" if chart.threshold is not None else ""
            parts.append(f"<figure><a href=\"{url(chart.file)}\"><img src=\"{url(chart.file)}\" "
                         f"alt=\"{escape(chart.title)}\"></a><figcaption>{escape(chart.title)} "
                         f"(n = {len(chart.values)}{note})</figcaption></figure>\n")
        else:
            parts.append(f"<p class=\"muted\">{escape(chart.title)}: no data.</p>\n")
    return "".join(parts)


def _samples(data: Dataset) -> str:
    browsed = [s for s in data.samples if s.images or s.texts]
    if not browsed:
        return "<p>No samples.</p>\n"
    rows = [(f"<a href=\"{url(sample_page_path(s.index))}\">#{s.index}</a>", escape(s.shard),
             ", ".join(f"<code>{escape(v)}</code>" for v in s.video_ids), s.image_num, s.text_num, s.token_num)
            for s in browsed]
    more = len(data.samples) - len(browsed)
    return (table(["Sample", "Shard", "Videos", "Images", "Transcript tokens (text_num)",
                   "Tokens (token_num: texts + images)"], rows, raw=True)
            + (f"<p class=\"muted\">{more} more sample(s) not shown.</p>\n" if more else ""))


def _duplicates(dupes: Audit) -> str:
    within, across = dupes.pair_count(False), dupes.pair_count(True)
    return (f"<p>{dupes.images} image(s) hashed: {within} near-duplicate pair(s) within a video "
            f"({dupes.share(False):.0%} of the images have one), {across} across videos "
            f"({dupes.share(True):.0%}). <a href=\"{DUPLICATES_PAGE}\">Example pairs</a>.</p>\n")


def index_page(data: Dataset, charts: list[Plot], dupes: Audit, *, has_card: bool, instructions: str) -> str:
    parts = ["<h1>Dataset report</h1>\n",
             ("<p>Built from this dataset folder's files only: <code>videos.jsonl</code>, the clip view "
              "<code>clips/</code>, the OBELICS shards <code>obelics/</code> and the keyframes under "
              "<code>images/</code>.")]
    if has_card:
        parts.append(" The dataset card: <a href=\"../README.md\">README.md</a>.")
    parts.append("</p>\n<nav><a href=\"#funnel\">Funnel</a> · <a href=\"#not-kept\">Not kept</a> · "
                 "<a href=\"#kept\">Kept</a> · <a href=\"#samples\">Samples</a> · <a href=\"#cost\">Time</a> · "
                 "<a href=\"#duplicates\">Duplicates</a> · <a href=\"#instructions\">Instructions</a> · "
                 "<a href=\"#statistics\">Statistics</a> · "
                 "<a href=\"#distributions\">Distributions</a></nav>\n")
    parts.append("<h2 id=\"funnel\">Funnel</h2>\n" + table(["Step", "Videos"], funnel(data)))
    parts.append("<h2 id=\"not-kept\">Videos not kept</h2>\n" + _not_kept(data))
    parts.append("<h2 id=\"kept\">Kept videos</h2>\n" + _kept(data))
    parts.append("<h2 id=\"samples\">Samples as the trainer sees them</h2>\n" + _samples(data))
    parts.append("<h2 id=\"cost\">Time per stage</h2>\n" + _costs(data))
    parts.append("<h2 id=\"duplicates\">Near-duplicate images</h2>\n" + _duplicates(dupes))
    parts.append("<h2 id=\"instructions\">Instruction records</h2>\n" + instructions)
    parts.append("<h2 id=\"statistics\">Statistics</h2>\n")
    rows = statistics(data)
    parts.append(table(STATS_HEADER, rows, classes=[""] * (len(rows) - 1) + ["overall"]))
    parts.append("<p class=\"muted\">Keyframes are those shown in the OBELICS view (kept by the visual filter). "
                 "A sample counts for every subject whose videos it holds.</p>\n")
    parts.append("<h2 id=\"distributions\">Distributions</h2>\n<p class=\"muted\">Filter scores are over every "
                 "video scored, kept or dropped; the dashed line is the threshold the card's configuration "
                 "records.</p>\n" + _charts(charts))
    return page("Dataset report", "".join(parts))
