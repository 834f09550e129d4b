"""The export loads, unedited, in the release's two trainers' readers and in the usual streaming tools.

The two readers are written from the release's behaviour: the LLaVA one reads a folder of OBELICS
shards through ``length.json`` / ``shard_id_range.json`` and joins every image path onto an image
folder of its own; the Idefics2 one reads the clip view as one JSON array and trains on
``keyframe_ssim`` images, ``refined_asr`` (or ``asr``) and ``ocr_qwen2_vl_72b``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from export_helpers import ClipSpec, add_done_video, add_knowledge_point, make_context, obelics_samples
from PIL import Image

from textbook.export import export_dataset, validate_dataset

END_OF_VIDEO_VID = "End of a Video"


def _world(tmp_path, **export):
    """Two videos, one sample each; in curriculum order the physics one (no dropped visuals) comes first,
    so with one sample per shard the first shard's ``keyframe_ssim_dropped`` lists are all empty."""
    ctx = make_context(tmp_path, **{"image_tokens": 10, "token_budget": 40, "curriculum": True, **export})
    add_knowledge_point(ctx, "math-1", "Mathematics", level=2)
    add_knowledge_point(ctx, "phys-1", "Physics", level=1)
    add_done_video(ctx, "vidA", "math-1", [
        ClipSpec(0.0, 15.0, "one two three", refined="One, two, three.", keyframes=2, ocr=("x = 1", "y = 2")),
        ClipSpec(15.0, 30.0, "four five", keyframes=1, visual_kept=False, ocr=("FACE CAPTION",)),
    ])
    add_done_video(ctx, "-vidB_2", "phys-1", [
        ClipSpec(0.0, 12.5, "force equals mass times acceleration", keyframes=1, ocr=("F = ma",),
                 boilerplate=("Physics 101 slide 1",)),
    ])
    return ctx


def llava_read(shard_folder: Path, image_folder: str, index: int) -> tuple[list[Image.Image], list[str]]:
    """The LLaVA reader's logic for global sample ``index``."""
    lengths = json.loads((shard_folder / "length.json").read_text())
    ranges = json.loads((shard_folder / "shard_id_range.json").read_text())
    name = next(n for n, (start, end) in ranges.items() if start <= index < end)
    assert lengths[name] == ranges[name][1] - ranges[name][0]
    lines = (shard_folder / name).read_text().splitlines()
    sample = json.loads(lines[index - ranges[name][0]])
    images, texts = sample["images"], sample["texts"]
    assert len(images) == len(texts)
    assert all((i is None) != (t is None) for i, t in zip(images, texts))
    assert any(i is not None for i in images)
    opened = [Image.open(os.path.join(image_folder, p)) for p in images if p is not None]
    return opened, [t for t in texts if t is not None]


def idefics2_read(meta_json: Path, end_of_video: str) -> list[tuple[list[str], str]]:
    """The Idefics2 reader's logic: per sample, the image paths it trains on and its text."""
    out = []
    for sample in json.loads(meta_json.read_text()):  # one array, not lines
        images, text = [], []
        for clip in sample["conversations"]:
            if clip["vid"] == END_OF_VIDEO_VID:
                text.append(end_of_video)
                continue
            assert isinstance(clip["vid"], str)
            for path in clip["keyframe_ssim"]:
                Image.open(path).verify()
                images.append(path)
            text.append(clip.get("refined_asr") or clip["asr"])
            if clip["ocr_qwen2_vl_72b"]:
                assert isinstance(clip["ocr_qwen2_vl_72b"], str)
                text.append(clip["ocr_qwen2_vl_72b"])
        out.append((images, " ".join(text)))
    return out


def test_release_readers_load_an_absolute_path_export_unedited(tmp_path):
    ctx = _world(tmp_path, absolute_paths=True, single_json=True)
    summary = export_dataset(ctx)
    root = summary.root
    assert validate_dataset(root) == []
    samples = obelics_samples(root)
    shipped = {p for s in samples for p in s["images"] if p is not None}

    elsewhere = str(tmp_path / "llava-image-folder")  # the reader's own folder: only absolute paths survive it
    for index in range(len(samples)):
        images, texts = llava_read(root / "obelics", elsewhere, index)
        assert len(images) == samples[index]["image_num"] and texts

    read = idefics2_read(root / "multimodal_textbook_meta_data.json", ctx.settings.export.end_of_video)
    assert {p for images, _ in read for p in images} == shipped  # never an image the visual filter dropped
    assert all(text.rstrip().endswith("<|end_of_video|>") for _, text in read)
    assert any("x = 1" in text and "One, two, three." in text for _, text in read)
    assert not any("FACE CAPTION" in text for _, text in read)


