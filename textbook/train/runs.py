"""The pretraining run as the DAG and the CLI drive it: resolve -> prepare -> train -> publish.

``resolve`` syncs an ``s3://`` corpus to the training host (checksums verified) and names the run
after the corpus fingerprint and the config fingerprint, so an unchanged corpus (the nightly pack of
an unchanged taxonomy) finds a finished run and does not retrain, and a retried task finds its own
run folder and resumes. ``publish`` uploads ``final/`` to the
artifact store, reads every file's checksum back, and writes a model card naming the corpus.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlparse

from textbook.config import StoreSettings
from textbook.state import StateDB
from textbook.store import ArtifactStore, LocalStore
from textbook.store.base import sha256_file
from textbook.train import registry
from textbook.train.config import TrainConfig
from textbook.train.data import CorpusError, build_index, corpus_fingerprint, write_index
from textbook.train.launch import launch_argv, run_launch


class TrainSkipped(Exception):
    """Nothing to train, and why: an unchanged corpus (``done`` names its finished run), or no model."""

    def __init__(self, reason: str, done: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.done = done


@dataclass(frozen=True)
class RunPlan:
    run_id: str
    run_key: str
    corpus_uri: str
    corpus_root: str
    corpus_fingerprint: str
    run_dir: str
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunPlan":
        return cls(**data)

    @property
    def cfg(self) -> TrainConfig:
        from textbook.train.config import load_train_config

        return load_train_config(overrides=self.config)


def sync_corpus(uri: str, store: StoreSettings, cache: Path) -> Path:
    """An ``s3://bucket/prefix`` export copied to ``cache`` (node-local); files whose sha256 already
    matches are not fetched again, and each download is checked against the server's checksum."""
    from textbook.store.s3 import S3Store

    parsed = urlparse(uri)
    remote = S3Store(parsed.netloc, parsed.path.strip("/"), endpoint_url=store.endpoint_url, region=store.region,
                     path_style=store.path_style)
    root = cache / hashlib.sha256(uri.encode()).hexdigest()[:16]
    keys = list(remote.list(""))
    if not keys:
        raise CorpusError(f"corpus {uri}: nothing there")
    for key in keys:
        target = root / key
        want = remote.checksum(key)
        if target.is_file() and sha256_file(target) == want:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(remote.get_bytes(key))
        if sha256_file(target) != want:
            raise OSError(f"corpus {uri}: {key} did not verify after download")
    return root


