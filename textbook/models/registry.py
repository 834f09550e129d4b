"""Which backends exist for each model kind, what each needs, and building one from its settings.

A backend is one factory plus one ``register`` call. The name comes from the settings; an unknown
name is one error listing the kind's backends, and a missing need (a model folder, an endpoint, a
GPU) is an error naming the setting to fill, raised when the model is built: at the model server's
start on a GPU worker, before it reports healthy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from textbook.context import Context

KINDS = ("llm", "vlm", "text_embedder", "asr", "ocr")
NEEDS = ("model", "model_dir", "endpoint", "gpu")


class BackendError(RuntimeError):
    """A model backend is misconfigured, cannot run here, or answered in a shape we cannot use."""


@dataclass(frozen=True)
class Backend:
    kind: str
    name: str
    build: Callable[[Any], Any]  # settings section -> the loaded backend (None: the offline "no model")
    needs: tuple[str, ...]
    about: str


_REGISTRY: dict[str, dict[str, Backend]] = {kind: {} for kind in KINDS}


def register(kind: str, name: str, *, needs: tuple[str, ...] = (), about: str) -> Callable[[Callable], Callable]:
    """Declare ``name`` as a ``kind`` backend built by the decorated factory."""
    if kind not in KINDS or not set(needs) <= set(NEEDS):
        raise ValueError(f"register({kind!r}, {name!r}): kind one of {KINDS}, needs among {NEEDS}")

    def wrap(factory: Callable[[Any], Any]) -> Callable[[Any], Any]:
        _REGISTRY[kind][name] = Backend(kind, name, factory, needs, about)
        return factory

    return wrap


def backends(kind: str) -> dict[str, Backend]:
    return dict(_REGISTRY[kind])


def spec(kind: str, name: str, setting: str) -> Backend:
    """The registered backend, or one error naming ``setting`` and every choice."""
    known = _REGISTRY[kind]
    if name not in known:
        raise BackendError(f"{setting}: unknown {kind} backend {name!r}; choose one of {', '.join(sorted(known))}")
    return known[name]


def check_needs(backend: Backend, cfg: Any, where: str) -> None:
    """Raise naming the setting when something ``backend`` needs is missing."""
    head = f"{where}.backend {backend.name!r}"
    for need in backend.needs:
        if need == "endpoint" and not cfg.endpoint:
            raise BackendError(f"{head} needs {where}.endpoint "
                               "(an OpenAI-compatible base URL, e.g. http://vllm:8000/v1)")
        if need in ("model", "model_dir") and not cfg.model:
            raise BackendError(f"{head} needs {where}.model"
                               + (" (a local model folder)" if need == "model_dir" else " (the served model's name)"))
        if need == "model_dir" and not Path(cfg.model).expanduser().is_dir():
            raise BackendError(f"{head}: {where}.model {cfg.model!r} is not a folder on this machine")
        if need == "gpu" and not _cuda():
            raise BackendError(f"{head} needs a CUDA GPU and this machine has none (run it on the GPU worker)")
    if getattr(cfg, "device", None) == "cuda" and not _cuda():
        raise BackendError(f"{where}.device is cuda and this machine has no CUDA GPU (set it to auto or cpu)")


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def build(kind: str, cfg: Any, where: str, name: str | None = None, setting: str | None = None) -> Any:
    """Build the ``kind`` backend named ``name`` (default ``cfg.backend``) from its settings ``cfg``."""
    name = cfg.backend if name is None else name
    backend = spec(kind, name, setting or f"{where}.backend")
    check_needs(backend, cfg, where)
    return backend.build(cfg)


def cache_key(kind: str, cfg: Any, name: str | None = None) -> str:
    """One key per distinct model, so every stage asking for the same one shares it."""
    name = cfg.backend if name is None else name
    digest = hashlib.sha256(json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str).encode()).hexdigest()
    return f"{kind}:{name}:{digest[:8]}"


def load(ctx: Context, kind: str, cfg: Any, where: str, name: str | None = None, setting: str | None = None) -> Any:
    """The backend built once per process and cached on ``ctx`` (a worker reuses it across videos)."""
    return ctx.backend(cache_key(kind, cfg, name), lambda: build(kind, cfg, where, name, setting))
