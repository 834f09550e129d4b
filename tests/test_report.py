"""The HTML report of an exported dataset, checked the way a person sees it: in a real headless Chromium."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from PIL import Image

from export_helpers import (ClipSpec, add_done_video, add_failed_video, add_filtered_video, add_knowledge_point,
                            make_context, register, snapshot, with_export)
from textbook.export import export_dataset
from textbook.records import Verdict
from textbook.report import ReportInputError, write_report

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
FILTER_REASON = "length <b>4.0 s</b> < 10 s"  # markup in data must reach the reader as text


def _world(tmp_path: Path, **export):
    ctx = make_context(tmp_path, **{"image_tokens": 10, "token_budget": 1000, **export})
    add_knowledge_point(ctx, "math-1", "Mathematics", level=2)
    add_knowledge_point(ctx, "phys-1", "Physics", level=1)
    add_done_video(ctx, "vidA", "math-1", [
        ClipSpec(0.0, 15.0, "one two three", refined="One, two, three.", keyframes=2, ocr=("x = 1", "y = 2")),
        ClipSpec(15.0, 30.0, "four five", keyframes=1, visual_kept=False, ocr=("FACE CAPTION",)),
        ClipSpec(30.0, 45.0, "six seven", keyframes=1),
    ])
    add_done_video(ctx, "-vidB_2", "phys-1", [
        ClipSpec(0.0, 12.5, "force equals mass times acceleration", keyframes=1, ocr=("F = ma",)),
        ClipSpec(12.5, 25.0, "so the unit is newton", keyframes=2),
    ], transcript_source="faster_whisper")
    add_filtered_video(ctx, "vidF", "math-1", Verdict("too_short", False, 4.0, FILTER_REASON))
    add_failed_video(ctx, "vidX", "phys-1")
    register(ctx, "vidN", "math-1")
    return ctx


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """An exported dataset with its report written (read-only for the tests that use it)."""
    root = export_dataset(_world(tmp_path_factory.mktemp("world"))).root
    write_report(root)
    return root


class _Page(HTMLParser):
    """What a page shows: its text, the <body> attributes, links, and each clip's images and text."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.body: dict[str, str | None] = {}
        self.links: list[str] = []
        self.text: list[str] = []
        self.clips: list[dict] = []
        self.rows: list[list[str]] = []
        self._skip = 0
        self._in_cell = False
        self._clip_depth = 0
        self._depth = 0
        self.feed(markup)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._depth += tag not in ("img", "meta", "br")
        if tag in ("style", "script"):
            self._skip += 1
        if tag == "body":
            self.body = attrs
        if tag == "section" and "clip" in (attrs.get("class") or "").split():
            self.clips.append({"images": [], "text": ""})
            self._clip_depth = self._depth
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th") and self.rows:
            self.rows[-1].append("")
            self._in_cell = True
        for name in ("href", "src"):
            if attrs.get(name):
                self.links.append(attrs[name])
        if tag == "img" and self._clip_depth:
            self.clips[-1]["images"].append(attrs["src"])

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self._skip -= 1
        if tag in ("td", "th"):
            self._in_cell = False
        if tag == "section" and self._depth == self._clip_depth:
            self._clip_depth = 0
        self._depth -= tag not in ("img", "meta", "br")

    def handle_data(self, data):
        if self._skip:
            return
        self.text.append(data)
        if self._clip_depth:
            self.clips[-1]["text"] += data
        if self._in_cell:
            self.rows[-1][-1] += data.strip()

    @property
    def all_text(self) -> str:
        return re.sub(r"\s+", " ", "".join(self.text))

    def row(self, first_cell: str) -> list[str]:
        return next(r for r in self.rows if r and r[0] == first_cell)


def _chromium(tmp_path: Path, *args: str) -> str:
    if CHROMIUM is None:
        pytest.skip("no Chromium installed (Debian package 'chromium')")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=3000", *args]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _rendered(tmp_path: Path, page: Path) -> _Page:
    """The DOM after the page loaded (its script has counted the images that failed to load)."""
    return _Page(_chromium(tmp_path, "--dump-dom", page.as_uri()))


