"""OCR of real keyframes with tesseract: text read, line structure kept, repeats removed."""

from __future__ import annotations

import pytesseract
import pytest
from slide_helpers import face, prepare, slide, write_video

from textbook.artifacts import output_key, read_input
from textbook.config import load_settings
from textbook.context import Context
from textbook.records import OcrResult
from textbook.runner import StageFailed, run_stage
from textbook.stages import keyframes, ocr
from textbook.slide_ocr import strip_bullet
from textbook.stages.ocr import OcrUnavailable, Tesseract, new_lines

SIZE = (640, 360)
VID = "ocr_vid"


@pytest.fixture(scope="module")
def build_up(tmp_path_factory):
    """A slide whose bullets appear one by one, then the speaker (no text), over two clips."""
    states = [
        (slide("Photosynthesis", ["Light energy becomes sugar"], SIZE), 2.0),
        (slide("Photosynthesis", ["Light energy becomes sugar", "Chlorophyll absorbs red light"], SIZE), 2.0),
        (face(SIZE), 2.0),
    ]
    return write_video(states, tmp_path_factory.mktemp("ocr") / "build_up.mp4", fps=5)


def _context(tmp_path, **ocr_knobs) -> Context:
    return Context.from_settings(load_settings(environ={}, data_root=str(tmp_path / "data"), ocr=ocr_knobs))


def test_ocr_reads_each_keyframe_and_keeps_only_new_lines(tmp_path, build_up):
    ctx = _context(tmp_path)
    prepare(ctx, VID, build_up, [(0.0, 3.0, "plants"), (3.0, 6.0, "sugar")])
    run_stage(keyframes.STAGE, VID, ctx)
    outcome = run_stage(ocr.STAGE, VID, ctx)

    results = [OcrResult.from_dict(r) for r in read_input(ctx, VID, "ocr")["results"]]
    assert [r.key for r in results] == [output_key(ctx, VID, "keyframes", name) for name in (
        f"{VID}@0.0_3.0#1.jpg", f"{VID}@0.0_3.0#2.jpg", f"{VID}@3.0_6.0#1.jpg")]
    first, second, speaker = results
    assert first.text.splitlines()[0] == "Photosynthesis"
    assert "Light energy becomes sugar" in first.text
    assert first.deduplicated == first.text  # nothing came before it
    lines = second.text.splitlines()
    assert lines[0] == "Photosynthesis" and "Chlorophyll absorbs red light" in lines[-1]
    assert "Photosynthesis" not in second.deduplicated and "sugar" not in second.deduplicated
    assert "Chlorophyll absorbs red light" in second.deduplicated
    assert len(second.deduplicated.splitlines()) == 1
    assert speaker.text == "" and speaker.deduplicated == ""
    assert outcome.summary["keyframes"] == 3


def test_new_lines_match_fuzzily_against_the_previous_keyframe_only():
    previous = ["Photosynthesis", "Light energy becomes sugar"]
    assert new_lines(["Photosynthesls", "light  energy becomes sugar.", "Chlorophyll"], previous, 0.9) \
        == ["Chlorophyll"]
    assert new_lines(["Light energy becomes sugar"], [], 0.9) == ["Light energy becomes sugar"]
    assert new_lines(["Light energy becomes salt"], previous, 0.95) == ["Light energy becomes salt"]


def test_low_confidence_words_are_dropped(tmp_path):
    image = tmp_path / "slide.png"
    slide("Photosynthesis", ["Light energy becomes sugar"], SIZE).save(image)
    engine = Tesseract("eng")
    assert engine.lines(image, 0.0)[0] == "Photosynthesis"
    assert engine.lines(image, 101.0) == []


def test_missing_tesseract_or_language_is_a_clear_error(monkeypatch):
    with pytest.raises(OcrUnavailable, match="klingon"):
        Tesseract("eng+klingon")
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    with pytest.raises(OcrUnavailable, match="tesseract is not installed"):
        Tesseract("eng")


def test_ocr_off_keeps_every_keyframe_with_empty_text_and_says_so(tmp_path, build_up):
    """The paper's w/o-OCR ablation: ``ocr.backend: none`` reads nothing, yet every keyframe keeps
    its record, so the export's positions are the same as with OCR."""
    ctx = _context(tmp_path, backend="none")
    prepare(ctx, VID, build_up, [(0.0, 3.0, "plants"), (3.0, 6.0, "sugar")])
    run_stage(keyframes.STAGE, VID, ctx)
    outcome = run_stage(ocr.STAGE, VID, ctx)
    results = [OcrResult.from_dict(r) for r in read_input(ctx, VID, "ocr")["results"]]
    assert len(results) == 3 and all(r.text == "" and r.deduplicated == "" for r in results)
    assert "ocr.backend: none" in outcome.summary["skipped"]


