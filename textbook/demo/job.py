"""The demo job without Airflow: render the demo course, serve it on 127.0.0.1, collect it through
yt-dlp from a file of URLs, export the dataset and its report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textbook.config import Settings
from textbook.context import Context

DEMO_KP = "demo.intro.basics.lectures"


@dataclass
class DemoResult:
    ctx: Context
    final: dict[str, str]  # video id -> status
    packed: dict[str, Any]  # what textbook.tasks.compact returned


def demo_settings(settings: Settings, urls_file: Path) -> Settings:
    """The demo collects from a file of URLs on the local server instead of a YouTube search."""
    return settings.replace(search={"source": "urls", "urls_file": str(urls_file)})


def prepare_course(settings: Settings) -> Path:
    """Render the course into the data root (skipped when it is already there)."""
    from textbook.demo.render import render_course
    from textbook.progress import step

    course = settings.data_path / "demo-course"
    render_course(course, on_lecture=lambda n, of, vid: step(f"render demo course {n}/{of}: {vid} "
                                                             "(slides, espeak-ng narration, ffmpeg)"))
    return course


def run_demo(settings: Settings, port: int = 8765) -> DemoResult:
    from textbook.collect import collect_and_run
    from textbook.demo.serve import DemoServer
    from textbook.export import validate_dataset
    from textbook.progress import step
    from textbook.tasks import compact, pack

    course = prepare_course(settings)
    urls_file = settings.data_path / "demo-urls.txt"
    with DemoServer(course, port=port) as server:
        urls_file.write_text("\n".join(server.urls()) + "\n")
        ctx = Context.from_settings(demo_settings(settings, urls_file))
        final = collect_and_run(ctx, [ctx.taxonomy.get(DEMO_KP)], None).final
    step("export: pack the videos' parts, then compact them into the dataset, its card and report")
    pack(DEMO_KP, ctx)
    packed = compact(ctx)
    problems = validate_dataset(Path(packed["root"]))
    if problems:
        raise RuntimeError(f"the demo dataset breaks FORMAT.md: {problems[:3]}")
    return DemoResult(ctx, final, packed)
