"""Downstream of the corpus: continual pretraining, benchmarks, and the image-shuffle ablation.

- ``textbook_pretrain`` (scheduled on the ``textbook_corpus`` asset that every ``pack`` emits, or
  triggered with params): resolve -> prepare -> train (``accelerate launch``) -> publish, which
  emits ``textbook_checkpoint``. An unchanged corpus finds its finished run and skips.
- ``textbook_benchmark`` (scheduled on ``textbook_checkpoint``): resolve the models -> evaluate
  each (mapped) -> publish the tables, which emits ``textbook_benchmark`` with headline averages.
- ``textbook_ablation_shuffle`` (manual): train and evaluate at each image-shuffle ratio (Fig. 3).

Thin: every task calls ``textbook.downstream``; heavy imports happen inside tasks.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Asset, BaseOperator, Param, get_parsing_context
from airflow.sdk.exceptions import AirflowSkipException

from textbook.config import load_settings
from textbook_airflow import resolved_settings  # plugins/ (on sys.path)

START = datetime(2026, 1, 1)
DAGS = load_settings().dags
TRAIN_QUEUE, TRAIN_POOL = DAGS.train_queue, DAGS.train_pool


def _assets() -> tuple[Asset, Asset, Asset]:
    """The corpus asset exactly as the knowledge-point DAGs declare it (``corpus_asset`` there), so a
    manual run before any ``pack`` still finds it; the checkpoint and benchmark assets under the store."""
    settings = load_settings()
    corpus = settings.export.root if settings.export.root.startswith("s3://") else settings.export_root.as_uri()
    base = settings.artifact_root.as_uri() if settings.store.kind == "local" else \
        f"s3://{settings.store.bucket}/{settings.store.root.strip('/')}".rstrip("/")
    return (Asset(name="textbook_corpus", uri=corpus), Asset(name="textbook_checkpoint", uri=f"{base}/checkpoints"),
            Asset(name="textbook_benchmark", uri=f"{base}/benchmarks"))


CORPUS, CHECKPOINT, BENCHMARK = _assets()


def _latest(context: Any, asset: Any) -> list[Any]:
    """The events that triggered this run, else the asset's latest event (a manual run)."""
    for key, events in (context.get("triggering_asset_events") or {}).items():
        if getattr(key, "name", None) == asset.name and events:
            return list(events)
    try:
        return [context["inlet_events"][asset][-1]]
    except (IndexError, KeyError):
        return []


def _mapped(ti: Any, task_id: str, n: int) -> list[Any]:
    """Every map index's return value, in map-index order (skipped ones left out)."""
    values = ti.xcom_pull(task_ids=task_id, map_indexes=list(range(n))) if n else []
    return [v for v in values if v is not None]


def _skip(exc: Exception) -> AirflowSkipException:
    return AirflowSkipException(str(exc))


class ResolveTrainRun(BaseOperator):
    """Which corpus (params, else the asset event), which run; skip when nothing is to be trained."""

    def execute(self, context: Any) -> dict:
        from textbook.downstream import train_resolve
        from textbook.train.runs import TrainSkipped

        p = context["params"]
        uri = p.get("corpus_uri") or next((e.asset.uri for e in _latest(context, CORPUS)), "")
        if not uri:
            raise AirflowSkipException("no corpus: no textbook_corpus event yet and no corpus_uri param")
        try:
            return train_resolve(resolved_settings(), uri, f"{context['dag'].dag_id}/{context['run_id']}",
                                 config_file=p.get("config_file", ""), preset=p.get("preset", ""),
                                 overrides=p.get("overrides") or {})
        except TrainSkipped as exc:
            raise _skip(exc) from None


class PrepareTraining(BaseOperator):
    def execute(self, context: Any) -> dict:
        from textbook.downstream import train_prepare

        return train_prepare(context["ti"].xcom_pull(task_ids="resolve"))


class AccelerateLaunch(BaseOperator):
    """``accelerate launch`` in its own process group, output in this task's log; killed with the task."""

    def execute(self, context: Any) -> dict:
        from textbook.downstream import train_failed, train_run

        plan = context["ti"].xcom_pull(task_ids="resolve")
        try:
            return train_run(plan, self.log.info, on_start=lambda launch: setattr(self, "_launch", launch),
                             settings=resolved_settings())
        except Exception as exc:
            train_failed(resolved_settings(), plan, f"{type(exc).__name__}: {exc}")
            raise

    def on_kill(self) -> None:
        launch = getattr(self, "_launch", None)
        if launch is not None:
            launch.terminate()


