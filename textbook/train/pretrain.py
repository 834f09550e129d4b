"""The training script ``accelerate launch`` runs: ``python -m textbook.train.pretrain --run-dir DIR``.

DIR is what ``prepare`` wrote: ``run.json`` (the TrainConfig, the corpus root, the model folder)
and ``train_index.jsonl``. The script resumes from the newest complete checkpoint under
``DIR/checkpoints`` by itself, so a retried or cleared task continues the run; resuming reproduces
the unbroken run bit for bit (data order is the index order, RNG states are in the checkpoint).
Rank 0 writes ``metrics.jsonl`` and, at the end, ``final/`` (safetensors + processor).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

CURSOR = "cursor.json"  # written last into a checkpoint folder: its presence marks it complete


class WorldSizeError(RuntimeError):
    """Each process would train alone: the launcher's world size is not the one accelerate sees."""


def newest_checkpoint(run_dir: Path) -> Path | None:
    done = [p for p in (run_dir / "checkpoints").glob("step_*") if (p / CURSOR).is_file()]
    return max(done, key=lambda p: int(p.name.split("_")[1]), default=None)


def _prune(run_dir: Path, keep: int) -> None:
    done = sorted((p for p in (run_dir / "checkpoints").glob("step_*") if (p / CURSOR).is_file()),
                  key=lambda p: int(p.name.split("_")[1]))
    for old in done[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def train(run_dir: Path, stop_after: int = 0) -> dict[str, Any]:
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader
    from transformers import get_scheduler

    from textbook.train.config import load_train_config
    from textbook.train.data import IndexedDataset, read_index
    from textbook.train.families import load_family
    from textbook.train.sft import SFT_VIEWS, SftDataset

    run = json.loads((run_dir / "run.json").read_text())
    cfg = load_train_config(overrides=run["config"])
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), gradient_accumulation_steps=cfg.optim.grad_accum)
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if accelerator.num_processes != launched:
        raise WorldSizeError(f"accelerate sees {accelerator.num_processes} process(es) but the launcher started "
                             f"{launched}: each would train alone (see configs/accelerate/cpu_2proc.yaml)")
    set_seed(cfg.optim.seed)
    model, family = load_family(cfg.model.family, Path(run["model_dir"]), cfg.data.end_of_video,
                                cfg.data.mask_after_eov)
    if cfg.model.freeze_vision:
        family.vision_tower(model).requires_grad_(False)
    if cfg.optim.grad_checkpointing:
        model.gradient_checkpointing_enable()
    index = read_index(run_dir / "train_index.jsonl")
    if cfg.data.view in SFT_VIEWS:  # instruction tuning: loss on the assistant's turns
        dataset: Any = SftDataset(Path(run["corpus_root"]), index, family, max_length=cfg.data.max_length,
                                  view=cfg.data.view)
    else:
        dataset = IndexedDataset(Path(run["corpus_root"]), index, family, text_field=cfg.data.text_field,
                                 max_length=cfg.data.max_length, max_images=cfg.data.max_images, view=cfg.data.view,
                                 end_of_video=cfg.data.end_of_video)
    loader = DataLoader(dataset, batch_size=cfg.optim.per_device_batch, shuffle=False, collate_fn=family.collate)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    per_epoch = max(1, math.ceil(len(loader) / accelerator.num_processes) // cfg.optim.grad_accum)
    total = cfg.optim.max_steps or per_epoch * cfg.optim.epochs
    scheduler = get_scheduler(cfg.optim.schedule, optimizer, num_warmup_steps=int(cfg.optim.warmup_ratio * total),
                              num_training_steps=total)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    cursor = {"step": 0, "tokens_seen": 0, "images_seen": 0, "samples_seen": 0, "loss": None}
    resumed = newest_checkpoint(run_dir)
    if resumed is not None:
        accelerator.load_state(str(resumed))
        cursor = json.loads((resumed / CURSOR).read_text())
    log = (run_dir / "metrics.jsonl").open("a") if accelerator.is_main_process else None
    if accelerator.is_main_process:
        print(f"train: world size {accelerator.num_processes} ({accelerator.distributed_type}), {len(dataset)} "
              f"samples, {total} steps, trainable {sum(p.numel() for p in params)} of "
              f"{sum(p.numel() for p in accelerator.unwrap_model(model).parameters())} parameters"
              + (f", resumed from {resumed.name}" if resumed else ""), flush=True)
    model.train()
    started = time.monotonic()
    while cursor["step"] < total:
        batches = len(loader)
        skip = (cursor["step"] * cfg.optim.grad_accum) % batches
        for batch in accelerator.skip_first_batches(loader, skip) if skip else loader:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            seen = accelerator.gather(torch.stack([
                loss.detach().float(), batch["attention_mask"].sum().float(),
                torch.tensor(float(images_in(batch)), device=loss.device),
                torch.tensor(float(len(batch["input_ids"])), device=loss.device)])
            ).view(-1, 4)
            cursor["tokens_seen"] += int(seen[:, 1].sum())
            cursor["images_seen"] += int(seen[:, 2].sum())
            cursor["samples_seen"] += int(seen[:, 3].sum())
            if not accelerator.sync_gradients:
                continue
            cursor["step"] += 1
            cursor["loss"] = float(seen[:, 0].mean())
            elapsed = time.monotonic() - started
            if log is not None:
                row = {"step": cursor["step"], "loss": round(cursor["loss"], 6), "lr": scheduler.get_last_lr()[0],
                       "tokens_seen": cursor["tokens_seen"], "images_seen": cursor["images_seen"],
                       "samples_seen": cursor["samples_seen"], "tokens_per_s": round(cursor["tokens_seen"] / elapsed, 1),
                       "images_per_s": round(cursor["images_seen"] / elapsed, 2)}
                log.write(json.dumps(row) + "\n")
                log.flush()
                print(f"step {cursor['step']}/{total} loss {row['loss']:.4f} lr {row['lr']:.2e} "
                      f"tokens {row['tokens_seen']} images {row['images_seen']}", flush=True)
            stopping = stop_after and cursor["step"] >= stop_after
            if cursor["step"] % cfg.checkpoint.every_steps == 0 or cursor["step"] == total or stopping:
                _save(accelerator, run_dir, cursor, cfg.checkpoint.keep_last)
            if stopping:
                return cursor
            if cursor["step"] >= total:
                break
    accelerator.wait_for_everyone()
    final = run_dir / "final"
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.save_pretrained(final, is_main_process=accelerator.is_main_process, save_function=accelerator.save,
                              state_dict=accelerator.get_state_dict(model))
    if accelerator.is_main_process:
        family.processor.save_pretrained(final)
        summary = {**cursor, "world_size": accelerator.num_processes, "total_steps": total,
                   "param_sum": float(sum(p.detach().double().sum() for p in unwrapped.parameters()))}
        (final / "training_summary.json").write_text(json.dumps(summary, indent=1))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return cursor


def images_in(batch: dict[str, Any]) -> int:
    """Real images of a batch (Idefics3 pads its [batch, images] tensor with all-zero images)."""
    pixels = batch.get("pixel_values")
    if pixels is None:
        return 0
    return int((pixels.flatten(-3).abs().sum(-1) > 0).sum()) if pixels.dim() == 5 else int(pixels.shape[0])


def _save(accelerator: Any, run_dir: Path, cursor: dict, keep: int) -> None:
    folder = run_dir / "checkpoints" / f"step_{cursor['step']}"
    accelerator.save_state(str(folder))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (folder / CURSOR).write_text(json.dumps(cursor))
        _prune(run_dir, keep)
    accelerator.wait_for_everyone()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="textbook.train.pretrain", description=__doc__)
    p.add_argument("--run-dir", required=True, type=Path)
    p.add_argument("--stop-after", type=int, default=0,
                   help="checkpoint and stop after this step (time-sliced jobs); the next launch resumes")
    args = p.parse_args(argv)
    train(args.run_dir.resolve(), args.stop_after)
    return 0


if __name__ == "__main__":
    sys.exit(main())
