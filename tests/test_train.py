"""Training inputs: text assembly, label masks, End-of-Video, re-packing, the shuffle ablation,
the launcher's process group; on a tiny random LLaVA built here from configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from downstream_helpers import EOV, write_corpus

from textbook.train.data import build_index, corpus_fingerprint
from textbook.train.families import load_family
from textbook.train.labels import IGNORE
from textbook.train.launch import Launch, config_path, launch_argv, shipped_configs
from textbook.train.config import LaunchSpec, load_train_config
from textbook.train.samples import Document, document, repack, shuffle_images
from textbook.train.tiny import build_tiny_llava


def _meta(vid: str, start: float | None) -> dict:
    return {"video_id": vid, "clip_start": start, "clip_end": None if start is None else start + 10,
            "kind": "text", "knowledge_point": "k"}


def _sample(slots: list[tuple]) -> dict:
    """slots: (image, text, video, clip_start); text == EOV marks the video's end."""
    return {"images": [s[0] for s in slots], "texts": [s[1] for s in slots],
            "text_ocr_list": [None if s[1] is None else (s[1] if s[1] == EOV else s[1] + " OCR") for s in slots],
            "metadata": [_meta(s[2], None if s[1] == EOV else s[3]) for s in slots]}


CRAFTED = _sample([
    (None, "intro before any image", "a", 0.0),
    ("img/a1.jpg", None, "a", 0.0), (None, "first clip text", "a", 0.0),
    ("img/a2.jpg", None, "a", 10.0), (None, "second clip", "a", 10.0),
    (None, EOV, "a", None),
    (None, "next video before its image", "b", 0.0),
    ("img/b1.jpg", None, "b", 0.0), (None, "last words", "b", 0.0),
])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_llava(tmp_path_factory.mktemp("tiny"), ["intro first clip text second next video last words"] * 4,
                            [EOV])


@pytest.fixture(scope="module")
def family(tiny):
    return load_family("llava", tiny, EOV, with_model=False)[1]


def _red(_path: str):
    from PIL import Image

    return Image.new("RGB", (32, 32), (200, 0, 0))


def test_document_joins_texts_with_spaces_and_none_around_placeholders():
    doc = document(CRAFTED, text_field="texts", placeholder="<image>", max_images=12)
    assert doc.text == ("intro before any image<image>first clip text<image>second clip " + EOV
                        + " next video before its image<image>last words")
    assert doc.images == ("img/a1.jpg", "img/a2.jpg", "img/b1.jpg")
    assert "OCR" in document(CRAFTED, text_field="text_ocr_list", placeholder="<image>", max_images=12).text
    capped = document(CRAFTED, text_field="texts", placeholder="<image>", max_images=2)
    assert capped.images == ("img/a1.jpg", "img/a2.jpg") and capped.text.count("<image>") == 2
    assert capped.text.endswith("<image>second clip " + EOV + " next video before its image last words")


def test_labels_follow_the_official_rules_plus_end_of_video(family):
    doc = document(CRAFTED, text_field="texts", placeholder="<image>", max_images=12)
    enc = family.encode(doc, _red, max_length=10_000)
    ids, labels = enc.input_ids, enc.labels
    tok = family.tokenizer
    image = ids == family.image_id
    first_image = int(torch.nonzero(image)[0])
    eov_at = torch.nonzero(ids == family.eov_id).flatten().tolist()
    assert len(eov_at) == doc.text.count(EOV) == 1  # every marker reaches input_ids, as one token
    assert (labels[:first_image] == IGNORE).all()  # no loss before the first image
    assert (labels[image] == IGNORE).all() and int(image.sum()) == 3 * family.image_tokens
    assert labels[eov_at[0]] == family.eov_id  # the marker keeps its loss
    next_image = int(torch.nonzero(image[eov_at[0]:])[0]) + eov_at[0]
    assert (labels[eov_at[0] + 1:next_image] == IGNORE).all()
    assert tok.decode(ids[eov_at[0] + 1:next_image]).strip() == "next video before its image"
    kept = tok.decode(labels[labels != IGNORE])
    assert "first clip text" in kept and "last words" in kept and "intro" not in kept
    assert labels[-1] == tok.eos_token_id  # the sequence ends with EOS, in the loss
    unmasked = load_family("llava", family_dir(family), EOV, mask_after_eov=False, with_model=False)[1]
    assert "next video" in tok.decode([t for t in unmasked.encode(doc, _red, 10_000).labels.tolist() if t != IGNORE])


def family_dir(family) -> Path:
    return Path(family.tokenizer.name_or_path)


