"""The stage contract: a named function of (video, context) with declared config and inputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from textbook.store import ArtifactRef

if TYPE_CHECKING:
    from textbook.context import Context
    from textbook.records import Video


@dataclass
class StageResult:
    """What a stage reports. ``filtered`` (a reason) drops the video: later stages are skipped."""

    artifacts: list[ArtifactRef] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    filtered: str = ""


@dataclass(frozen=True)
class Stage:
    name: str
    fn: Callable[["Video", "Context"], StageResult]
    sections: tuple[str, ...] = ()  # config sections the stage reads
    requires: tuple[str, ...] = ()  # stages whose outputs it reads
    version: str = "1"  # bump when the stage's logic changes its output
    network: bool = False  # talks to the outside world: worth retrying
    model: bool = False  # runs a model: belongs on the GPU queue in a cluster

    def __call__(self, video: "Video", ctx: "Context") -> StageResult:
        return self.fn(video, ctx)


def stage(name: str, *, sections: tuple[str, ...] = (), requires: tuple[str, ...] = (), version: str = "1",
          network: bool = False, model: bool = False) -> Callable[[Callable[..., StageResult]], Stage]:
    def wrap(fn: Callable[..., StageResult]) -> Stage:
        return Stage(name, fn, sections, requires, version, network, model)

    return wrap


def switched_off(section: str, cfg: Any, video_id: str, ctx: "Context") -> str:
    """Why a derived dataset's stage does not run for the video, '' when it does: ``cfg.enabled``
    turns it on for every video, else ``cfg.knowledge_points`` lists those it runs for (the
    video's first knowledge point decides). The same words for every video, so the card and the
    plugin count videos per reason."""
    links = ctx.db.links(video_id)
    kp_id = links[0].kp_id if links else None
    if cfg.enabled or (kp_id is not None and kp_id in cfg.knowledge_points):
        return ""
    return f"{section}.enabled is off and the video's knowledge point is not in {section}.knowledge_points"
