"""Question-pause-answer cycles (SoSVQA) on rendered media: the demo's red-star lecture (espeak-ng
narration with a 2.5 s silence after the question, VTT captions) through the real audio,
transcript and qa stages, two lectures that must give no cycle, the LLM step against a loopback
endpoint, and the sos/ export read back with json and HF datasets."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from export_helpers import ClipSpec, add_done_video, add_knowledge_point
from media_helpers import register_downloaded
from textbook import qa_cycles
from textbook.artifacts import read_input
from textbook.config import load_settings
from textbook.datasets.sos import QaSettings
from textbook.context import Context
from textbook.demo.render import LECTURES, Lecture, State, render_lecture
from textbook.export import compact, export_dataset, validate_dataset
from textbook.export.sos import DATASET_FIELDS, LABEL_FIELDS
from textbook.frames import frame_at
from textbook.media import MediaError
from textbook.qa_mcq import LETTERS, shuffled
from textbook.records import Segment, Video
from textbook.report import write_report
from textbook.runner import run_stage
from textbook.stages import audio, qa, transcript
from textbook.stages.base import switched_off

RED_STAR = "kids_red_star05"
NEGATIVES = (
    # the answer follows the question after the usual 0.3 s between sentences: no pause
    Lecture("qa_immediate", "Quick", "", "en", "en-us", True, (
        State("plot", "Look at the boxes. Can you find the red star? It is on the top box.", title="Boxes",
              plot="boxes"),)),
    # a pause, but nothing before it reads as a question
    Lecture("qa_no_question", "Quiet", "", "en", "en-us", True, (
        State("plot", "Look at the boxes.", title="Boxes", plot="boxes", pause_after=2.5),
        State("plot", "The red star is on the top box.", title="Found", plot="boxes_found"))),
)


class _Chat(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint answering every cycle with the same four choices."""

    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        answer = json.dumps({"simplified_answer": "on the top box", "distractor_1": "on the bottom box",
                             "distractor_2": "under the table", "distractor_3": "in the sky"})
        data = json.dumps({"choices": [{"message": {"content": f"Here you are:\n{answer}"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Chat)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    out = tmp_path_factory.mktemp("qa-course")
    lectures = [next(lec for lec in LECTURES if lec.video_id == RED_STAR), *NEGATIVES]
    return out, {lec.video_id: render_lecture(lec, out, out / f"work-{lec.video_id}") for lec in lectures}


def _process(ctx: Context, folder: Path, vid: str) -> None:
    """The video downloaded (its captions beside it), then the real audio, transcript and qa stages."""
    vtt = (folder / f"{vid}.en.vtt").read_text()
    register_downloaded(ctx, vid, folder / f"{vid}.mp4", captions=[("en", "manual", "vtt", vtt)])
    for stage in (audio.STAGE, transcript.STAGE, qa.CYCLES, qa.MCQ):
        run_stage(stage, vid, ctx)


@pytest.fixture(scope="module")
def world(course, endpoint, tmp_path_factory):
    folder, manifests = course
    settings = load_settings(environ={}, data_root=str(tmp_path_factory.mktemp("qa-data")),
                             qa_mcq={"llm": {"backend": "openai", "model": "fake-llm", "endpoint": endpoint}})
    ctx = Context.from_settings(settings)
    for vid in manifests:
        _process(ctx, folder, vid)
    return ctx, folder, manifests


def _doc(ctx: Context, vid: str) -> dict:
    return read_input(ctx, vid, "qa_cycles")


def _restore(ctx: Context, vid: str) -> None:
    """The qa stages run again under the module's settings, after a test ran them under others."""
    for stage in (qa.CYCLES, qa.MCQ):
        run_stage(stage, vid, ctx)


def test_the_red_star_lecture_gives_one_cycle_framed_by_its_rendered_pause(world):
    ctx, _, manifests = world
    [rendered] = [s["pause"] for s in manifests[RED_STAR]["states"] if "pause" in s]
    [label] = _doc(ctx, RED_STAR)["labels"]
    assert abs(label["pause_start_s"] - rendered[0]) <= 0.3 and abs(label["pause_end_s"] - rendered[1]) <= 0.3
    assert "red star" in label["question_text"].lower() and label["question_text"].endswith("?")
    assert label["answer_start_s"] >= label["pause_end_s"] > label["pause_start_s"] >= label["question_end_s"]
    assert label["answer_text"] == "Yes, the red star is on the top box."
    assert set(LABEL_FIELDS) <= set(label) and label["has_answer"] and label["detector"] == "audio"
    assert label["episode"] == label["video_id"] == RED_STAR and label["id"] == f"{RED_STAR}-q0"
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d,\d{3}", label[k]) for k in
               ("question_start_ts", "question_end_ts_id", "pause_start", "pause_end", "answer_start_ts_id"))
    assert ctx.db.run(RED_STAR, "qa_cycles").result == {"pauses": 1, "cycles": 1, "dropped": 0, "frames": 1}


def test_the_context_is_what_was_said_before_the_question_never_the_answer(world):
    ctx, _, _ = world
    [entry] = _doc(ctx, RED_STAR)["entries"]
    assert entry["transcript"].endswith("Somewhere on these boxes there is a small red star. Look at the boxes.")
    assert "Yes, the red star" not in entry["transcript"] and "Can you find" not in entry["transcript"]
    # the 60 s window, cut before the first question of the video's dataset that occurs in it
    segments = [Segment(0, 2, "What is red?"), Segment(3, 5, "Red is a colour."), Segment(6, 8, "Look here."),
                Segment(9, 11, "Where is the star?"), Segment(14, 16, "On top.")]
    assert qa_cycles.context(segments, 9, 60, ["Where is the star?"]) == "What is red? Red is a colour. Look here."
    assert qa_cycles.context(segments, 9, 60, ["What is red?", "Where is the star?"]) == ""
    assert qa_cycles.context(segments, 9, 4, ["Where is the star?"]) == "Look here."


def test_pause_frames_are_jpegs_taken_inside_the_pause_showing_the_star(world):
    ctx, _, _ = world
    doc = _doc(ctx, RED_STAR)
    [label], [entry] = doc["labels"], doc["entries"]
    assert 1 <= len(entry["frames"]) <= 4
    for frame in entry["frames"]:
        assert label["pause_start_s"] < frame["timestamp"] < label["pause_end_s"]
        with ctx.store.local_path(frame["key"]) as path:
            image = Image.open(path)
            assert image.format == "JPEG" and image.height == 448
            rgb = np.asarray(image.convert("RGB")).astype(int)
        assert ((rgb[..., 0] > 180) & (rgb[..., 1] < 80) & (rgb[..., 2] < 80)).sum() > 200  # the red star
    with pytest.raises(MediaError, match="no decodable video frames"):
        frame_at(world[1] / f"{RED_STAR}.mp4", 500.0)  # past the end
    assert qa_cycles.frame_times(10.0, 26.0, 0.25, 4) == [12.0, 16.0, 20.0, 24.0]
    assert qa_cycles.frame_times(10.0, 100.0, 0.25, 4) == [21.25, 43.75, 66.25, 88.75]


def test_the_validate_rules_drop_entries_without_answer_or_with_impossible_pauses():
    pause = qa_cycles.Pause(5.0, 7.0, "audio")
    question = Segment(2.0, 4.9, "How many boxes?")
    answered = qa_cycles.label("v", 0, pause, question, Segment(7.1, 9.0, "Three boxes."))
    unanswered = qa_cycles.label("v", 1, pause, question, None)
    backwards = {**answered, "id": "v-q2", "pause_start_s": 8.0, "pause_end_s": 6.0}
    endless = {**answered, "id": "v-q3", "pause_start_s": 0.0, "pause_end_s": 700.0}
    kept, dropped = qa_cycles.validate([answered, unanswered, backwards, endless], 600.0)
    assert [e["id"] for e in kept] == ["v-q0"]
    assert [(e["id"], e["reason"]) for e in dropped] == [
        ("v-q1", "no answer"), ("v-q2", "pause ends before it starts"), ("v-q3", "pause longer than 600 s")]


def test_no_cycle_without_a_pause_or_without_a_question(world, course):
    ctx, folder, _ = world
    immediate, no_question = _doc(ctx, "qa_immediate"), _doc(ctx, "qa_no_question")
    assert immediate["pauses"] == [] and immediate["labels"] == []
    assert len(no_question["pauses"]) == 1 and no_question["labels"] == no_question["dropped"] == []
    # SoS's fallback takes the last segment before the pause as its question
    fallback = Context(ctx.settings.replace(qa={"question_fallback": True}), ctx.store, ctx.db)
    run_stage(qa.CYCLES, "qa_no_question", fallback)
    [label] = read_input(fallback, "qa_no_question", "qa_cycles")["labels"]
    _restore(ctx, "qa_no_question")
    assert (label["question_text"], label["answer_text"]) == ("Look at the boxes.", "The red star is on the top box.")


def test_the_gap_detector_finds_the_same_cycle_from_the_captions(world):
    ctx, _, _ = world
    gaps = Context(ctx.settings.replace(qa={"detector": "gap"}), ctx.store, ctx.db)
    run_stage(qa.CYCLES, RED_STAR, gaps)
    [by_gap] = read_input(gaps, RED_STAR, "qa_cycles")["labels"]
    _restore(ctx, RED_STAR)
    [by_audio] = _doc(ctx, RED_STAR)["labels"]
    assert by_gap["detector"] == "gap"
    assert (by_gap["pause_start_s"], by_gap["pause_end_s"]) == (by_audio["pause_start_s"], by_audio["pause_end_s"])


def test_switched_off_the_stages_record_why_and_per_knowledge_point_on(world):
    ctx, _, _ = world
    off = Context(ctx.settings.replace(qa={"enabled": False}), ctx.store, ctx.db)
    cycles = run_stage(qa.CYCLES, RED_STAR, off)
    assert cycles.status == "done" and "qa.enabled is off" in cycles.summary["not_run"]
    assert ctx.db.run(RED_STAR, "qa_cycles").artifacts == []
    assert run_stage(qa.MCQ, RED_STAR, off).summary["not_run"].startswith("qa_cycles did not run: qa.enabled is off")
    add_knowledge_point(ctx, "kids-1")  # switched on for the video's own knowledge point only
    ctx.db.add_video(Video(RED_STAR, ctx.db.video(RED_STAR).url, source="local"), "kids-1")
    per_kp = Context(ctx.settings.replace(qa={"enabled": False, "knowledge_points": ["kids-1"]}), ctx.store, ctx.db)
    assert run_stage(qa.CYCLES, RED_STAR, per_kp).summary["cycles"] == 1
    assert "knowledge point is not in qa.knowledge_points" in switched_off(
        "qa", QaSettings(enabled=False, knowledge_points=("maths-1",)), RED_STAR, ctx)
    no_model = Context(ctx.settings.replace(qa_mcq={"llm": {"backend": "none"}}), ctx.store, ctx.db)
    for stage in (qa.CYCLES, qa.MCQ):
        outcome = run_stage(stage, RED_STAR, no_model)
    assert outcome.summary == {"not_run": "no LLM configured (qa_mcq.llm.backend: none): "
                                          "no multiple-choice questions"}
    _restore(ctx, RED_STAR)


def test_the_llm_gives_four_shuffled_choices_whose_letter_names_the_answer(world):
    ctx, _, _ = world
    [item] = read_input(ctx, RED_STAR, "qa_mcq")["items"]
    assert item["num_choices"] == 4 and len(set(item["choices"])) == 4
    assert item["choices"][item["correct_index"]] == item["answer"] == "on the top box"
    assert item["correct_choice"] == LETTERS[item["correct_index"]]
    assert item["original_answer"] == "Yes, the red star is on the top box."
    assert item["generation_method"].startswith("llm:fake-llm") and item["reasoning_category"] == "visual_search"
    request = next(r for r in _Chat.requests if "red star" in r["messages"][1]["content"])
    assert request["temperature"] == 0 and request["model"] == "fake-llm"
    assert "Yes, the red star is on the top box." in request["messages"][1]["content"]
    options = {"simplified_answer": "a", "distractor_1": "b", "distractor_2": "c", "distractor_3": "d"}
    assert shuffled(options, 42, "e-1") == shuffled(options, 42, "e-1")  # stable for a seed
    assert {tuple(shuffled(options, seed, "e-1")[0]) for seed in range(20)} != {("a", "b", "c", "d")}


def _exported(world, tmp_path) -> tuple[Context, Path]:
    ctx, _, _ = world
    export_ctx = Context(ctx.settings.replace(export={"root": str(tmp_path / "dataset")}), ctx.store, ctx.db)
    add_knowledge_point(export_ctx, "kids-1")
    if ctx.db.run(RED_STAR, "clips") is None:
        add_done_video(export_ctx, RED_STAR, "kids-1", [ClipSpec(0.0, 15.0, "Welcome to picture time."),
                                                        ClipSpec(15.0, 30.0, "Can you find the red star?")],
                       keep=("metadata", "download", "audio", "transcript", "qa_cycles", "qa_mcq"))
    return export_ctx, export_dataset(export_ctx).root


def test_instruction_tuning_on_the_sos_view_learns_only_the_answer(world, tmp_path):
    from textbook.state import StateDB
    from textbook.train import runs
    from textbook.train.config import load_train_config
    from textbook.train.data import read_index
    from textbook.train.families import load_family
    from textbook.train.labels import IGNORE
    from textbook.train.pretrain import train
    from textbook.train.sft import SftDataset

    _, root = _exported(world, tmp_path)
    db = StateDB(f"sqlite:///{tmp_path / 'train.db'}")
    db.create_schema()
    cfg = load_train_config(preset="tiny-cpu", overrides={
        "output_root": str(tmp_path / "run"), "data": {"view": "sos", "max_length": 1024},
        "optim": {"max_steps": 3, "per_device_batch": 1}, "checkpoint": {"every_steps": 100}})
    plan = runs.resolve(db, root.as_uri(), cfg, tmp_path, holder="test")
    assert runs.prepare(plan)["train_samples"] == 1
    run = json.loads((Path(plan.run_dir) / "run.json").read_text())
    _, family = load_family("llava", Path(run["model_dir"]), "<|end_of_video|>", with_model=False)
    [enc] = SftDataset(root, read_index(Path(plan.run_dir) / "train_index.jsonl"), family, max_length=1024, view="sos")
    [grpo] = [json.loads(line) for line in (root / "sos" / "grpo.jsonl").read_text().splitlines()]
    learned = enc.labels[enc.labels != IGNORE].tolist()
    assert learned == family.tokenizer(grpo["answer"], add_special_tokens=False)["input_ids"] + [
        family.tokenizer.eos_token_id]  # the answer the video gave, nothing of the context or question
    assert enc.images == len(grpo["images"]) == 1
    assert train(Path(plan.run_dir))["step"] == 3


def test_the_sos_export_loads_with_json_and_hf_datasets(world, tmp_path):
    datasets = pytest.importorskip("datasets")
    export_ctx, root = _exported(world, tmp_path)
    assert validate_dataset(root) == []
    sos = root / "sos"
    [label] = json.loads((sos / "labels" / f"{RED_STAR}.json").read_text())
    [entry] = [json.loads(line) for line in (sos / "dataset.jsonl").read_text().splitlines()]
    [grpo] = [json.loads(line) for line in (sos / "grpo.jsonl").read_text().splitlines()]
    [mcq] = json.loads((sos / "mcq.json").read_text())
    manifest = json.loads((sos / "manifest.json").read_text())
    assert set(DATASET_FIELDS) <= set(entry) and entry["entry_id"] == label["id"] == mcq["entry_id"]
    assert entry["episode"] == RED_STAR and entry["season"] is None and entry["knowledge_point"] == "kids-1"
    assert [f["image"] for f in entry["frames"]] == [f"sos/frames/{RED_STAR}/{RED_STAR}-q0_0.jpg"]
    assert all((root / f["image"]).is_file() for f in entry["frames"])
    content = grpo["prompt"][0]["content"]
    assert [c["type"] for c in content] == ["image", "text"] and grpo["answer"] == entry["answer"]
    assert content[-1]["text"].endswith(f"Question: {entry['question']}\nAnswer:")
    assert mcq["transcript"] == entry["transcript"] and mcq["correct_choice"] == LETTERS[mcq["correct_index"]]
    assert (manifest["cycles"], manifest["mcq"], manifest["frames"], manifest["videos"]) == (1, 1, 1, 1)
    cache = str(tmp_path / "hf")
    for name in ("dataset.jsonl", "grpo.jsonl", "mcq.json"):
        loaded = datasets.load_dataset("json", data_files=str(sos / name), split="train", cache_dir=cache)
        assert loaded.num_rows == 1 and loaded[0]["entry_id"] == entry["entry_id"]
    assert compact(export_ctx).changed == ()  # compacted from the parts: the same bytes
    card = (root / "README.md").read_text()
    assert "`sos/`: 1 question-pause-answer cycle(s)" in card and "1 multiple-choice question(s)" in card
    index = write_report(root)  # the report's cycles page shows the cycle and its frames
    cycles = (index.parent / "cycles.html").read_text()
    assert "Can you find the red star?" in cycles and f"../sos/frames/{RED_STAR}/{RED_STAR}-q0_0.jpg" in cycles
    assert "<b>on the top box</b>" in cycles and 'href="cycles.html"' in index.read_text()
    # what validate checks: the letter names the answer, the frames are files
    (sos / "mcq.json").write_text(json.dumps([{**mcq, "correct_choice": "ABCD"[(mcq["correct_index"] + 1) % 4]}]))
    (root / entry["frames"][0]["image"]).unlink()
    problems = validate_dataset(root)
    assert any("sos/mcq.json record 0: correct_index, correct_choice and answer disagree" in p for p in problems)
    assert any(f"frame file {entry['frames'][0]['image']} does not exist" in p for p in problems)


def test_without_cycles_the_card_says_why_sos_is_absent(tmp_path):
    from export_helpers import make_context

    ctx = make_context(tmp_path)
    add_knowledge_point(ctx, "math-1")
    add_done_video(ctx, "vidA", "math-1", [ClipSpec(0.0, 12.0, "force and mass", ocr=("F = ma",))])
    root = export_dataset(ctx).root
    assert not (root / "sos").exists() and validate_dataset(root) == []
    assert "- `sos/`: not written (no exported video ran the qa_cycles stage)." in (root / "README.md").read_text()


def test_settings_name_a_bad_detector():
    from textbook.config import ConfigError

    with pytest.raises(ConfigError, match=r"qa\.detector: 'whisper' is not one of audio, gap"):
        load_settings(environ={}, qa={"detector": "whisper"})


def test_question_patterns_and_silences_bounded_by_sound():
    asked = ["Can you find the red star?", "How many boxes are there", "Where's the star", "Which one is red",
             "What is on top", "Do you see it"]
    told = ["Look at the boxes.", "That is what we learned.", "Let us do this.", "The red star is on top."]
    assert all(map(qa_cycles.is_question, asked)) and not any(map(qa_cycles.is_question, told))
    loud, quiet = np.full(50, 1000.0), np.full(100, 1.0)  # 20 ms frames: 1 s loud, 2 s at -60 dB
    rms = np.concatenate([quiet, loud, quiet, loud, quiet[:40], loud, quiet])
    pauses = qa_cycles.audio_pauses(rms, 0.02, -40.0, 1.0)  # the leading and trailing silences are no pauses
    assert [(p.start, p.end) for p in pauses] == [(3.0, 5.0)]  # the 0.8 s one is too short
