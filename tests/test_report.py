"""The HTML report of an exported dataset, checked the way a person sees it: in a real headless Chromium."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import numpy as np
import pytest
from PIL import Image

from export_helpers import (ClipSpec, add_done_video, add_failed_video, add_filtered_video, add_knowledge_point,
                            make_context, obelics_samples, read_jsonl, register, snapshot, with_export)
from state_helpers import finish_stage
from textbook.export import export_dataset
from textbook.records import Verdict
from textbook.report import ReportInputError, write_report
from textbook.report.data import load_dataset, shown_videos
from textbook.report.dedup import MAX_DISTANCE, audit, dhash
from textbook.report.plots import Plot, draw, plots

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
        self.ids: set[str] = set()
        self.wrapped: list[tuple[str | None, str]] = []  # (href of the enclosing <a>, src) per image
        self.sequence: list[list[str]] = []  # a sample page's positions: [kind, image src or text]
        self._href: str | None = None
        self._position = False
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
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a":
            self._href = attrs.get("href")
        if tag == "img":
            self.wrapped.append((self._href, attrs["src"]))
            if self._position:
                self.sequence[-1][1] = attrs["src"]
        if tag == "p" and attrs.get("data-kind"):
            self.sequence.append([attrs["data-kind"], ""])
            self._position = True
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
        if tag == "a":
            self._href = None
        if tag == "p":
            self._position = False
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
        if self._position and self.sequence[-1][0] != "image":
            self.sequence[-1][1] += data
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
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page.resolve()
            assert target.is_file(), f"{page.relative_to(root)}: {link} -> {target} does not exist"
            assert target.is_relative_to(root.resolve()), f"{page.name}: {link} leaves the dataset"
            if parts.fragment:
                assert parts.fragment in _Page(target.read_text()).ids, f"{page.name}: {link}: no such anchor"
            checked += 1
    return checked


# index: card, 9 section anchors, 5 video pages, 1 sample, duplicates page, instructions page, 7 plots (image +
# link each); instructions page: back + each record's images (image + link each, counted from m4/);
# duplicates page: back + 21 pairs (the fixture's keyframes are flat colours: every pair is a near
# duplicate) of two linked images and two video links; sample page: back, 2 videos, 6 positions with
# a linked image; kept video pages: back, sample, keyframes linked (4 and 3); dropped ones: back.
LINKS = (1 + 9 + 5 + 1 + 1 + 1 + 7 * 2) + (1 + 21 * 6) + (3 + 6 * 2) + (2 + 4 * 2) + (2 + 3 * 2) + 3 * 1


def _instruction_links(root: Path) -> int:
    records = [json.loads(line) for line in (root / "m4" / "m4_textbook_annotations.jsonl").read_text().splitlines()]
    assert records
    return 1 + 2 * sum(len(r["image"]) for r in records)


def test_every_link_and_image_of_every_page_resolves_to_a_file(dataset):
    assert [p.relative_to(dataset / "report").as_posix() for p in _report_pages(dataset)] == [
        "duplicates.html", "index.html", "instructions.html", "samples/00000.html", "videos/-vidB_2.html",
        "videos/vidA.html", "videos/vidF.html", "videos/vidN.html", "videos/vidX.html"]
    assert _assert_links_resolve(dataset) == LINKS + _instruction_links(dataset)


def test_absolute_image_paths_still_give_relative_links(tmp_path):
    ctx = _world(tmp_path)
    root = export_dataset(with_export(ctx, absolute_paths=True)).root
    assert '"/' in (root / "clips" / "part-00000.jsonl").read_text()
    write_report(root)
    moved = tmp_path / "moved"
    shutil.copytree(root, moved)
    write_report(moved)
    assert _assert_links_resolve(moved) == LINKS + _instruction_links(moved)
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
    assert {"keyframes-per-clip.png", "clip-seconds.png", "tokens-per-sample.png", "filter-too_short.png"} <= set(first)
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


def _page(dataset: Path, name: str) -> _Page:
    return _Page((dataset / "report" / name).read_text())


def test_numbers_carry_their_units_and_no_page_says_none(dataset):
    index = _page(dataset, "index.html")
    header = next(r for r in index.rows if r and r[0] == "Title")
    vid_a = index.row("Lesson vidA")
    cell = dict(zip(header, vid_a))
    record = {r["video_id"]: r for r in read_jsonl(dataset / "videos.jsonl")}["vidA"]["counts"]
    assert cell["Keyframes in samples (of SSIM-kept)"] == "3 of 4"  # one clip's image dropped by the visual filter
    assert cell["Image tokens (images × per image)"] == "3 × 10 = 30"  # image_tokens=10 in this world
    assert cell["Transcript tokens"] == str(record["transcript_tokens"])
    assert cell["Sample tokens (transcript + images)"] == str(record["tokens"])
    assert record["tokens"] == record["transcript_tokens"] + 30  # OCR travels in text_ocr_list, outside the budget
    assert index.row("vidF")[4] == f"too_short: {FILTER_REASON} [4 s (min 10 s)]"  # score, unit and threshold
    page = _page(dataset, "videos/vidA.html")
    assert page.row("silent")[1:5] == ["passed", "mean loudness", "-20 dBFS", "min -50 dBFS"]
    assert page.row("too_short")[3:5] == ["60 s", "min 10 s"]
    assert page.row("repetitive")[3:5] == ["0.01", "max 0.5"]
    for path in _report_pages(dataset):
        assert "None" not in _Page(path.read_text()).all_text, path.name


def test_time_per_stage_sums_stage_seconds_per_video_hour(dataset):
    times = {r["video_id"]: r["stage_seconds"] for r in read_jsonl(dataset / ".textbook" / "stage_seconds.jsonl")}
    records = [{**r, "stage_seconds": times[r["video_id"]]} for r in read_jsonl(dataset / "videos.jsonl")]
    assert all("stage_seconds" not in r for r in read_jsonl(dataset / "videos.jsonl"))  # timings are not data
    ran = [r for r in records if "download" in r["stage_seconds"]]
    assert sorted(r["video_id"] for r in ran) == ["-vidB_2", "vidA", "vidF", "vidX"]  # vidN never ran
    index = _page(dataset, "index.html")
    row = index.row("download")
    seconds = sum(r["stage_seconds"]["download"] for r in ran)
    hours = sum(r["duration"] for r in ran) / 3600
    assert row[1:3] == ["4", f"{seconds:.1f}"]
    assert row[4] == f"{hours * 60:.1f}" and row[5] == f"{seconds / hours:.0f}"
    assert index.row("visual_filter")[1] == "2"  # only the kept videos got that far
    page = _page(dataset, "videos/vidA.html")
    stages = next(r for r in page.rows if r and r[0] == "" and "visual_filter" in r)
    assert stages[1:] == ["metadata", "download", "audio", "transcript", "filters", "refine", "clips", "keyframes", "ocr",
                          "visual_filter", "qa_cycles", "qa_mcq", "slide_vqa", "video_captions", "video_qa",
                          "all stages"]


def test_every_filter_score_is_plotted_against_its_threshold(dataset, tmp_path):
    charts = {c.file: c for c in plots(load_dataset(dataset))}
    assert (charts["filter-too_short.png"].values, charts["filter-too_short.png"].threshold) == ([60.0, 60.0, 4.0], 10.0)
    assert charts["filter-silent.png"].threshold == -50.0 and charts["filter-not_english.png"].threshold == 0.5
    assert charts["filter-repetitive.png"].threshold == 0.5
    bare = Plot("bare.png", "t", "x", charts["filter-too_short.png"].values, integer=False)
    draw(bare, tmp_path / "bare.png")
    assert (tmp_path / "bare.png").read_bytes() != (dataset / "report" / "filter-too_short.png").read_bytes()
    assert "Filter too_short: duration (n = 3; dashed line: threshold 10)" in _page(dataset, "index.html").all_text


def test_a_dropped_video_has_a_page_with_why_and_what_was_collected(dataset):
    index = _page(dataset, "index.html")
    assert {"videos/vidF.html", "videos/vidX.html", "videos/vidN.html"} <= set(index.links)
    filtered = _page(dataset, "videos/vidF.html")
    assert f"Not in the samples: filtered at filters: too_short: {FILTER_REASON}" in filtered.all_text
    assert filtered.row("too_short")[1:5] == ["failed", "duration", "4 s", "min 10 s"]
    assert filtered.row("silent")[1] == "passed"
    times = next(r for r in filtered.rows if r and r[0] == "")
    assert times[1:] == ["metadata", "download", "audio", "transcript", "filters", "all stages"]  # what ran before it was dropped
    assert not filtered.clips  # nothing of it ships
    failed = _page(dataset, "videos/vidX.html")
    assert "failed at download: DownloadError: HTTP Error 403: Forbidden (category: error)" in failed.all_text
    assert "No verdicts: the video did not reach the filters." in failed.all_text


def test_failures_are_grouped_by_category(tmp_path):
    ctx = make_context(tmp_path)
    add_knowledge_point(ctx, "math-1")
    add_done_video(ctx, "ok", "math-1", [ClipSpec(0.0, 12.0, "one two three")])
    for vid, category in (("a", "rate_limited"), ("b", "rate_limited"), ("c", "sign_in_required")):
        register(ctx, vid, "math-1")
        finish_stage(ctx, vid, "download", status="failed", error="HTTP Error 429", result={"category": category})
        ctx.db.set_video_status(vid, "failed", "download: HTTP Error 429")
    root = export_dataset(ctx).root
    write_report(root)
    index = _page(root, "index.html")
    assert index.row("rate_limited")[1] == "2" and "sleep_interval" in index.row("rate_limited")[2]
    assert index.row("sign_in_required")[1] == "1" and "cookies_file" in index.row("sign_in_required")[2]


def test_the_sample_browser_shows_a_sample_as_the_trainer_reads_it(dataset):
    sample = obelics_samples(dataset)[0]
    page = _page(dataset, "samples/00000.html")
    expected = []
    for n, (image, text) in enumerate(zip(sample["images"], sample["texts"])):
        if image is not None:
            expected.append(["image", "../../" + quote(image, safe="/")])
        elif text == "<|end_of_video|>":
            expected.append(["eov", f"[{n}] <|end_of_video|> End of Video"])
        else:
            expected.append(["text", f"[{n}] text {text}"])
    assert page.sequence == expected  # every position, in the shard's order, nothing added or left out
    assert "x = 1 y = 2" in page.all_text and "+ OCR, in text_ocr_list only" in page.all_text
    assert "FACE CAPTION" not in page.all_text  # dropped with its clip's images
    videos = {m["video_id"] for m in sample["metadata"] if m}
    assert [k for k, _ in page.sequence].count("eov") == len(videos) == 2  # one marker ends each video
    assert f"{sample['image_num']} image(s), {sample['text_num']} transcript tokens, {sample['token_num']} tokens " \
           f"in all ({sample['image_num']} image(s) × 10 tokens + text" in page.all_text


def test_thumbnails_open_the_full_image(dataset):
    for name in ("videos/vidA.html", "samples/00000.html", "duplicates.html"):
        wrapped = _page(dataset, name).wrapped
        assert wrapped and all(href == src for href, src in wrapped), name


def _gradient(path: Path, flip: bool = False, size=(320, 240), quality=90) -> Path:
    x = np.linspace(0, 255, size[0])[None, :] * np.ones((size[1], 1))
    y = np.linspace(0, 255, size[1])[:, None] * np.ones((1, size[0]))
    pixels = (x * 0.7 + np.sin(y / 9) * 60 + 60).clip(0, 255).astype(np.uint8)
    if flip:
        pixels = pixels[:, ::-1]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert("RGB").save(path, quality=quality)
    return path


def test_near_duplicates_within_and_across_videos(tmp_path):
    _gradient(tmp_path / "images/v1/a.jpg")
    _gradient(tmp_path / "images/v1/b.jpg", quality=30)  # the same picture re-encoded
    _gradient(tmp_path / "images/v2/c.jpg", size=(640, 480))  # the same picture in another video, resized
    _gradient(tmp_path / "images/v2/d.jpg", flip=True)  # a different picture
    assert dhash(tmp_path / "images/v1/a.jpg") != dhash(tmp_path / "images/v2/d.jpg")
    found = audit(tmp_path, ["images/v1/a.jpg", "images/v1/b.jpg", "images/v2/c.jpg", "images/v2/d.jpg"])
    assert found.images == 4
    pairs = {(p.a, p.b): p for p in found.pairs}
    assert set(pairs) == {("images/v1/a.jpg", "images/v1/b.jpg"), ("images/v1/a.jpg", "images/v2/c.jpg"),
                          ("images/v1/b.jpg", "images/v2/c.jpg")}
    assert all(p.distance <= MAX_DISTANCE for p in pairs.values())
    assert not pairs[("images/v1/a.jpg", "images/v1/b.jpg")].across and pairs[("images/v1/a.jpg", "images/v2/c.jpg")].across
    assert found.share(across=False) == 0.5 and found.share(across=True) == 0.75


def test_the_duplicate_audit_is_on_the_report(dataset):
    # the fixture's keyframes are flat colours, so all 7 hash alike: 6 + 3 pairs within, 12 across
    text = _page(dataset, "index.html").all_text
    assert "7 image(s) hashed: 9 near-duplicate pair(s) within a video (100% of the images have one), " \
           "12 across videos (100%)" in text
    dupes = _page(dataset, "duplicates.html")
    assert "Within one video: 9 pair(s), 100% of the images" in dupes.all_text
    assert "Across videos: 12 pair(s), 100% of the images" in dupes.all_text


def test_a_large_corpus_gets_pages_for_a_fixed_sample_and_counts_for_all(tmp_path):
    ctx = _world(tmp_path)
    for n in range(4):
        add_done_video(ctx, f"more{n}", "math-1", [ClipSpec(0.0, 12.0, f"extra lesson {n}", keyframes=1)])
    root = export_dataset(ctx).root
    write_report(root, max_videos=3)
    pages = sorted(p.name for p in (root / "report" / "videos").iterdir())
    assert len(pages) == 3 and pages == sorted(f"{v}.html" for v in shown_videos(
        [json.loads(line)["video_id"] for line in (root / "videos.jsonl").read_text().splitlines()], 3))
    page = _page(root, "index.html")
    assert page.row("found by search") == ["found by search", "9"]  # the funnel counts every video
    index = page.all_text
    assert "listed: above export.report_max_videos videos the report shows a fixed sample of 3" in index
    _assert_links_resolve(root)  # no link to a page that was not written


def test_banded_near_duplicate_search_finds_what_comparing_every_pair_finds():
    import random

    from textbook.report.dedup import _near

    rng = random.Random(7)
    hashes = [rng.getrandbits(64) for _ in range(300)]
    for h in hashes[:60]:  # near copies, 1 to 5 bits flipped
        flipped = h
        for bit in rng.sample(range(64), rng.randint(1, 5)):
            flipped ^= 1 << bit
        hashes.append(flipped)
    hashes = sorted(set(hashes))
    brute = {(i, j) for i in range(len(hashes)) for j in range(i + 1, len(hashes))
             if (hashes[i] ^ hashes[j]).bit_count() <= MAX_DISTANCE}
    assert {(i, j) for i, j, _ in _near(hashes)} == brute and len(brute) >= 40
