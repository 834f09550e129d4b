"""Progress read back from the state database, per subject, knowledge point and video.

The Airflow plugin view shows it (a backfill's progress is its subject's counts); every number
comes from our database, not from Airflow's, so it reads the same whichever orchestrator ran
the stages.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Iterable, Sequence

from sqlalchemy import func, select

from textbook.context import Context
from textbook.state import KnowledgePointRow, StageRun, VideoKnowledgePoint, VideoRow
from textbook.store import MissingArtifact
from textbook.tasks import TASK_PLAN
from textbook.taxonomy import KnowledgePoint, TaxonomyLookupError

STATUSES = ("new", "running", "done", "filtered", "failed")
# The mapped task group the knowledge-point DAGs run per video (plugins/textbook_dag_factory.py; one map
# index each).
VIDEO_GROUP = "video"


def airflow_task(stage: str) -> str:
    """The Airflow task that runs ``stage`` (``audio`` -> ``video.audio_transcript``); "" for a stage
    no task runs any more (a row left by an older pipeline)."""
    spec = next((t for t in TASK_PLAN if stage in t.stages), None)
    return f"{VIDEO_GROUP}.{spec.task_id}" if spec else ""


@dataclass(frozen=True)
class Counts:
    """Videos by status (a video found by two knowledge points counts in each)."""

    by_status: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    def get(self, status: str) -> int:
        return self.by_status.get(status, 0)

    def plus(self, other: "Counts") -> "Counts":
        merged = dict(self.by_status)
        for status, n in other.by_status.items():
            merged[status] = merged.get(status, 0) + n
        return Counts(merged)


@dataclass(frozen=True)
class KpProgress:
    kp: KnowledgePoint
    searched: bool  # its search ran at least once
    counts: Counts


@dataclass(frozen=True)
class SubjectProgress:
    id: str
    name: str
    knowledge_points: int
    searched: int
    counts: Counts


def _counts_by_kp(ctx: Context, kp_ids: Sequence[str] | None = None) -> dict[str, Counts]:
    """Videos by knowledge point and status (of ``kp_ids``, or all): one GROUP BY."""
    q = (select(VideoKnowledgePoint.kp_id, VideoRow.status, func.count())
         .join(VideoRow, VideoRow.video_id == VideoKnowledgePoint.video_id)
         .group_by(VideoKnowledgePoint.kp_id, VideoRow.status))
    if kp_ids is not None:
        q = q.where(VideoKnowledgePoint.kp_id.in_(list(kp_ids)))
    with ctx.db.session() as s:
        rows = s.execute(q).all()
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for kp_id, status, n in rows:
        out[kp_id][status] = n
    return {kp_id: Counts(c) for kp_id, c in out.items()}


def _searched(ctx: Context, kp_ids: Sequence[str] | None = None) -> set[str]:
    q = select(KnowledgePointRow.id)
    if kp_ids is not None:
        q = q.where(KnowledgePointRow.id.in_(list(kp_ids)))
    with ctx.db.session() as s:
        return set(s.scalars(q))


def kp_progress(ctx: Context, kps: Iterable[KnowledgePoint]) -> list[KpProgress]:
    """Each knowledge point's videos by status: two queries whatever the number of videos."""
    kps = list(kps)
    ids = [kp.id for kp in kps]
    counts, searched = _counts_by_kp(ctx, ids), _searched(ctx, ids)
    return [KpProgress(kp, kp.id in searched, counts.get(kp.id, Counts())) for kp in kps]


def subject_progress(ctx: Context) -> list[SubjectProgress]:
    """Each subject's videos by status: two queries whatever the number of videos."""
    counts, searched = _counts_by_kp(ctx), _searched(ctx)
    out = []
    for subject in ctx.taxonomy.subjects:
        total = Counts()
        for kp in subject.knowledge_points:
            total = total.plus(counts.get(kp.id, Counts()))
        out.append(SubjectProgress(subject.id, subject.name, len(subject.knowledge_points),
                                   sum(kp.id in searched for kp in subject.knowledge_points), total))
    return out


def video_counts(ctx: Context) -> Counts:
    """Every video once, by status: one GROUP BY."""
    with ctx.db.session() as s:
        return Counts(dict(s.execute(select(VideoRow.status, func.count()).group_by(VideoRow.status)).all()))


