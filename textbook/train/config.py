"""Training settings: a preset, then a YAML file, then overrides (the DAG's params, the CLI's flags).

Kept apart from the pipeline's ``Settings`` (and its ``TEXTBOOK_*`` variables) so that a training
host needs no pipeline configuration and the pipeline's stage fingerprints never see training knobs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from textbook.config import ConfigError, _build, _merge


@dataclass(frozen=True)
class ModelSpec:
    family: str = "llava"  # llava (also LLaVA-NeXT-Interleave checkpoints) | idefics3 (SmolVLM)
    path: str = ""  # a local HF-format checkpoint folder (model + processor); nothing is downloaded
    tiny: bool = False  # build a tiny random model of the family (CI, smoke runs): never a stand-in for a real one
    freeze_vision: bool = True  # the official recipe: vision tower frozen, projector and LLM trained


@dataclass(frozen=True)
class DataSpec:
    # obelics | clips (the clip view, read as the same interleaved samples) | m4 or sos (instruction
    # tuning on the M4-Instruct or the SoSVQA view: loss on the assistant's turns only)
    view: str = "obelics"
    text_field: str = "text_ocr_list"  # the paper's best row; "texts" = released LLaVA script / w/o OCR
    max_length: int = 32768
    max_images: int = 12
    end_of_video: str = "<|end_of_video|>"  # export.end_of_video: a special token that keeps its loss
    mask_after_eov: bool = True  # a new video's text before its first image carries no loss
    shuffle_images_ratio: float = 0.0  # Fig. 3 ablation: share of samples whose images are permuted
    seed: int = 42


@dataclass(frozen=True)
class OptimSpec:
    lr: float = 2e-5
    schedule: str = "constant_with_warmup"  # or cosine, linear, constant
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    epochs: int = 1
    max_steps: int = 0  # 0: as many as the epochs give
    per_device_batch: int = 2
    grad_accum: int = 1
    grad_checkpointing: bool = False
    seed: int = 42


@dataclass(frozen=True)
class CheckpointSpec:
    every_steps: int = 500
    keep_last: int = 3


@dataclass(frozen=True)
class LaunchSpec:
    accelerate_config: str = "single_gpu"  # a shipped name (textbook/train/configs/accelerate) or a path
    num_processes: int = 0  # 0: the config file's value
    mixed_precision: str = ""  # empty: the config file's value (no | bf16 | fp16)
    machine_rank: int = 0
    main_process_port: int = 0  # 0: a free port per launch (parallel runs never collide)
    kill_grace_seconds: float = 30.0


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "none"
    output_root: str = ""  # default <data_root>/train
    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataSpec = field(default_factory=DataSpec)
    optim: OptimSpec = field(default_factory=OptimSpec)
    checkpoint: CheckpointSpec = field(default_factory=CheckpointSpec)
    launch: LaunchSpec = field(default_factory=LaunchSpec)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrainConfig":
        return _build(TrainConfig, _merge(self.to_dict(), changes), "train")

    def fingerprint(self) -> str:
        """What changes the trained weights (not where they go, nor how the launch is spelled)."""
        payload = {k: v for k, v in self.to_dict().items() if k not in ("output_root", "launch", "checkpoint")}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


# What the official scripts used (downstream-design.md 2.2.6); the paper's model path is the user's.
PRESETS: dict[str, dict[str, Any]] = {
    "none": {},
    "paper-llava-1.5-7b": {
        "model": {"family": "llava"},
        "data": {"max_length": 32768, "max_images": 12},
        "optim": {"lr": 2e-5, "schedule": "constant_with_warmup", "warmup_ratio": 0.03, "weight_decay": 0.0,
                  "epochs": 1, "per_device_batch": 2, "grad_accum": 1, "grad_checkpointing": True},
        "launch": {"accelerate_config": "deepspeed_zero3", "mixed_precision": "bf16"},
    },
    "tiny-cpu": {
        "model": {"family": "llava", "tiny": True},
        "data": {"max_length": 512, "max_images": 6},
        "optim": {"lr": 3e-3, "schedule": "constant", "warmup_ratio": 0.0, "max_steps": 30, "per_device_batch": 2},
        "checkpoint": {"every_steps": 10, "keep_last": 2},
        "launch": {"accelerate_config": "cpu_2proc", "mixed_precision": "no"},
    },
}


def load_train_config(path: str | Path | None = None, preset: str | None = None,
                      overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """The preset (from ``preset``, else the file's ``preset``), then the file, then ``overrides``."""
    data: dict[str, Any] = {}
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"train config {path}: {exc}") from None
        data = loaded.get("train", loaded) if isinstance(loaded, dict) else None
        if not isinstance(data, dict):
            raise ConfigError(f"train config {path}: expected a mapping")
    data = _merge(data, dict(overrides or {}))
    name = preset or data.get("preset") or "none"
    if name not in PRESETS:
        raise ConfigError(f"train.preset: unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return _build(TrainConfig, _merge(_merge(PRESETS[name], data), {"preset": name}), "train")