def test_webdataset_reads_the_wds_view(tmp_path):
    import webdataset

    summary = export_dataset(_world(tmp_path, wds_shard_size=1))
    root = summary.root
    index = json.loads((root / "wds/index.json").read_text())
    assert [e["shard"] for e in index] == ["shard-000000.tar", "shard-000001.tar"]
    for entry in index:
        assert entry["sha256"] == hashlib.sha256((root / "wds" / entry["shard"]).read_bytes()).hexdigest()
    urls = [str(root / "wds" / e["shard"]) for e in index]
    streamed = list(webdataset.WebDataset(urls, shardshuffle=False))
    expected = obelics_samples(root)
    assert [s["__key__"] for s in streamed] == ["000000000", "000000001"]
    for got, want in zip(streamed, expected):
        sample = json.loads(got["json"])
        members = [m for m in sample["images"] if m is not None]
        assert sample["texts"] == want["texts"] and len(members) == want["image_num"]
        for member, path in zip(members, [p for p in want["images"] if p is not None]):
            assert got[member.split(".", 1)[1]] == (root / path).read_bytes()
    assert sum(e["samples"] for e in index) == len(expected)


@pytest.mark.parametrize("size", [0, 1, 511, 512, 513, 10_000])
def test_wds_shards_are_the_bytes_tarfile_writes(tmp_path, size):
    """The shard writer builds its own ustar headers (for speed): they must equal tarfile's, end
    blocks and record padding included, and read back with tarfile."""
    import io
    import tarfile

    from textbook.export.wds import _Tar

    members = [("000000007.json", b'{"texts": []}'), ("000000007.0.jpg", os.urandom(size)), ("x" * 100, b"")]
    expected = io.BytesIO()
    with tarfile.open(fileobj=expected, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    ours = io.BytesIO()
    writer = _Tar(ours)
    for name, data in members:
        writer.add(name, data)
    writer.close()
    assert ours.getvalue() == expected.getvalue()
    assert writer.digest.hexdigest() == hashlib.sha256(expected.getvalue()).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(ours.getvalue())) as tar:
        assert [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()] == members
    with pytest.raises(ValueError, match="over 100 bytes"):
        writer.add("y" * 101, b"")


def test_hf_datasets_loads_a_multi_shard_export_with_mixed_empty_lists(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root = export_dataset(_world(tmp_path, shard_size=1)).root
    first, second = (json.loads(p.read_text()) for p in sorted((root / "clips").glob("part-*.jsonl")))
    assert all(c.get("keyframe_ssim_dropped") == [] for c in first["conversations"] if c["vid"] != END_OF_VIDEO_VID)
    assert any(c.get("keyframe_ssim_dropped") for c in second["conversations"])

    clips = datasets.load_dataset(str(root), "clips", split="train", cache_dir=str(tmp_path / "hf"))
    assert clips.num_rows == 2
    conversation = clips.features["conversations"]
    assert str(conversation.feature["keyframe_ssim_dropped"]) == str(datasets.List(datasets.Value("string")))
    dropped = [p for row in clips for c in row["conversations"] for p in c["keyframe_ssim_dropped"] or []]
    assert dropped == ["images/vidA/vidA@15.0_30.0#1.jpg"]

    boilerplate = [b for row in clips for c in row["conversations"] for b in c["ocr_boilerplate"] or [] if b]
    assert boilerplate == ["Physics 101 slide 1"]  # kept beside the OCR, never in the text
    assert not any("Physics 101" in t for row in obelics_samples(root) for t in row["text_ocr_list"] if t)

    obelics = datasets.load_dataset(str(root), "obelics", split="train", cache_dir=str(tmp_path / "hf"))
    assert obelics.num_rows == 2 and obelics.features["image_num"].dtype == "int64"