def video_links(ctx: Context, kp_ids: Sequence[str] | None = None, status: str | None = None) -> dict[str, list[str]]:
    """The knowledge points of every video ``StateDB.videos`` lists for the same filters, in one query."""
    videos = select(VideoRow.video_id)
    if kp_ids is not None:
        videos = videos.where(VideoRow.video_id.in_(
            select(VideoKnowledgePoint.video_id).where(VideoKnowledgePoint.kp_id.in_(list(kp_ids)))))
    if status:
        videos = videos.where(VideoRow.status == status)
    q = (select(VideoKnowledgePoint.video_id, VideoKnowledgePoint.kp_id)
         .where(VideoKnowledgePoint.video_id.in_(videos))
         .order_by(VideoKnowledgePoint.video_id, VideoKnowledgePoint.found_at, VideoKnowledgePoint.kp_id))
    out: dict[str, list[str]] = defaultdict(list)
    with ctx.db.session() as s:
        for vid, kp_id in s.execute(q):
            out[vid].append(kp_id)
    return dict(out)


@dataclass(frozen=True)
class StageLine:
    stage: str
    status: str
    attempts: int
    error: str
    seconds: float | None
    task_id: str  # the Airflow task that runs the stage


@dataclass(frozen=True)
class VideoState:
    video_id: str
    url: str
    title: str
    status: str
    reason: str
    kp_ids: tuple[str, ...]
    dag_ids: tuple[str, ...]
    stages: tuple[StageLine, ...]
    keyframes: tuple[str, ...]  # store keys of the keyframe images, in time order

    @property
    def failed(self) -> StageLine | None:
        return next((line for line in self.stages if line.status == "failed"), None)


def _dag_ids(ctx: Context, kp_ids: Iterable[str]) -> tuple[str, ...]:
    out = []
    for kp_id in kp_ids:
        try:
            out.append(ctx.taxonomy.get(kp_id).dag_id)
        except TaxonomyLookupError:
            continue  # left the taxonomy since: no DAG any more
    return tuple(out)


def keyframe_keys(run: StageRun | None, video_id: str) -> tuple[str, ...]:
    """The keyframe images a finished keyframes stage recorded for the video."""
    if run is None or run.status != "done":
        return ()
    name = re.compile(rf"{re.escape(video_id)}@\d+\.\d_\d+\.\d#\d+\.jpg")  # not the sampled frames' #f<n>
    return tuple(a["key"] for a in run.artifacts or [] if name.fullmatch(PurePosixPath(a.get("key", "")).name))


def image_keys(ctx: Context, video_id: str) -> set[str]:
    """Every image the video's keyframes stage and its derived datasets' stages recorded."""
    from textbook.export.views import derived

    found = set(keyframe_keys(ctx.db.run(video_id, "keyframes"), video_id))
    for _, produced in derived():
        run = ctx.db.run(video_id, produced.stage)
        if run is not None and run.status == "done":
            found.update(k for a in run.artifacts or [] if (k := str(a.get("key", ""))).endswith(".jpg"))
    return found


def video_state(ctx: Context, video_id: str) -> VideoState | None:
    row = ctx.db.video(video_id)
    if row is None:
        return None
    runs = ctx.db.runs(video_id)
    kp_ids = tuple(link.kp_id for link in ctx.db.links(video_id))
    lines = tuple(StageLine(r.stage, r.status, r.attempts, r.error or "", r.seconds, airflow_task(r.stage))
                  for r in runs)
    keyframes = keyframe_keys(next((r for r in runs if r.stage == "keyframes"), None), video_id)
    return VideoState(row.video_id, row.url, str((row.meta or {}).get("title") or ""), row.status, row.reason or "",
                      kp_ids, _dag_ids(ctx, kp_ids), lines, keyframes)


@dataclass(frozen=True)
class FailedVideo:
    video_id: str
    reason: str
    stage: str  # the failed stage ("" when the video failed outside a stage)
    task_id: str  # the Airflow task to clear ("" likewise)
    dag_ids: tuple[str, ...]
    category: str = "error"  # textbook.failures.CATEGORIES: what bulk retries select by


