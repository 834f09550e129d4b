"""The M4-Instruct view: multi-image instructions from the corpus, in the release's record shape."""

from __future__ import annotations

import json
import re

import pytest

from export_helpers import ClipSpec, add_done_video, add_knowledge_point, make_context
from textbook.export import export_dataset, validate_dataset
from textbook.export.m4instruct import ARRAY, IMAGE, LINES, choose_placement, placed

STAMP = re.compile(r"@(\d+\.\d)_(\d+\.\d)#(\d+)\.jpg$")


def _when(path: str) -> tuple[float, int]:
    start, _, k = STAMP.search(path).groups()
    return float(start), int(k)


@pytest.fixture
def dataset(tmp_path):
    ctx = make_context(tmp_path, image_tokens=10, token_budget=200)
    add_knowledge_point(ctx, "geo-1", "Mathematics")
    add_done_video(ctx, "tri", "geo-1", [
        ClipSpec(0.0, 15.0, "a triangle has three sides", keyframes=2,
                 ocr=("Triangles", "Triangles\nA + B + C = 180")),
        ClipSpec(15.0, 30.0, "the angles add up", keyframes=2, ocr=("Angles", "Angles\nright angle = 90")),
        ClipSpec(30.0, 45.0, "now a square", keyframes=1, ocr=("Squares",)),
        ClipSpec(45.0, 60.0, "here the speaker talks", keyframes=1, visual_kept=False, ocr=("FACE",)),
        ClipSpec(60.0, 75.0, "the end of the lesson", keyframes=1, ocr=("Summary",)),
    ])
    summary = export_dataset(ctx)
    assert validate_dataset(summary.root) == []
    return summary.root


def _records(root):
    return json.loads((root / ARRAY).read_text())


def test_every_record_has_one_placeholder_per_image_in_order_and_files_that_exist(dataset):
    records = _records(dataset)
    assert {r["metadata"]["dataset"] for r in records} == {
        "textbook_spot_the_difference", "textbook_temporal_order", "textbook_slide_narration",
        "textbook_multi_frame_narration"}
    for r in records:
        human = r["conversations"][0]["value"]
        assert [t["from"] for t in r["conversations"]] == ["human", "gpt"]
        assert human.count(IMAGE) == len(r["image"]) >= 2
        assert all((dataset / p).is_file() for p in r["image"])
        assert "FACE" not in json.dumps(r) and "speaker talks" not in human  # a visually dropped clip gives none
        if r["metadata"]["placement"] == "in_front":
            front = f"{IMAGE}\n" * len(r["image"])
            assert human.startswith(front) and IMAGE not in human[len(front):]
            assert [int(k) for k in re.findall(r"Image (\d+)", human)] == list(range(1, len(r["image"]) + 1))
    assert [json.loads(line) for line in (dataset / LINES).read_text().splitlines()] == records


def test_answers_come_from_the_corpus(dataset):
    records = _records(dataset)
    spots = [r for r in records if r["metadata"]["dataset"] == "textbook_spot_the_difference"]
    assert sorted(r["conversations"][1]["value"] for r in spots) == [
        "The second slide adds: Angles; right angle = 90", "The second slide adds: Triangles; A + B + C = 180"]
    for r in spots:
        assert [_when(p) for p in r["image"]] == sorted(_when(p) for p in r["image"])  # consecutive, in order
    order = next(r for r in records if r["metadata"]["dataset"] == "textbook_temporal_order")
    first = min(range(len(order["image"])), key=lambda k: _when(order["image"][k]))
    assert order["conversations"][1]["value"] == order["choice_list"][first] == "ABCD"[first]
    for r in (r for r in records if r["metadata"]["dataset"] == "textbook_slide_narration"):
        gold = r["image"]["ABCD".index(r["conversations"][1]["value"])]
        assert _when(gold)[0] == r["metadata"]["clip_start"]  # the slide of the clip whose words are quoted


def test_mixed_placement_is_seeded_and_near_its_ratio():
    draws = [choose_placement("mixed", 0.5, 42, f"v{i}-task-0") for i in range(1000)]
    assert 0.45 <= draws.count("in_front") / 1000 <= 0.55
    assert draws == [choose_placement("mixed", 0.5, 42, f"v{i}-task-0") for i in range(1000)]
    assert draws != [choose_placement("mixed", 0.5, 7, f"v{i}-task-0") for i in range(1000)]
    assert placed(f"A. {IMAGE}\nB. {IMAGE}\nWhich?", 2, "in_front") == f"{IMAGE}\n{IMAGE}\nA. Image 1\nB. Image 2\nWhich?"
    assert placed(f"A. {IMAGE}", 1, "interleaved") == f"A. {IMAGE}"


def test_the_records_load_in_hf_datasets(dataset):
    from datasets import load_dataset

    rows = load_dataset("json", data_files=str(dataset / LINES), split="train")
    assert len(rows) == len(_records(dataset)) and rows[0]["image"] == _records(dataset)[0]["image"]


def test_the_validator_names_a_record_whose_placeholders_do_not_match(dataset):
    records = _records(dataset)
    records[0]["conversations"][0]["value"] = records[0]["conversations"][0]["value"].replace(IMAGE, "", 1)
    (dataset / ARRAY).write_text(json.dumps(records))
    problems = validate_dataset(dataset)
    assert any(f"{ARRAY} record 0: 1 {IMAGE} placeholder(s) for 2 images" in p for p in problems)
    assert any("differs from" in p for p in problems)


def test_the_report_shows_the_records_per_task(dataset):
    from textbook.report import write_report
    from textbook.report.pages import url

    index = write_report(dataset)
    page = (index.parent / "instructions.html").read_text()
    records = _records(dataset)
    assert f"{len(records)} M4-Instruct record(s)" in index.read_text() and 'href="instructions.html"' in index.read_text()
    for task in ("spot_the_difference", "temporal_order", "slide_narration", "multi_frame_narration"):
        assert f"<h2>{task}</h2>" in page
    shown = records[0]
    assert f'id="{shown["id"]}"' in page and all(f'src="{url("../" + p)}"' in page for p in shown["image"])
