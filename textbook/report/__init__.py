"""A static HTML report of an exported dataset, written into it at ``report/index.html``.

It lets a person check a dataset without any tool: the funnel (what was found, kept, dropped and
why, failures by category), a page per video (a kept one as its interleaved clips, keyframes
beside transcript and OCR; a dropped one with its verdicts and what was collected), packed samples
as the trainer reads them, time per stage and per hour of video, a near-duplicate image audit, and
the dataset card's statistics with distribution plots (every filter score against its threshold), and
a page per derived dataset that declares one (textbook.datasets: ``m4/``, ``sos/``, ``llava_video/``). It is built from the exported files only
(``videos.jsonl``, ``clips/``, ``obelics/``, ``images/``), so it works on any dataset folder, and
opens from disk: relative links, inline CSS, nothing fetched. The same dataset gives the same bytes.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from textbook.datasets import report_pages
from textbook.report.browse import duplicates_page, sample_page
from textbook.report.data import Dataset, ReportInputError, load_dataset
from textbook.report.dedup import audit
from textbook.report.pages import DUPLICATES_PAGE, index_page, sample_page_path, video_page_path
from textbook.report.plots import draw, plots
from textbook.report.video import video_page

__all__ = ["REPORT_FOLDER", "ReportInputError", "write_report"]

REPORT_FOLDER = "report"


def _existing_images(data: Dataset) -> set[str]:
    """Keyframe paths of the clip view that are files in the dataset (the others are shown as missing)."""
    paths = {p for clips in data.clips.values() for c in clips for p in c["keyframe_ssim"]}
    return {p for p in paths if (data.root / p).is_file()}


def _build(data: Dataset, out: Path) -> None:
    charts = plots(data)
    for chart in charts:
        if chart.values:
            draw(chart, out / chart.file)
    existing = _existing_images(data)
    dupes = audit(data.root, sorted(existing))
    derived = [(p, p.load(data.root)) for p in report_pages()]
    (out / "index.html").write_text(index_page(data, charts, dupes, has_card=(data.root / "README.md").is_file(),
                                               instructions="".join(p.summary(items) for p, items in derived)),
                                    encoding="utf-8")
    for p, items in derived:
        if items:
            (out / p.file).write_text(p.render(items), encoding="utf-8")
    (out / DUPLICATES_PAGE).write_text(duplicates_page(dupes), encoding="utf-8")
    (out / "videos").mkdir()
    for video in data.videos:
        if video["video_id"] in data.shown:
            (out / video_page_path(video["video_id"])).write_text(video_page(data, video, existing), encoding="utf-8")
    (out / "samples").mkdir()
    browsed = [s for s in data.samples if s.images or s.texts]
    for sample in browsed:
        (out / sample_page_path(sample.index)).write_text(sample_page(data, sample, browsed), encoding="utf-8")


def write_report(dataset_root: Path, max_videos: int = 500) -> Path:
    """Write ``<dataset_root>/report/`` from the exported files; returns the path of its index.html.

    Above ``max_videos`` videos, pages, clips, keyframes and the duplicate audit cover a fixed
    sample of that many (the funnel, statistics and costs still count every video), so a report
    of a corpus costs what a report of its sample costs.

    The folder is built beside the old one and swapped in, so a reader never sees half a report
    and pages of videos no longer in the dataset do not linger.
    """
    root = Path(dataset_root)
    data = load_dataset(root, max_videos)
    target = root / REPORT_FOLDER
    build = Path(tempfile.mkdtemp(dir=root, prefix=".report-"))
    old = root / f"{build.name}-old"
    try:
        build.chmod(0o755)
        _build(data, build)
        if target.exists():
            target.rename(old)
        build.rename(target)
    finally:
        shutil.rmtree(build, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return target / "index.html"
