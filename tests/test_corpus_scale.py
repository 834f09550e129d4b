"""The simulated paper-scale corpus (bench/corpus_sim.py) at its 1K tier: it is what the exporter
reads (a real export loads every video through ``export.videos.load_videos`` and validates), and
the progress queries stay aggregate as videos grow (so 75K videos cost what 1K do)."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from corpus_sim import Scale, context, generate, write_taxonomy

from textbook import cli
from textbook import status as st
from textbook.export import export_dataset, validate_dataset
from textbook.pipeline import work_left

SUBJECT = "subject00"
# Few keyframes and words a video: the export's cost grows with them, the shape of the data does not.
LIGHT = {"keyframes": 6, "words_per_clip": 6}


@pytest.fixture(scope="module")
def taxonomy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("taxonomy")
    assert write_taxonomy(folder) == 3915
    return folder


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory, taxonomy: Path) -> dict[int, tuple[Path, dict]]:
    out = {}
    for videos in (200, 1000):
        data = tmp_path_factory.mktemp(f"corpus{videos}")
        made = generate(data, taxonomy, Scale(videos, **LIGHT))
        assert made["by_status"] == {"done": videos, "filtered": videos // 10, "failed": videos * 3 // 100,
                                     "new": videos // 50}
        out[videos] = data, made
    return out


def test_the_simulated_corpus_exports_and_validates(corpora, taxonomy):
    data, made = corpora[1000]
    ctx = context(data, taxonomy)
    summary = export_dataset(ctx)
    assert summary.videos == 1000 and summary.records == 1150  # every finished video exported, none in error
    assert summary.images == made["keyframes"]
    assert validate_dataset(summary.root) == []
    first_kp = ctx.taxonomy.knowledge_points[0].id  # video 0's: finished under today's settings
    assert work_left(first_kp, ctx) == []


def _statements(fn) -> int:
    seen = []

    def count(*_args) -> None:
        seen.append(1)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        fn()
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    return len(seen)


def _busiest_kp(data: Path, taxonomy: Path) -> str:
    links = st.video_links(context(data, taxonomy))
    ids = [kps[0] for kps in links.values()]
    return max(sorted(set(ids)), key=ids.count)


def test_progress_queries_do_not_grow_with_the_videos(corpora, taxonomy, monkeypatch):
    def queries(data: Path) -> dict[str, int]:
        ctx = context(data, taxonomy)
        kps = ctx.taxonomy.select(subject=SUBJECT)
        kp = _busiest_kp(data, taxonomy)
        monkeypatch.setenv("TEXTBOOK_DATA_ROOT", str(data))
        monkeypatch.setenv("TEXTBOOK_TAXONOMY_DIR", str(taxonomy))

        def status_cli() -> None:
            with contextlib.redirect_stdout(io.StringIO()):
                assert cli.main(["status", "--subject", SUBJECT]) == 0

        return {"status --subject": _statements(status_cli),
                "status (all subjects)": _statements(lambda: st.subject_progress(ctx)),
                "subject page": _statements(lambda: st.kp_progress(ctx, kps)),
                "work left": _statements(lambda: work_left(kp, ctx))}

    small, large = queries(corpora[200][0]), queries(corpora[1000][0])
    assert large == small
    assert max(large.values()) <= 5