class PublishCheckpoint(BaseOperator):
    def execute(self, context: Any) -> dict:
        from textbook.downstream import train_publish

        out = train_publish(resolved_settings(), context["ti"].xcom_pull(task_ids="resolve"))
        context["outlet_events"][CHECKPOINT].extra = {"uri": out["uri"], **out["extra"]}
        return out


def _train_params() -> dict[str, Param]:
    return {"corpus_uri": Param("", type="string", description="an export folder; empty: the corpus event"),
            "preset": Param("", type="string", description="paper-llava-1.5-7b | tiny-cpu | none"),
            "config_file": Param("", type="string", description="default <data_root>/downstream.yaml"),
            "overrides": Param({}, type="object", description="train settings, e.g. {\"optim\": {\"lr\": 1e-5}}")}


def pretrain_dag() -> DAG:
    with DAG(dag_id="textbook_pretrain", schedule=[CORPUS], start_date=START, catchup=False, max_active_runs=1,
             tags=["downstream", "train"], params=_train_params(), doc_md=__doc__,
             default_args={"owner": "textbook", "retries": 0}) as dag:
        resolve = ResolveTrainRun(task_id="resolve", inlets=[CORPUS], execution_timeout=timedelta(minutes=30))
        prepare = PrepareTraining(task_id="prepare", queue=TRAIN_QUEUE, execution_timeout=timedelta(hours=6))
        train = AccelerateLaunch(task_id="train", queue=TRAIN_QUEUE, pool=TRAIN_POOL, retries=2,
                                 retry_delay=timedelta(minutes=1), execution_timeout=timedelta(hours=72))
        publish = PublishCheckpoint(task_id="publish", queue=TRAIN_QUEUE, outlets=[CHECKPOINT],
                                    execution_timeout=timedelta(hours=2))
        resolve >> prepare >> train >> publish
    return dag


class ResolveModels(BaseOperator):
    def execute(self, context: Any) -> list:
        from textbook.benchmark.run import BenchmarkSkipped
        from textbook.downstream import bench_resolve

        p = context["params"]
        checkpoints = list(p.get("checkpoints") or [])
        if not checkpoints:
            checkpoints = [{**(e.extra or {}), "uri": (e.extra or {}).get("uri") or e.asset.uri}
                           for e in _latest(context, CHECKPOINT)]
        try:
            run = bench_resolve(resolved_settings(), checkpoints, config_file=p.get("config_file", ""),
                                overrides=p.get("overrides") or {})
        except BenchmarkSkipped as exc:
            raise _skip(exc) from None
        context["ti"].xcom_push(key="run", value=run)
        return run["models"]  # mapped over by evaluate