def test_a_browser_shows_the_funnel_the_reasons_and_every_keyframe_beside_its_text(dataset, tmp_path):
    report = dataset / "report"
    index = _rendered(tmp_path, report / "index.html")
    assert index.body.get("data-broken-images") == "0"  # the plots
    assert index.row("found by search")[1] == "5"
    assert index.row("downloaded")[1] == "3"
    assert index.row("kept (in the samples)")[1] == "2"
    assert index.row("filtered")[1] == "1" and index.row("failed")[1] == "1"
    assert index.row("vidF")[2:4] == ["filtered at filters", f"too_short: {FILTER_REASON}"]
    assert index.row("vidX")[2:4] == ["failed at download", "DownloadError: HTTP Error 403: Forbidden"]
    assert index.row("vidN")[2] == "not finished"
    assert "videos/-vidB_2.html" in index.links and "videos/vidA.html" in index.links

    page = _rendered(tmp_path, report / "videos" / "vidA.html")
    assert page.body.get("data-broken-images") == "0"
    assert [len(c["images"]) for c in page.clips] == [2, 1, 1]  # every keyframe, in time order
    first, dropped, last = (re.sub(r"\s+", " ", c["text"]) for c in page.clips)
    assert "0:00.0 – 0:15.0" in first and "One, two, three." in first
    assert "one two three" in first  # the raw transcript, as it differs from the refined one
    assert "x = 1 y = 2" in first  # the deduplicated OCR
    assert "images dropped: face" in dropped and "four five" in dropped
    assert "six seven" in last and "Raw transcript" not in last

    dashed = _rendered(tmp_path, report / "videos" / "-vidB_2.html")
    assert dashed.body.get("data-broken-images") == "0"
    assert [len(c["images"]) for c in dashed.clips] == [1, 2]
    assert "F = ma" in dashed.clips[0]["text"]

    shot = tmp_path / "video-page.png"
    _chromium(tmp_path, "--window-size=1200,1400", "--hide-scrollbars", f"--screenshot={shot}",
              (report / "videos" / "vidA.html").as_uri())
    image = Image.open(io.BytesIO(shot.read_bytes())).convert("RGB")
    assert image.size == (1200, 1400)
    colors = image.getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 50  # text, tables and keyframes, not a blank page
    assert max(n for n, _ in colors) < 0.95 * image.size[0] * image.size[1]


def _report_pages(root: Path) -> list[Path]:
    return sorted((root / "report").rglob("*.html"))


def _assert_links_resolve(root: Path) -> int:
    checked = 0
    for page in _report_pages(root):
        for link in _Page(page.read_text()).links:
            parts = urlsplit(link)
            assert not parts.scheme and not parts.netloc, f"{page.name}: {link} leaves the folder"
            target = (page.parent / unquote(parts.path)).resolve()
            assert target.is_file(), f"{page.relative_to(root)}: {link} -> {target} does not exist"
            assert target.is_relative_to(root.resolve()), f"{page.name}: {link} leaves the dataset"
            checked += 1
    return checked


def test_every_link_and_image_of_every_page_resolves_to_a_file(dataset):
    assert [p.relative_to(dataset / "report").as_posix() for p in _report_pages(dataset)] == [
        "index.html", "videos/-vidB_2.html", "videos/vidA.html"]
    # index: card, 2 video pages, 3 plots; pages: back link + keyframes (4 and 3)
    assert _assert_links_resolve(dataset) == 6 + (1 + 4) + (1 + 3)


def test_absolute_image_paths_still_give_relative_links(tmp_path):
    ctx = _world(tmp_path)
    root = export_dataset(with_export(ctx, absolute_paths=True)).root
    assert '"/' in (root / "clips" / "part-00000.jsonl").read_text()
    write_report(root)
    moved = tmp_path / "moved"
    shutil.copytree(root, moved)
    write_report(moved)
    assert _assert_links_resolve(moved) == 6 + (1 + 4) + (1 + 3)
    assert '"/' not in (moved / "report" / "videos" / "vidA.html").read_text().split("</style>")[1]


def test_statistics_table_agrees_with_the_dataset_card(dataset):
    index = _Page((dataset / "report" / "index.html").read_text())
    card = (dataset / "README.md").read_text().split("## Statistics")[1].split("\n## ")[0]
    for subject in ("Mathematics", "Physics", "Overall"):
        line = next(r for r in card.splitlines() if r.startswith((f"| {subject} ", f"| **{subject}")))
        cells = [c.strip().strip("*") for c in line.strip("|").split("|")]
        assert index.row(subject) == cells
    assert index.row("Overall")[1:5] == ["2", "0.03", "5", "6"]


def test_the_report_is_byte_identical_wherever_the_dataset_lies(dataset, tmp_path):
    first = snapshot(dataset / "report")
    assert {"keyframes-per-clip.png", "clip-seconds.png", "tokens-per-sample.png"} <= set(first)
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy, ignore=shutil.ignore_patterns("report"))
    (copy / "report" / "videos").mkdir(parents=True)
    (copy / "report" / "videos" / "gone.html").write_text("a video no longer in the dataset")
    assert write_report(copy) == copy / "report" / "index.html"
    assert snapshot(copy / "report") == first
    assert write_report(copy) and snapshot(copy / "report") == first
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in dataset.iterdir())  # no temp left


def test_a_folder_that_is_not_a_dataset_is_named(tmp_path):
    with pytest.raises(ReportInputError, match="videos.jsonl: missing"):
        write_report(tmp_path)
    (tmp_path / "videos.jsonl").write_text(json.dumps({"video_id": "../etc", "status": "done"}) + "\n")
    with pytest.raises(ReportInputError, match=r"videos.jsonl:1: missing field"):
        write_report(tmp_path)
    row = {"video_id": "../etc", "status": "done", "reason": "", "title": "", "duration": 1.0, "verdicts": [],
           "counts": {}, "exported": True}
    (tmp_path / "videos.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(ReportInputError, match=r"videos.jsonl:1: unsafe video id"):
        write_report(tmp_path)
    (tmp_path / "videos.jsonl").write_text(json.dumps({**row, "video_id": "ok"}) + "\n")
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "part-00000.jsonl").write_text("{not json\n")
    with pytest.raises(ReportInputError, match=r"clips/part-00000.jsonl:1: not valid JSON"):
        write_report(tmp_path)
    assert not (tmp_path / "report").exists()