def test_ocr_stage_reports_a_missing_language_through_the_runner(tmp_path, build_up):
    ctx = _context(tmp_path, language="xyz")
    prepare(ctx, VID, build_up, [(0.0, 6.0, "plants")])
    run_stage(keyframes.STAGE, VID, ctx)
    with pytest.raises(StageFailed, match="xyz"):
        run_stage(ocr.STAGE, VID, ctx)
    assert ctx.db.run(VID, "ocr").status == "failed"


def test_white_title_on_a_coloured_box_is_read_by_the_inverted_pass(tmp_path):
    image = tmp_path / "boxed.png"
    slide("Thermodynamics", ["Heat flows from hot to cold"], SIZE, title_box=(30, 90, 160)).save(image)
    engine = Tesseract("eng")
    lines = engine.read(image, 60.0)
    assert [line.text for line in lines][:2] == ["Thermodynamics", "Heat flows from hot to cold"]
    assert all(0 < line.confidence <= 100 for line in lines)
    import pytesseract as tess

    plain = [t for t in tess.image_to_string(str(image)).splitlines() if t.strip()]
    assert "Thermodynamics" not in plain  # what one plain pass gives: the title is lost


def test_bullet_glyphs_are_not_read_as_letters(tmp_path):
    image = tmp_path / "bullets.png"
    slide("Cells", ["Membranes keep the inside in", "Ribosomes build proteins"], SIZE).save(image)
    assert Tesseract("eng").lines(image, 60.0) == ["Cells", "Membranes keep the inside in", "Ribosomes build proteins"]
    assert strip_bullet("e Flux through a surface") == "Flux through a surface"
    assert strip_bullet("e = mc2") == "e = mc2" and strip_bullet("« Energy") == strip_bullet("+ Energy") == "Energy"


def test_a_recurring_footer_goes_to_boilerplate_not_to_the_text(tmp_path):
    titles = ["Osmosis", "Diffusion", "Active transport", "Endocytosis", "Exocytosis"]
    bullets = ["Water crosses the membrane", "Down its gradient", "Needs no energy", "Carried by proteins"]
    states = [(slide(t, bullets[:1 + i % 4], SIZE, footer=f"Cell Biology 101   slide {i + 1}"), 2.0)
              for i, t in enumerate(titles)]
    video = write_video(states, tmp_path / "footer.mp4", fps=5)
    ctx = _context(tmp_path)
    prepare(ctx, "footer", video, [(0.0, 10.0, "membranes")])
    run_stage(keyframes.STAGE, "footer", ctx)
    outcome = run_stage(ocr.STAGE, "footer", ctx)
    doc = read_input(ctx, "footer", "ocr")
    results = [OcrResult.from_dict(r) for r in doc["results"]]
    assert [r.text.splitlines()[0] for r in results] == titles
    assert not any("Cell Biology" in r.text for r in results), [(r.text, r.boilerplate) for r in results]
    assert all(any("Cell Biology 101" in line for line in r.boilerplate) for r in results)
    assert doc["ocr_boilerplate"] and outcome.summary["boilerplate_lines"] == len(doc["ocr_boilerplate"])
    assert all(len(r.confidence) == len(r.text.splitlines()) for r in results)


def test_tesseract_runs_with_its_thread_cap_and_the_process_keeps_its_own(tmp_path, monkeypatch):
    import os

    from textbook.stages.ocr import omp_threads

    monkeypatch.setenv("OMP_THREAD_LIMIT", "8")
    seen = []
    real = pytesseract.image_to_data
    monkeypatch.setattr(pytesseract, "image_to_data",
                        lambda *a, **k: seen.append(os.environ.get("OMP_THREAD_LIMIT")) or real(*a, **k))
    image = tmp_path / "slide.png"
    slide("Photosynthesis", ["Light energy becomes sugar"], SIZE).save(image)
    assert Tesseract("eng", threads=1).lines(image, 0.0)[0] == "Photosynthesis"
    assert seen and set(seen) == {"1"}  # every tesseract call capped
    assert os.environ["OMP_THREAD_LIMIT"] == "8"  # and restored for whatever else this process runs
    with omp_threads(3):
        assert os.environ["OMP_THREAD_LIMIT"] == "3"
    monkeypatch.delenv("OMP_THREAD_LIMIT")
    with omp_threads(1):
        pass
    assert "OMP_THREAD_LIMIT" not in os.environ