class EvaluateModel(BaseOperator):
    template_fields = ("model",)

    def __init__(self, *, model: dict, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model

    def execute(self, context: Any) -> list:
        from textbook.downstream import bench_evaluate

        return bench_evaluate(context["ti"].xcom_pull(task_ids="resolve", key="run"), self.model, self.log.info)


class PublishBenchmark(BaseOperator):
    def execute(self, context: Any) -> dict:
        from textbook.downstream import bench_publish

        ti = context["ti"]
        run = ti.xcom_pull(task_ids="resolve", key="run")
        out = bench_publish(resolved_settings(), run, _mapped(ti, "evaluate", len(run["models"])))
        context["outlet_events"][BENCHMARK].extra = {k: out[k] for k in ("run_id", "avg_by_shot", "cheat_1shot_avg",
                                                                          "models") if k in out}
        return out


def _gpu_options() -> dict[str, Any]:
    dags = load_settings().dags
    return {"queue": dags.gpu_queue, **({"pool": dags.gpu_pool} if dags.gpu_pool else {})}


def benchmark_dag() -> DAG:
    params = {"checkpoints": Param([], type="array", description="[{uri, run_id}]; empty: the checkpoint event"),
              "config_file": Param("", type="string", description="default <data_root>/downstream.yaml"),
              "overrides": Param({}, type="object", description="benchmark settings: tasks, shots, modes, ...")}
    with DAG(dag_id="textbook_benchmark", schedule=[CHECKPOINT], start_date=START, catchup=False, max_active_runs=1,
             tags=["downstream", "benchmark"], doc_md=__doc__, default_args={"owner": "textbook", "retries": 0},
             params=params) as dag:
        models = ResolveModels(task_id="resolve", inlets=[CHECKPOINT], execution_timeout=timedelta(minutes=30))
        evaluate = EvaluateModel.partial(task_id="evaluate", execution_timeout=timedelta(hours=24),
                                         map_index_template="{{ task.model.name }}", **_gpu_options()
                                         ).expand(model=models.output)
        tables = PublishBenchmark(task_id="publish", outlets=[BENCHMARK], execution_timeout=timedelta(minutes=30))
        models >> evaluate >> tables
    return dag


class AblationRatios(BaseOperator):
    def execute(self, context: Any) -> list:
        p = context["params"]
        uri = p.get("corpus_uri") or next((e.asset.uri for e in _latest(context, CORPUS)), "")
        if not uri:
            raise AirflowSkipException("no corpus: no textbook_corpus event yet and no corpus_uri param")
        context["ti"].xcom_push(key="corpus_uri", value=uri)
        return [float(r) for r in p["ratios"]]  # mapped over by train


class TrainAtRatio(BaseOperator):
    """One ratio: resolve, prepare, train and publish (no checkpoint event: the ablation benchmarks itself)."""

    template_fields = ("ratio",)

    def __init__(self, *, ratio: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ratio = ratio

    def execute(self, context: Any) -> dict:
        from textbook.downstream import train_prepare, train_publish, train_resolve, train_run
        from textbook.train.runs import TrainSkipped

        p, settings = context["params"], resolved_settings()
        overrides = {**(p.get("overrides") or {})}
        overrides["data"] = {**overrides.get("data", {}), "shuffle_images_ratio": float(self.ratio)}
        try:
            plan = train_resolve(settings, context["ti"].xcom_pull(task_ids="corpus", key="corpus_uri"),
                                 f"{context['dag'].dag_id}/{context['run_id']}/{self.ratio}",
                                 config_file=p.get("config_file", ""), preset=p.get("preset", ""), overrides=overrides)
        except TrainSkipped as exc:
            if exc.done:  # trained before at this ratio: benchmark that checkpoint
                return {"ratio": self.ratio, **exc.done}
            raise _skip(exc) from None
        train_prepare(plan)
        train_run(plan, self.log.info, on_start=lambda launch: setattr(self, "_launch", launch), settings=settings)
        out = train_publish(settings, plan)
        return {"ratio": self.ratio, "uri": out["uri"], **out["extra"]}

    def on_kill(self) -> None:
        launch = getattr(self, "_launch", None)
        if launch is not None:
            launch.terminate()


class BenchAtRatio(BaseOperator):
    template_fields = ("trained",)

    def __init__(self, *, trained: dict, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trained = trained

    def execute(self, context: Any) -> dict:
        from textbook.downstream import bench_evaluate, bench_publish, bench_resolve

        p, settings = context["params"], resolved_settings()
        run = bench_resolve(settings, [self.trained], config_file=p.get("config_file", ""),
                            overrides=p.get("bench_overrides") or {})
        scores = [bench_evaluate(run, m, self.log.info) for m in run["models"]]
        out = bench_publish(settings, run, scores)
        return {"ratio": self.trained["ratio"], "avg_by_shot": out.get("avg_by_shot"), "run_id": out["run_id"]}


class AblationPlot(BaseOperator):
    def execute(self, context: Any) -> dict:
        from textbook.downstream import ablation_plot

        ti = context["ti"]
        return ablation_plot(resolved_settings(), _mapped(ti, "benchmark", len(ti.xcom_pull(task_ids="corpus"))))


def ablation_dag() -> DAG:
    params = {**_train_params(), "ratios": Param([0.0, 0.2, 0.5, 1.0], type="array"),
              "bench_overrides": Param({}, type="object")}
    with DAG(dag_id="textbook_ablation_shuffle", schedule=None, start_date=START, catchup=False, max_active_runs=1,
             tags=["downstream", "ablation"], doc_md=__doc__, default_args={"owner": "textbook", "retries": 0},
             params=params) as dag:
        corpus = AblationRatios(task_id="corpus", inlets=[CORPUS], execution_timeout=timedelta(minutes=10))
        trained = TrainAtRatio.partial(task_id="train", queue=TRAIN_QUEUE, pool=TRAIN_POOL,
                                       execution_timeout=timedelta(hours=72),
                                       map_index_template="ratio {{ task.ratio }}").expand(ratio=corpus.output)
        benched = BenchAtRatio.partial(task_id="benchmark", execution_timeout=timedelta(hours=24),
                                       **_gpu_options()).expand(trained=trained.output)
        plot = AblationPlot(task_id="plot", execution_timeout=timedelta(minutes=10))
        corpus >> trained >> benched >> plot
    return dag


BUILDERS = {"textbook_pretrain": pretrain_dag, "textbook_benchmark": benchmark_dag,
            "textbook_ablation_shuffle": ablation_dag}


def _register() -> None:
    wanted = get_parsing_context().dag_id  # a worker running a task builds that DAG only
    for dag_id, build in BUILDERS.items():
        if wanted is None or wanted == dag_id:
            globals()[dag_id] = build()


_register()