def test_collate_pads_without_loss_and_keeps_images_in_order(family):
    a = family.encode(Document("<image>short", ("x",)), _red, 100)
    b = family.encode(Document("<image>a much longer text here<image>two", ("x", "y")), _red, 100)
    batch = family.collate([a, b])
    assert batch["pixel_values"].shape[0] == 3
    pad = batch["attention_mask"] == 0
    assert pad.any() and (batch["labels"][pad] == IGNORE).all()


def test_truncation_never_cuts_an_image(family):
    doc = Document("<image>one<image>two<image>three", ("a", "b", "c"))
    full = family.encode(doc, _red, 10_000)
    image_at = torch.nonzero(full.input_ids == family.image_id).flatten().tolist()
    inside_second = image_at[family.image_tokens] + 3  # a cut inside the second image block
    enc = family.encode(doc, _red, inside_second)
    assert enc.images == 1 and enc.pixel_values.shape[0] == 1
    assert int((enc.input_ids == family.image_id).sum()) == family.image_tokens
    assert len(enc.input_ids) < inside_second <= len(full.input_ids)


def test_repack_splits_only_between_clips_and_keeps_end_of_video_with_its_clip():
    cost = lambda image, text: 5 if image else 3  # noqa: E731
    pieces = repack(CRAFTED, cost, max_length=12, max_images=12, end_of_video=EOV)
    assert len(pieces) > 1
    for p in pieces:
        clips = {(m["video_id"], m["clip_start"]) for m in p["metadata"] if m["clip_start"] is not None}
        for key in clips:  # a clip is never split over two pieces
            whole = [i for i, m in enumerate(CRAFTED["metadata"]) if (m["video_id"], m["clip_start"]) == key]
            assert sum(1 for m in p["metadata"] if (m["video_id"], m["clip_start"]) == key) == len(whole)
        assert p["image_num"] >= 1
    eov_piece = next(p for p in pieces if EOV in p["texts"])
    assert eov_piece["texts"][eov_piece["texts"].index(EOV) - 1] == "second clip"
    by_images = repack(CRAFTED, cost, max_length=10_000, max_images=1, end_of_video=EOV)
    assert [p["image_num"] for p in by_images] == [1, 1, 1]
    assert repack(CRAFTED, cost, max_length=10_000, max_images=12, end_of_video=EOV)[0]["texts"] == CRAFTED["texts"]


def test_shuffle_ablation_permutes_images_of_exactly_the_chosen_share():
    samples = [{"images": [f"s{n}/{k}" if k % 2 == 0 else None for k in range(8)], "texts": list("abcdefgh")}
               for n in range(10)]
    same, chosen = shuffle_images(samples, 0.0, seed=1)
    assert same == samples and chosen == []
    out, chosen = shuffle_images(samples, 0.5, seed=1)
    assert len(chosen) == 5 and (out, chosen) == shuffle_images(samples, 0.5, seed=1)
    for i, (a, b) in enumerate(zip(samples, out)):
        assert sorted(filter(None, a["images"])) == sorted(filter(None, b["images"]))
        assert [x is None for x in a["images"]] == [x is None for x in b["images"]] and a["texts"] == b["texts"]
        if i not in chosen:
            assert a == b
    assert any(samples[i]["images"] != out[i]["images"] for i in chosen)
    assert len(shuffle_images(samples, 1.0, seed=1)[1]) == 10


def test_index_covers_the_corpus_and_its_fingerprint_sees_an_image_change(tmp_path, family):
    root = write_corpus(tmp_path / "c", samples=4)
    entries, report = build_index(root, family.slot_cost(), max_length=4096, max_images=12, end_of_video=EOV)
    assert report.source_samples == 4 == len(entries) and report.missing_images == []
    assert report.images == 16 and all(e["image_num"] == 4 for e in entries)
    shuffled, rep = build_index(root, family.slot_cost(), max_length=4096, max_images=12, end_of_video=EOV,
                                shuffle_ratio=0.5, seed=3)
    assert len(rep.shuffled) == 2 and [e["slots"] for e in shuffled] == [e["slots"] for e in entries]
    assert all(sorted(a["images"]) == sorted(b["images"]) for a, b in zip(entries, shuffled))
    before = corpus_fingerprint(root)
    assert corpus_fingerprint(root) == before
    first = entries[0]["images"][0]
    (root / first).write_bytes((root / first).read_bytes() + b"\0")
    assert corpus_fingerprint(root) != before


