"""Instruction tuning on the M4-Instruct view: loss on the assistant's turns only, on a tiny
random LLaVA built here, trained in this process (one rank)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from export_helpers import ClipSpec, add_done_video, add_knowledge_point, make_context
from textbook.export import export_dataset
from textbook.state import StateDB
from textbook.train import runs
from textbook.train.config import load_train_config
from textbook.train.data import read_index
from textbook.train.families import load_family
from textbook.train.labels import IGNORE
from textbook.train.pretrain import train
from textbook.train.sft import SftDataset


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sft")
    ctx = make_context(tmp, image_tokens=10, token_budget=200)
    add_knowledge_point(ctx, "geo-1", "Mathematics")
    for vid in ("tri", "sq"):
        add_done_video(ctx, vid, "geo-1", [
            ClipSpec(15.0 * i, 15.0 * (i + 1), f"{vid} part {i} explains the angles", keyframes=2,
                     ocr=(f"{vid} {i}", f"{vid} {i}\nnew line {i}")) for i in range(3)])
    root = export_dataset(ctx).root
    db = StateDB(f"sqlite:///{tmp / 'train.db'}")
    db.create_schema()
    cfg = load_train_config(preset="tiny-cpu", overrides={
        "output_root": str(tmp / "run"), "data": {"view": "m4", "max_length": 1024},
        "optim": {"max_steps": 12, "lr": 3e-3, "per_device_batch": 2}, "checkpoint": {"every_steps": 100}})
    plan = runs.resolve(db, root.as_uri(), cfg, tmp, holder="test")
    prep = runs.prepare(plan)
    return root, plan, prep


def test_the_index_holds_every_instruction_record(prepared):
    root, plan, prep = prepared
    records = (root / "m4" / "m4_textbook_annotations.jsonl").read_text().splitlines()
    assert prep["train_samples"] == prep["source_samples"] == len(records) > 0
    assert prep["images"] == sum(len(json.loads(r)["image"]) for r in records)


def test_only_the_assistants_turns_carry_loss(prepared):
    root, plan, _ = prepared
    run = json.loads((Path(plan.run_dir) / "run.json").read_text())
    _, family = load_family("llava", Path(run["model_dir"]), "<|end_of_video|>", with_model=False)
    dataset = SftDataset(root, read_index(Path(plan.run_dir) / "train_index.jsonl"), family, max_length=1024)
    for i in range(len(dataset)):
        record, enc = dataset.record(i), dataset[i]
        answer = record["conversations"][1]["value"]
        learned = enc.labels[enc.labels != IGNORE]
        expected = family.tokenizer(answer, add_special_tokens=False)["input_ids"] + [family.tokenizer.eos_token_id]
        assert learned.tolist() == expected  # the answer and its end, nothing of the question
        assert enc.images == len(record["image"]) and enc.pixel_values.shape[0] == enc.images
        assert int(torch.isin(enc.input_ids, torch.tensor(sorted(family.image_ids))).sum()) == \
            enc.images * family.image_tokens


def test_sft_trains_and_the_loss_falls(prepared):
    _, plan, _ = prepared
    cursor = train(Path(plan.run_dir))
    losses = [json.loads(line)["loss"] for line in (Path(plan.run_dir) / "metrics.jsonl").read_text().splitlines()]
    assert cursor["step"] == 12 and len(losses) == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    assert (Path(plan.run_dir) / "final" / "training_summary.json").is_file()
