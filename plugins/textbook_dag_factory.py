"""The factory of the knowledge-point DAGs: search -> one task chain per video -> pack (its parts).

Shared by the DAG files in dags/ (one per taxonomy subject file, see ``textbook.dag_files``); it
lives in plugins/, which every Airflow component has on ``sys.path``. Thin by design: every task
calls ``textbook.tasks`` with ids and gets ids back; media never goes through XCom. Heavy libraries
are imported inside tasks, never at parse time, and the tasks are small BaseOperator subclasses
rather than @task functions: 4,000 DAGs must parse in seconds and the decorator's per-task
signature inspection costs twice as much. Each file builds one DAG and copies it for the
others (``DagBuilder``).
"""

from __future__ import annotations

import hashlib
import pickle
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterable

from airflow.sdk import (DAG, Asset, BaseOperator, CronDataIntervalTimetable, CronTriggerTimetable, Param, chain,
                         get_parsing_context, task_group)
from airflow.sdk.definitions.timetables.simple import NullTimetable
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from textbook.config import DagSettings, Settings, load_settings
from textbook.dag_files import claimed_files, part_of
from textbook.taxonomy import SHIPPED_DIR, KnowledgePoint, TaxonomyError, load_subject_file, taxonomy_files
from textbook.tasks import SOURCES, STAGE_NAMES, TASK_PLAN, RunOptions, TaskSpec
from textbook_airflow import quiet_progress_bars, resolved_settings  # plugins/ (on sys.path): shared with the plugin view

START = datetime(2026, 1, 1)
quiet_progress_bars()  # in the task processes that import this file, before any stage imports its libraries


def nightly_cron(kp_id: str, cfg: DagSettings) -> str:
    """A minute inside the night window chosen by a stable hash, so 4,000 DAGs don't all start at once."""
    hours, minutes = (int(x) for x in cfg.window_start.split(":"))
    span = max(1, int(cfg.window_hours * 60))
    at = hours * 60 + minutes + int(hashlib.sha256(kp_id.encode()).hexdigest(), 16) % span
    return f"{at % 60} {(at // 60) % 24} * * *"


def schedule_for(kp: KnowledgePoint, cfg: DagSettings) -> str | None:
    if cfg.schedule == "nightly":
        return nightly_cron(kp.id, cfg)
    return None if cfg.schedule == "none" else cfg.schedule


def _context():  # noqa: ANN202 - textbook.context.Context, imported lazily
    from textbook import tasks

    return tasks.configure(resolved_settings())


# The trigger form of every knowledge-point DAG; Airflow validates a run's conf against these JSON
# schemas before it creates the run, the tasks pass them to the library as ``RunOptions``.
PARAMS = {
    "limit": Param(None, type=["null", "integer"], minimum=1, title="Limit",
                   description="At most this many videos this run (default: search.max_results searched, "
                               "every video with work left processed)"),
    "source": Param(None, type=["null", "string"], enum=[None, *SOURCES], title="Source",
                    values_display={"None": "configured (search.source)"},
                    description="Search another source than the configured one this run"),
    "source_path": Param(None, type=["null", "string"], minLength=1, title="Source path",
                         description="With source urls: the file of URLs; with local: the folder of media "
                                     "(default: search.urls_file / search.local_dir)"),
    "dry_run": Param(False, type="boolean", title="Dry run",
                     description="Plan only: the search task logs which videos and stages would run; "
                                 "nothing is searched, run or packed"),
    "force_stage": Param(None, type=["null", "string"], enum=[None, *STAGE_NAMES],
                         title="Force stage", values_display={"None": "none"},
                         description="Run this stage again on every video of the knowledge point, although "
                                     "it finished under the current settings"),
}


def run_options(context: Any) -> RunOptions:
    """The run's params as the library takes them; an inconsistent pair fails the task, naming it."""
    from textbook.tasks import RunOptionError

    try:
        return RunOptions.from_params(dict(context["params"]))
    except RunOptionError as exc:
        raise AirflowFailException(f"DAG param {exc}") from None