def corpus_root(uri: str, store: StoreSettings | None = None, cache: Path | None = None) -> Path:
    """A local export folder from a ``file://`` URI, a path, or an ``s3://`` export synced to ``cache``."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3" and store is not None and cache is not None:
        return sync_corpus(uri, store, cache)
    if parsed.scheme in ("", "file"):
        root = Path(unquote(parsed.path) if parsed.scheme else uri)
        if not root.is_dir():
            raise CorpusError(f"corpus {uri}: no such folder")
        return root.resolve()
    raise CorpusError(f"corpus {uri}: expected a folder, a file:// URI or an s3:// export")


def model_problem(cfg: TrainConfig) -> str:
    """Why no model can be trained with this config ("" when one can)."""
    if cfg.model.tiny:
        return ""
    if not cfg.model.path:
        return ("train.model.path is not set: point it at a local HF-format checkpoint (e.g. llava-1.5-7b-hf) "
                "or use the tiny-cpu preset for a smoke run")
    if not (Path(cfg.model.path) / "config.json").is_file():
        return f"train.model.path {cfg.model.path}: no config.json there"
    return ""


def resolve(db: StateDB, corpus_uri: str, cfg: TrainConfig, data_root: Path, holder: str,
            store: StoreSettings | None = None) -> RunPlan:
    root = corpus_root(corpus_uri, store, data_root / "corpus-cache")
    fingerprint = corpus_fingerprint(root)
    run_key = hashlib.sha256(f"{fingerprint}:{cfg.fingerprint()}".encode()).hexdigest()[:32]
    run_id = f"{cfg.preset}-{run_key[:12]}"
    done = registry.done_run(db, run_key)
    if done is not None:
        raise TrainSkipped(f"corpus {fingerprint[:12]} with this config was trained by run {done.run_id} "
                           f"(checkpoint {done.checkpoint_uri}): nothing to do",
                           {"run_id": done.run_id, "uri": done.checkpoint_uri, "corpus_fingerprint": fingerprint})
    fields = dict(preset=cfg.preset, corpus_uri=corpus_uri, corpus_fingerprint=fingerprint,
                  config_hash=cfg.fingerprint())
    problem = model_problem(cfg)
    if problem:
        registry.claim(db, run_key, run_id, holder, **fields)
        registry.finish(db, run_key, "skipped", reason=problem)
        raise TrainSkipped(problem)
    registry.claim(db, run_key, run_id, holder, **fields)
    out = Path(cfg.output_root) if cfg.output_root else data_root / "train"
    return RunPlan(run_id, run_key, corpus_uri, str(root), fingerprint, str((out / run_id).resolve()),
                   cfg.to_dict())


def _corpus_texts(root: Path, field: str, limit: int = 2000) -> list[str]:
    from textbook.train.data import read_shard, shard_names

    texts: list[str] = []
    for name in shard_names(root):
        for _, _, sample in read_shard(root, name):
            texts += [t for t in sample[field] if t]
            if len(texts) >= limit:
                return texts
    return texts


def prepare(plan: RunPlan) -> dict[str, Any]:
    """The model folder (a tiny random one is built when asked), the re-packed index, ``run.json``."""
    from textbook.train.families import load_family

    cfg, run_dir, root = plan.cfg, Path(plan.run_dir), Path(plan.corpus_root)
    run_dir.mkdir(parents=True, exist_ok=True)
    model_dir = Path(cfg.model.path) if cfg.model.path else run_dir / "base_model"
    if cfg.model.tiny and not (model_dir / "config.json").is_file():
        from textbook.train.tiny import build_tiny

        build_tiny(cfg.model.family, model_dir, _corpus_texts(root, cfg.data.text_field), [cfg.data.end_of_video],
                   seed=cfg.optim.seed)
    _, family = load_family(cfg.model.family, model_dir, cfg.data.end_of_video, cfg.data.mask_after_eov,
                            with_model=False)
    entries, report = build_index(root, family.slot_cost(), max_length=cfg.data.max_length,
                                  max_images=cfg.data.max_images, end_of_video=cfg.data.end_of_video,
                                  shuffle_ratio=cfg.data.shuffle_images_ratio, seed=cfg.data.seed,
                                  view=cfg.data.view)
    if report.missing_images:
        raise CorpusError(f"{root}: {len(report.missing_images)} image(s) the samples name are missing, "
                          f"e.g. {report.missing_images[0]}")
    if not entries:
        raise CorpusError(f"{root}: no sample with an image to train on")
    write_index(run_dir / "train_index.jsonl", entries)
    prep = {**report.to_dict(), "image_tokens": family.image_tokens, "corpus_fingerprint": plan.corpus_fingerprint}
    (run_dir / "prep_report.json").write_text(json.dumps(prep, indent=1))
    (run_dir / "run.json").write_text(json.dumps({"config": plan.config, "corpus_root": plan.corpus_root,
                                                  "model_dir": str(model_dir.resolve()),
                                                  "corpus_fingerprint": plan.corpus_fingerprint}, indent=1))
    return {k: prep[k] for k in ("source_samples", "train_samples", "split_samples", "images", "tokens",
                                 "shuffled_count", "image_tokens")}


def train(plan: RunPlan, echo: Callable[[str], None], *, stop_after: int = 0,
          on_start: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """``accelerate launch`` the script; it resumes from the newest checkpoint by itself."""
    run_dir = Path(plan.run_dir)
    summary = run_dir / "final" / "training_summary.json"
    if summary.is_file() and not stop_after:
        echo(f"train: {run_dir / 'final'} is complete; not launching again")
        return json.loads(summary.read_text())
    argv = launch_argv(plan.cfg.launch, run_dir, stop_after=stop_after)
    echo("train: " + " ".join(argv))
    run_launch(argv, echo, grace=plan.cfg.launch.kill_grace_seconds, on_start=on_start)
    return json.loads(summary.read_text()) if summary.is_file() else {}


def prefix_uri(store: ArtifactStore, prefix: str) -> str:
    if isinstance(store, LocalStore):
        return (store.root / prefix).as_uri()
    return f"{store.uri.rstrip('/')}/{prefix}"


def _model_card(plan: RunPlan, summary: dict[str, Any]) -> str:
    cfg = plan.cfg
    base = f"a tiny RANDOM {cfg.model.family} built from a config (plumbing test, not a model)" if cfg.model.tiny \
        else cfg.model.path
    return (f"# {plan.run_id}\n\nContinual pretraining of `{base}` ({cfg.model.family}) on the textbook corpus "
            f"`{plan.corpus_uri}`.\n\n- corpus fingerprint: `{plan.corpus_fingerprint}`\n"
            f"- config fingerprint: `{cfg.fingerprint()}` (preset `{cfg.preset}`)\n"
            f"- text field: `{cfg.data.text_field}` ({'with OCR' if cfg.data.text_field == 'text_ocr_list' else 'w/o OCR'})\n"
            f"- End-of-Video: `{cfg.data.end_of_video}` as a special token with loss; text after it masked until "
            f"the next image: {cfg.data.mask_after_eov}\n- image-order shuffle ratio: {cfg.data.shuffle_images_ratio}\n"
            f"- vision tower frozen: {cfg.model.freeze_vision}\n- steps: {summary.get('step')}, tokens seen: "
            f"{summary.get('tokens_seen')}, images seen: {summary.get('images_seen')}, final loss: "
            f"{summary.get('loss')}, world size: {summary.get('world_size')}\n")


def publish(plan: RunPlan, store: ArtifactStore, db: StateDB) -> dict[str, Any]:
    """Upload ``final/`` (+ metrics, prep report, model card), verify each checksum, record the run."""
    run_dir = Path(plan.run_dir)
    final = run_dir / "final"
    summary_file = final / "training_summary.json"
    if not summary_file.is_file():
        raise FileNotFoundError(f"{final}: no finished training to publish")
    summary = json.loads(summary_file.read_text())
    (final / "MODEL_CARD.md").write_text(_model_card(plan, summary))
    for extra in ("metrics.jsonl", "prep_report.json"):
        if (run_dir / extra).is_file():
            (final / extra).write_bytes((run_dir / extra).read_bytes())
    prefix = f"checkpoints/{plan.run_id}/final"
    files = sorted(p for p in final.rglob("*") if p.is_file())
    for path in files:
        key = f"{prefix}/{path.relative_to(final).as_posix()}"
        store.put_file(key, path)
        if store.checksum(key) != sha256_file(path):
            raise OSError(f"upload of {key} did not verify: checksums differ")
    uri = prefix_uri(store, prefix)
    extra = {"run_id": plan.run_id, "corpus_fingerprint": plan.corpus_fingerprint, "preset": plan.cfg.preset,
             "steps": summary.get("step"), "tokens_seen": summary.get("tokens_seen"),
             "images_seen": summary.get("images_seen"), "final_loss": summary.get("loss"),
             "shuffle_images_ratio": plan.cfg.data.shuffle_images_ratio}
    registry.finish(db, plan.run_key, "done", steps=summary.get("step"), tokens_seen=summary.get("tokens_seen"),
                    images_seen=summary.get("images_seen"), final_loss=summary.get("loss"), checkpoint_uri=uri,
                    figures={"files": len(files), **extra})
    return {"uri": uri, "files": len(files), "extra": extra}