def failed_videos(ctx: Context, kp_ids: Iterable[str] | None = None, category: str | None = None) -> list[FailedVideo]:
    """Failed videos (of some knowledge points, or all; of one failure category, or any) with the
    stage, task and DAGs to clear."""
    rows = ctx.db.videos(kp_ids=list(kp_ids) if kp_ids is not None else None, status="failed")
    ids = [row.video_id for row in rows]
    with ctx.db.session() as s:
        failed = {vid: (stage, (result or {}).get("category", "error")) for vid, stage, result in s.execute(
            select(StageRun.video_id, StageRun.stage, StageRun.result)
            .where(StageRun.status == "failed", StageRun.video_id.in_(ids)))}
        links: dict[str, list[str]] = defaultdict(list)
        for vid, kp_id in s.execute(select(VideoKnowledgePoint.video_id, VideoKnowledgePoint.kp_id)
                                    .where(VideoKnowledgePoint.video_id.in_(ids))
                                    .order_by(VideoKnowledgePoint.kp_id)):
            links[vid].append(kp_id)
    out = []
    for row in rows:
        stage, cat = failed.get(row.video_id, ("", "error"))
        if category is None or cat == category:
            out.append(FailedVideo(row.video_id, row.reason or "", stage, airflow_task(stage),
                                   _dag_ids(ctx, links[row.video_id]), cat))
    return out


def by_category(videos: Iterable[FailedVideo]) -> list[tuple[str, int]]:
    """(category, how many), most common first: the bulk-retry choices."""
    counts: dict[str, int] = defaultdict(int)
    for v in videos:
        counts[v.category] += 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass(frozen=True)
class DatasetLine:
    """One stage a derived dataset is made of, over the videos it ran on (live, before any export)."""

    view: str
    stage: str
    label: str
    videos: int  # finished runs of the stage
    with_items: int  # of them, runs that made at least one item
    items: int
    not_run: tuple[tuple[str, int], ...]  # why it did not run, by reason, most frequent first


def dataset_progress(ctx: Context, kp_ids: Sequence[str] | None = None) -> list[DatasetLine]:
    """Per stage of every derived dataset (``View.produced_by``): one query each, over the run
    summaries of the videos of ``kp_ids`` (or all)."""
    from textbook.export.views import derived

    out = []
    for view, produced in derived():
        q = select(StageRun.result).where(StageRun.stage == produced.stage, StageRun.status == "done")
        if kp_ids is not None:
            linked = select(VideoKnowledgePoint.video_id).where(VideoKnowledgePoint.kp_id.in_(list(kp_ids)))
            q = q.where(StageRun.video_id.in_(linked))
        with ctx.db.session() as s:
            results = [r or {} for r in s.scalars(q)]
        reasons: dict[str, int] = defaultdict(int)
        counts = []
        for result in results:
            if result.get("not_run"):
                reasons[str(result["not_run"])] += 1
            else:
                counts.append(int(result.get(produced.count) or 0))
        out.append(DatasetLine(view.name, produced.stage, produced.label, len(results), sum(n > 0 for n in counts),
                               sum(counts), tuple(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))))
    return out


@dataclass(frozen=True)
class VideoExamples:
    view: str
    stage: str
    label: str
    examples: tuple  # tuple[Example, ...]; not_run set instead when the stage did not run
    not_run: str = ""


def video_examples(ctx: Context, video_id: str) -> list[VideoExamples]:
    """The items each derived dataset's stages made of one video, read from the stage's JSON output."""
    from textbook.export.views import derived

    out = []
    for view, produced in derived():
        run = ctx.db.run(video_id, produced.stage)
        if run is None or run.status != "done":
            continue
        if run.result.get("not_run"):
            out.append(VideoExamples(view.name, produced.stage, produced.label, (), str(run.result["not_run"])))
            continue
        docs = [a["key"] for a in run.artifacts or [] if str(a.get("key", "")).endswith(".json")]
        try:
            examples = view.examples(produced.stage, ctx.store.get_json(docs[0])) if docs else []
        except MissingArtifact as exc:
            out.append(VideoExamples(view.name, produced.stage, produced.label, (), f"its output is missing: {exc}"))
            continue
        out.append(VideoExamples(view.name, produced.stage, produced.label, tuple(examples)))
    return out