def corpus_asset(settings: Settings) -> Asset:
    """The dataset as an Airflow Asset, updated by the compaction DAG: pretraining DAGs schedule on it."""
    root = settings.export.root if settings.export.root.startswith("s3://") else settings.export_root.as_uri()
    return Asset(name="textbook_corpus", uri=root)


def parts_asset(settings: Settings) -> Asset:
    """The videos' export parts, updated by each knowledge point's pack: a lighter event than the
    corpus's (the dataset itself changes only when the compaction DAG runs)."""
    store = settings.store
    base = (f"s3://{store.bucket}/{store.root.strip('/')}".rstrip("/") if store.kind == "s3"
            else settings.artifact_root.as_uri())
    return Asset(name="textbook_parts", uri=f"{base}/corpus/parts")


class SearchOperator(BaseOperator):
    """Search the knowledge point; return the ids of its videos that still have work to do."""

    def __init__(self, *, kp_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kp_id = kp_id

    def execute(self, context: Any) -> list[str]:
        from textbook import tasks

        return tasks.search(self.kp_id, ctx=_context(), options=run_options(context))


class VideoStageOperator(BaseOperator):
    """Run one step of ``textbook.tasks.TASK_PLAN`` on one video; skip the rest if it is dropped."""

    template_fields = ("video_id",)

    def __init__(self, *, step: str, video_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step = step
        self.video_id = video_id

    def execute(self, context: Any) -> str:
        from textbook import tasks
        from textbook.runner import StageBusy, StageFailed

        try:
            outcome = tasks.run_task(self.step, self.video_id, _context(), force_stage=run_options(context).force_stage)
        except StageBusy as exc:  # another run holds this video right now: not this run's failure
            raise AirflowSkipException(str(exc)) from None
        except StageFailed as exc:
            if exc.permanent:  # a removed video or a corrupt file: retries cannot help
                raise AirflowFailException(str(exc)) from exc
            raise
        if outcome.stops_chain:
            raise AirflowSkipException(f"{self.video_id}: dropped ({outcome.reason})")
        return self.video_id


class PackOperator(BaseOperator):
    """Bring the export parts of the knowledge point's videos up to date; emit the parts event
    only when one changed. The dataset is written by the compaction DAG.

    Fails the DAG run, without touching any part, when the search failed or every video of the
    run failed: a night where the source is unreachable must not look green.
    """

    def __init__(self, *, kp_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kp_id = kp_id

    def execute(self, context: Any) -> dict:
        from textbook import tasks

        if run_options(context).dry_run:
            raise AirflowSkipException("dry run: nothing was run, so nothing is packed (the plan is in the search log)")
        ctx = _context()
        video_ids = context["ti"].xcom_pull(task_ids="search")
        if video_ids is None:
            raise AirflowFailException("search did not finish (see its log), so no video was processed; "
                                       "nothing was packed and no event is emitted")
        run = tasks.run_summary(video_ids, ctx)
        self.log.info("this run's %d videos: %s", run["videos"], run["by_status"])
        if video_ids and run["by_status"].get("failed", 0) == len(video_ids):
            reasons = "; ".join(f"{n} x {reason}" for reason, n in run["failures"].items())
            raise AirflowFailException(f"every video of this run failed ({len(video_ids)}): {reasons}. "
                                       "Nothing was packed and no event is emitted")
        packed = tasks.pack(self.kp_id, ctx)
        self.log.info("%s: %d videos, %d parts rebuilt, %d new", self.kp_id, packed["videos"], packed["rebuilt"],
                      packed["written"])
        if not packed["changed"]:
            raise AirflowSkipException("no video of this knowledge point changed: no parts event")
        for asset in self.outlets:
            context["outlet_events"][asset].extra = {k: packed[k] for k in ("kp", "videos", "rebuilt", "written")}
        return packed


def _step_options(spec: TaskSpec, cfg: DagSettings) -> dict[str, Any]:
    model, downloads = spec.queue == "gpu", "download" in spec.stages
    timeout = cfg.download_timeout_minutes if downloads else (
        cfg.model_timeout_minutes if model else cfg.cpu_timeout_minutes)
    opts: dict[str, Any] = {
        "task_id": spec.task_id,
        "step": spec.task_id,
        "queue": cfg.gpu_queue if model else cfg.default_queue,
        "execution_timeout": timedelta(minutes=timeout),
        "map_index_template": "{{ task.video_id }}",  # the UI labels each map index with its video
        "retries": cfg.retries if spec.network else 0,
    }
    if spec.network:
        opts.update(retry_delay=timedelta(seconds=cfg.retry_delay_seconds), retry_exponential_backoff=2.0,
                    max_retry_delay=timedelta(seconds=cfg.max_retry_delay_seconds))
    if downloads and cfg.download_pool:
        opts["pool"] = cfg.download_pool
    elif model and cfg.gpu_pool:
        opts["pool"] = cfg.gpu_pool
    return opts


def dag_doc(kp: KnowledgePoint) -> str:
    return (f"### {kp.path}\n\n- knowledge point: `{kp.id}`\n- search query: `{kp.query}`\n"
            f"- level: {kp.level_name}\n\nSearches videos, runs one task chain per video "
            f"({' → '.join(t.task_id for t in TASK_PLAN)}), then packs the dataset.")


def dag_description(kp: KnowledgePoint) -> str:
    """One line for the DAG list: what the DAG collects."""
    return f"Textbook videos for {kp.name!r} ({kp.level_name}), searched as {kp.query!r}"


def dag_tags(kp: KnowledgePoint) -> set[str]:
    return {f"subject:{kp.subject}", f"course:{kp.course}", f"level:{kp.level_name.replace(' ', '-')}"}


def build_dag(kp: KnowledgePoint, cfg: DagSettings, parts: Asset, defaults: dict[str, Any] | None = None) -> DAG:
    """One knowledge point's DAG, built through Airflow's constructors."""
    with DAG(
        dag_id=kp.dag_id,
        schedule=schedule_for(kp, cfg),
        start_date=START,
        catchup=False,
        max_active_runs=1,
        dag_display_name=kp.path,
        description=dag_description(kp),
        tags=dag_tags(kp),
        doc_md=dag_doc(kp),
        params=PARAMS,
        default_args={"owner": cfg.owner, "retries": 0},
        **(defaults or {}),
    ) as dag:
        search = SearchOperator(
            task_id="search", kp_id=kp.id, queue=cfg.default_queue, retries=cfg.retries,
            retry_delay=timedelta(seconds=cfg.retry_delay_seconds), retry_exponential_backoff=2.0,
            execution_timeout=timedelta(minutes=cfg.cpu_timeout_minutes))

        @task_group(group_id="video")
        def video(video_id: str) -> None:
            chain(*(VideoStageOperator(video_id=video_id, **_step_options(spec, cfg)) for spec in TASK_PLAN))

        pack = PackOperator(task_id="pack", kp_id=kp.id, queue=cfg.default_queue, trigger_rule="all_done",
                            outlets=[parts], execution_timeout=timedelta(minutes=cfg.cpu_timeout_minutes))
        video.expand(video_id=search.output) >> pack
    return dag


class DagBuilder:
    """The DAGs of one file: the first built through Airflow's constructors, each other one a
    copy of it given its knowledge point's id, names, tags, doc, schedule and search.

    The DAGs differ in nothing else. A copy is unpickled from the template's pickle, made once:
    about 0.5 ms of CPU per DAG, against 2.5 ms for ``copy.deepcopy`` (pure Python over every
    attribute) and more for a build, which a 4,000-DAG folder needs to parse in seconds. Airflow
    config it would read for every DAG is read once. tests/test_dags.py checks a copy serializes
    exactly like a DAG built for the same knowledge point.
    """

    def __init__(self, cfg: DagSettings, parts: Asset) -> None:
        from airflow.sdk.configuration import conf

        self.cfg, self.parts = cfg, parts
        self.defaults = {
            "max_active_tasks": conf.getint("core", "max_active_tasks_per_dag"),
            "max_consecutive_failed_dag_runs": conf.getint("core", "max_consecutive_failed_dag_runs_per_dag"),
            "disable_bundle_versioning": conf.getboolean("dag_processor", "disable_bundle_versioning")}
        self._intervals = conf.getboolean("scheduler", "create_cron_data_intervals")
        self._template: bytes | None = None

    def _timetable(self, cron: str | None, timezone: Any) -> Any:
        """What Airflow makes of ``schedule=cron`` (airflow.sdk.definitions.dag._create_timetable)."""
        if cron is None:
            return NullTimetable()
        return CronDataIntervalTimetable(cron, timezone) if self._intervals else CronTriggerTimetable(
            cron, timezone=timezone)

    def build(self, kp: KnowledgePoint) -> DAG:
        if self._template is None:
            dag = build_dag(kp, self.cfg, self.parts, self.defaults)
            self._template = pickle.dumps(dag, protocol=pickle.HIGHEST_PROTOCOL)
            return dag
        dag = pickle.loads(self._template)  # noqa: S301 - bytes this process pickled a moment ago
        cron = schedule_for(kp, self.cfg)
        for name, value in (("dag_id", kp.dag_id), ("dag_display_name", kp.path),
                            ("description", dag_description(kp)), ("tags", dag_tags(kp)),
                            ("doc_md", dag_doc(kp)), ("schedule", cron),
                            ("timetable", self._timetable(cron, dag.timezone))):
            object.__setattr__(dag, name, value)  # attrs fields Airflow sets once, at construction
        dag.task_dict["search"].kp_id = kp.id
        dag.task_dict["pack"].kp_id = kp.id
        return dag


def _register(namespace: dict[str, Any], kps: Iterable[KnowledgePoint], settings: Settings) -> None:
    """Build the DAGs of ``kps`` into the DAG file's globals; only the one a task runs when a
    worker parses the file for a task (``get_parsing_context``)."""
    wanted = get_parsing_context().dag_id
    kps = [kp for kp in kps if wanted is None or kp.dag_id == wanted]
    if not kps:
        return
    builder = DagBuilder(settings.dags, parts_asset(settings))
    for kp in kps:
        namespace[kp.dag_id] = builder.build(kp)


def register_subject(namespace: dict[str, Any], file: str, part: int = 0, parts: int = 1) -> None:
    """The DAGs of one taxonomy subject file (of its ``part``-th share when it has ``parts``)
    into a shim's globals. Reads that file only: a broken one fails this shim alone, with the
    file's problems as its import error. A shim whose file left the taxonomy builds nothing."""
    settings = load_settings()
    path = Path(settings.taxonomy_dir or SHIPPED_DIR).expanduser() / file
    if not path.is_file():
        return
    kps = load_subject_file(path).knowledge_points
    _register(namespace, (kp for kp in kps if parts == 1 or part_of(kp.id, parts) == part), settings)


def register_unclaimed(namespace: dict[str, Any], dags_folder: Path) -> None:
    """The DAGs of the subject files no shim in ``dags_folder`` claims yet (a subject just added),
    each file read on its own. Any of them broken is this file's import error, naming the
    problems of every broken one (subject files with shims of their own are not touched)."""
    settings = load_settings()
    claimed = claimed_files(dags_folder)
    broken: list[TaxonomyError] = []
    kps: list[KnowledgePoint] = []
    for path in taxonomy_files(settings.taxonomy_dir or None):
        if path.name in claimed:
            continue
        try:
            kps += load_subject_file(path).knowledge_points
        except TaxonomyError as exc:
            broken.append(exc)
    if broken:
        hint = ("subject files without DAG files of their own share this one: run `python -m textbook.dag_files` "
                "to give each its own, so a broken one breaks only its own DAGs")
        raise TaxonomyError([p for exc in broken for p in exc.problems] + [hint])
    _register(namespace, kps, settings)