def test_every_shipped_config_parses_and_flags_beat_the_file(tmp_path):
    import yaml

    shipped = {"single_gpu", "multi_gpu", "multi_node", "fsdp", "deepspeed_zero2", "deepspeed_zero3", "cpu_2proc"}
    assert shipped <= set(shipped_configs())
    for name in shipped_configs():
        assert yaml.safe_load(config_path(name).read_text())["distributed_type"]
    argv = launch_argv(LaunchSpec(accelerate_config="deepspeed_zero3", num_processes=4, mixed_precision="bf16"),
                       tmp_path)
    assert argv[1:4] == ["launch", "--config_file", str(tmp_path / "accelerate.yaml")]
    assert argv[argv.index("--num_processes") + 1] == "4" and int(argv[argv.index("--main_process_port") + 1]) != 29500
    ds = yaml.safe_load((tmp_path / "accelerate.yaml").read_text())["deepspeed_config"]["deepspeed_config_file"]
    assert Path(ds).is_absolute() and json.loads(Path(ds).read_text())["zero_optimization"]["stage"] == 3
    assert argv[-4:] == ["-m", "textbook.train.pretrain", "--run-dir", str(tmp_path)]
    assert load_train_config(preset="tiny-cpu").launch.accelerate_config == "cpu_2proc"


def test_terminate_stops_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    code = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
            f" open({str(pidfile)!r}, 'w').write(str(p.pid)); print('ready', flush=True); time.sleep(60)")
    lines: list[str] = []
    launch = Launch([sys.executable, "-c", code], lines.append, grace=5)
    for _ in range(100):
        if pidfile.is_file() and pidfile.read_text():
            break
        time.sleep(0.1)
    grandchild = int(pidfile.read_text())
    launch.terminate()
    assert launch.wait() != 0 and lines == ["ready"]
    for _ in range(50):
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the grandchild outlived the terminated launch")
    assert subprocess.run(["ps", "-o", "stat=", "-p", str(grandchild)], capture_output=True, text=True).stdout.strip() in ("", "Z")


@pytest.fixture(scope="module")
def idefics(tmp_path_factory):
    from textbook.train.tiny import build_tiny_idefics3

    folder = build_tiny_idefics3(tmp_path_factory.mktemp("idefics"), ["intro first clip text second next video"] * 4,
                                 [EOV])
    return load_family("idefics3", folder, EOV)


def test_idefics3_masks_all_its_image_tokens_keeps_end_of_video_and_trains(idefics):
    model, family = idefics
    tok = family.tokenizer
    fake, glob = tok.convert_tokens_to_ids("<fake_token_around_image>"), tok.convert_tokens_to_ids("<global-img>")
    assert family.image_ids == {family.image_id, fake, glob} and family.image_tokens == 4 + 3
    doc = document(CRAFTED, text_field="texts", placeholder="<image>", max_images=12)
    enc = family.encode(doc, _red, 10_000)
    assert enc.images == 3 and enc.pixel_values.shape[0] == 3
    assert int((enc.input_ids == fake).sum()) == 6 and int((enc.labels == fake).sum()) == 0  # fake never in loss
    assert int((enc.input_ids == family.eov_id).sum()) == 1 and family.eov_id in enc.labels.tolist()
    assert "next video" not in tok.decode([t for t in enc.labels.tolist() if t != IGNORE])
    short = family.encode(Document("<image>a<image>b", ("x", "y")), _red, 100)
    batch = family.collate([enc, short])
    assert batch["pixel_values"].shape[:2] == (2, 3) and batch["pixel_attention_mask"].shape[:2] == (2, 3)
    family.vision_tower(model).requires_grad_(False)
    loss = model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is None for p in family.vision_tower(model).parameters())
    assert model.model.connector.modality_projection.proj.weight.grad is not None
    cut = family.encode(doc, _red, int(torch.nonzero(enc.input_ids == glob)[1]) + 2)  # inside the second image
    assert cut.images == 1 and int((cut.input_ids == glob).sum()) == 1


def test_the_clip_view_reads_as_the_obelics_samples_the_exporter_wrote(tmp_path, family):
    from export_helpers import ClipSpec, add_done_video, add_knowledge_point, clip_samples, make_context, obelics_samples

    from textbook.export import export_dataset
    from textbook.train.samples import from_clip_view

    ctx = make_context(tmp_path)
    add_knowledge_point(ctx, "k1")
    for n in range(3):
        add_done_video(ctx, f"vid{n}", "k1", [
            ClipSpec(0.0, 12.0, f"the triangle has three sides {n}", keyframes=2, ocr=("Triangles\nAngles", "Angles")),
            ClipSpec(12.0, 25.0, "a square has four sides", keyframes=1, ocr=("Squares",), visual_kept=n != 1)])
    root = export_dataset(ctx).root
    obelics, clips = obelics_samples(root), clip_samples(root)
    assert len(obelics) == len(clips) > 0
    for ob, cl in zip(obelics, clips):
        converted = from_clip_view(cl, EOV)
        for field in ("images", "texts", "text_ocr_list"):
            assert converted[field] == ob[field], field
    by_view = [build_index(root, family.slot_cost(), max_length=4096, max_images=12, end_of_video=EOV, view=v)[0]
               for v in ("obelics", "clips")]
    assert [e["images"] for e in by_view[0]] == [e["images"] for e in by_view[1]]
