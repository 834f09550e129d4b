"""InSI-SIM (textbook/insi_sim.py): pair values on images whose SSIM and CLIP cosine are known, the
pair and per-L averaging by hand, the seeded choice of samples, a tiny CLIP from a local folder, the
SSIM-only label, the official script's arithmetic, and the measurement in the exported dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from export_helpers import ClipSpec, add_done_video, add_knowledge_point, make_context, obelics_samples, read_jsonl
from textbook.cli import main
from textbook.export import export_dataset, validate_dataset
from textbook.clip_images import ClipImages
from textbook.insi_sim import (Chooser, Measurement, Method, Pair, SampleResult, measure_corpus,
                               measure_images, sample_score)
from textbook.train.tiny import build_tiny_clip

C1 = (0.01 * 255) ** 2  # SSIM's luminance constant for 8-bit images


def _solid(value: int, size: tuple[int, int] = (40, 30)) -> Image.Image:
    return Image.new("RGB", size, (value, value, value))


def _noise(seed: int, size: tuple[int, int] = (40, 30)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


def test_identical_images_give_ssim_one_and_cosine_one(tiny_clip):
    image = _noise(1)
    pairs = measure_images([image, image.copy(), image.copy()], Method(clip_model=str(tiny_clip)),
                           ClipImages(str(tiny_clip)))
    assert [(p.i, p.j) for p in pairs] == [(0, 1), (0, 2), (1, 2)]
    assert all(p.ssim == 1.0 and p.clip_cosine == 1.0 for p in pairs)
    assert sample_score(pairs, "paper") == 1.0
    # the official script: (3 + (3 + 1) / 2) / 2 / 3, its CLIP sum normalised once more
    assert sample_score(pairs, "official_script") == pytest.approx(5 / 6)


def test_ssim_of_flat_images_is_their_luminance_term():
    pairs = measure_images([_solid(100), _solid(200), _solid(100, (80, 60))], Method(ssim_width=0), None)
    expected = (2 * 100 * 200 + C1) / (100 ** 2 + 200 ** 2 + C1)  # no contrast in either: that term is 1
    assert [p.ssim for p in pairs] == [pytest.approx(expected, abs=1e-6), 1.0, pytest.approx(expected, abs=1e-6)]
    assert all(p.clip_cosine is None for p in pairs)  # the third, twice as large, is resized as the script does


def test_pair_averaging_by_hand():
    pairs = [Pair(0, 1, 0.2, 1.0), Pair(0, 2, 0.4, 0.0), Pair(1, 2, 0.6, -1.0)]  # normalised CLIP: 1, 0.5, 0
    assert sample_score(pairs, "paper") == pytest.approx(((0.2 + 1) / 2 + (0.4 + 0.5) / 2 + (0.6 + 0) / 2) / 3)
    assert sample_score(pairs, "official_script") == pytest.approx((1.2 + (1.5 + 1) / 2) / 2 / 3)
    ssim_only = [Pair(p.i, p.j, p.ssim, None) for p in pairs]
    assert sample_score(ssim_only, "paper") == pytest.approx(0.4)


def _result(index: int, images: int, score: float) -> SampleResult:
    return SampleResult(index, tuple(f"{index}-{k}.jpg" for k in range(images)), (), score)


def test_per_l_grouping_and_the_table_by_hand():
    m = Measurement(Method(), seed=42, requested=10, eligible=7,
                    results=[_result(0, 4, 0.5), _result(1, 4, 0.7), _result(2, 5, 0.9), _result(3, 2, 0.1)])
    assert m.mean(4) == (pytest.approx(0.6), 2) and m.mean(5) == (0.9, 1) and m.mean(6) == (None, 0)
    assert m.mean() == (pytest.approx(0.55), 4)
    ours, textbook, obelics, mmc4 = m.table()
    assert ours == ["This corpus", "SSIM only (no CLIP model)", "4", "0.600 (2)", "0.900 (1)", "-", "-", "-",
                    "0.550 (4)"]
    assert (textbook[-1], obelics[-1], mmc4[-1]) == ("0.686", "0.345", "0.319")
    assert "4 of the 7 sample(s)" in "\n".join(m.notes())


def test_the_choice_of_samples_is_seeded_bounded_and_order_free():
    samples = [(i, [f"images/v{i}/a.jpg", f"images/v{i}/b.jpg"]) for i in range(50)]
    forward, backward = Chooser(5, seed=1), Chooser(5, seed=1)
    for index, images in samples:
        forward.offer(index, images)
    for index, images in reversed(samples):
        backward.offer(index, images)
    assert forward.chosen() == backward.chosen() and len(forward.chosen()) == 5
    other = Chooser(5, seed=2)
    for index, images in samples:
        other.offer(index, images)
    assert other.chosen() != forward.chosen()
    lonely = Chooser(5, seed=1)
    lonely.offer(0, ["images/v/a.jpg"])  # one image has no pair
    assert lonely.chosen() == [] and lonely.eligible == 0


def test_tiny_clip_loads_from_a_local_folder(tiny_clip, tmp_path):
    assert {"config.json", "preprocessor_config.json"} <= {p.name for p in tiny_clip.iterdir()}
    rows = ClipImages(str(tiny_clip)).embed([_noise(1), _noise(2, (64, 20))])
    assert rows.shape[0] == 2 and np.allclose(np.linalg.norm(rows, axis=1), 1.0)
    with pytest.raises(FileNotFoundError, match="config.json"):
        ClipImages(str(tmp_path / "nowhere"))


def test_labels_and_the_official_arithmetic_needs_clip(tiny_clip):
    assert Method().label == "SSIM only (no CLIP model)"
    assert Method(clip_model=str(tiny_clip)).label == "CLIP + SSIM (the paper's formula)"
    assert "normalised twice" in Method(clip_model=str(tiny_clip), arithmetic="official_script").label
    with pytest.raises(ValueError, match="needs a CLIP model"):
        Method(arithmetic="official_script")


def _world(tmp_path, **export):
    ctx = make_context(tmp_path, image_tokens=10, token_budget=100, **export)
    add_knowledge_point(ctx, "math-1", "Mathematics")
    for n in range(4):
        add_done_video(ctx, f"v{n}", "math-1", [ClipSpec(15.0 * i, 15.0 * (i + 1), f"video {n} part {i}", keyframes=2)
                                                for i in range(2 + n)])
    return ctx


def test_the_export_measures_a_seeded_sample_and_shows_table_1(tmp_path, capsys):
    summary = export_dataset(_world(tmp_path, insi_sim_samples=3))
    root = summary.root
    assert validate_dataset(root) == []
    lines = read_jsonl(root / "insi_sim.jsonl")
    samples = obelics_samples(root)
    assert len(lines) == 3 and [line["sample"] for line in lines] == sorted(line["sample"] for line in lines)
    for line in lines:  # the index is the sample's place in the OBELICS view
        assert line["images"] == [p for p in samples[line["sample"]]["images"] if p is not None]
        assert all(p["clip_cosine"] is None for p in line["pairs"])
        assert line["score"] == pytest.approx(np.mean([p["ssim"] for p in line["pairs"]]), abs=1e-6)
    card = (root / "README.md").read_text()
    assert "## Coherence (InSI-SIM, the paper's Table 1)" in card
    assert "| This corpus | SSIM only (no CLIP model) |" in card
    assert "| MMC4 (paper) |" in card and "0.686" in card

    # the command measures the same samples the same way
    assert main(["insi-sim", str(root), "--samples", "3", "--pairs", str(tmp_path / "pairs.jsonl")]) == 0
    assert (tmp_path / "pairs.jsonl").read_bytes() == (root / "insi_sim.jsonl").read_bytes()
    assert "| This corpus | SSIM only (no CLIP model) | 3 |" in capsys.readouterr().out

    broken = dict(lines[0], pairs=lines[0]["pairs"][1:])  # a pair lost
    (root / "insi_sim.jsonl").write_text("\n".join(json.dumps(line) for line in [broken, *lines[1:]]) + "\n")
    assert any(p.startswith("insi_sim.jsonl line 1:") for p in validate_dataset(root))


def test_the_official_arithmetic_differs_as_the_script_does(tmp_path, tiny_clip):
    ctx = _world(tmp_path, insi_sim_samples=2, insi_sim_clip_model=str(tiny_clip),
                 insi_sim_arithmetic="official_script")
    root = export_dataset(ctx).root
    for line in read_jsonl(root / "insi_sim.jsonl"):
        pairs = [Pair(p["i"], p["j"], p["ssim"], p["clip_cosine"]) for p in line["pairs"]]
        assert all(p.clip_cosine is not None for p in pairs)
        assert line["score"] == pytest.approx(sample_score(pairs, "official_script"), abs=1e-6)
        assert line["score"] != pytest.approx(sample_score(pairs, "paper"), abs=1e-3)
    assert "the official script's arithmetic" in (root / "README.md").read_text()
    paper = measure_corpus(root, Method(clip_model=str(tiny_clip)), 2, ctx.settings.export.seed)
    assert [r.index for r in paper.results] == [line["sample"] for line in read_jsonl(root / "insi_sim.jsonl")]


def test_turned_off_nothing_is_measured_and_the_card_says_so(tmp_path):
    root = export_dataset(_world(tmp_path, insi_sim_samples=0)).root
    assert not (root / "insi_sim.jsonl").exists()
    card = (root / "README.md").read_text()
    assert "InSI-SIM is not measured (export.insi_sim_samples is 0)" in card and "## Coherence" not in card


def test_the_command_reads_a_json_array_with_its_images_elsewhere(tmp_path, capsys):
    images = tmp_path / "pictures"
    images.mkdir()
    for name, value in (("a.png", 100), ("b.png", 200)):
        _solid(value).save(images / name)
    corpus = tmp_path / "corpus.json"
    corpus.write_text(json.dumps([{"images": ["a.png", None, "b.png"], "texts": [None, "t", None]},
                                  {"images": ["a.png", None], "texts": [None, "t"]}]))
    assert main(["insi-sim", str(corpus), "--images-root", str(images), "--ssim-width", "0"]) == 0
    out = capsys.readouterr().out
    assert "on 1 of the 1 sample(s)" in out and "| - | - | - | - | - | 0.800 (1) |" in out
    assert main(["insi-sim", str(corpus), "--arithmetic", "official_script"]) == 1
    assert "needs a CLIP model" in capsys.readouterr().err
