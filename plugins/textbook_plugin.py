"""Airflow plugin: the textbook view, a FastAPI app under /textbook with a "Textbook" menu entry.

It reads OUR state database (settings from $TEXTBOOK_CONFIG and TEXTBOOK_* variables, as the
workers do), not Airflow's: per subject and knowledge point the videos by status (a backfill's
progress), per video its stages (state, attempts, error, seconds), keyframe thumbnails and, when
it failed, the Airflow task to clear; failed videos can be retried one by one, by failure
category, or all (of a knowledge point). Queries live in ``textbook.status``, retries in
``textbook.airflow_ops``; pages in ``textbook_view/templates`` (Jinja, autoescaped).

Airflow does not authenticate plugin apps, so every route depends on ``airflow_user``: the
caller's Airflow JWT (``Authorization: Bearer`` or the ``_token`` cookie the Airflow UI sets),
validated by Airflow's configured auth manager, and read access to task instances. A retry
calls Airflow's own REST API with that same token, so it can do exactly what the caller may do
in the grid (a viewer is refused by Airflow). Airflow imports plugins in every task process too,
so Airflow's API modules are imported on first request, not here.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse
from jinja2 import Environment, FileSystemLoader
from starlette.concurrency import run_in_threadpool

URL_PREFIX = "/textbook"
PAGES = Environment(loader=FileSystemLoader(Path(__file__).parent / "textbook_view" / "templates"),
                    autoescape=True, trim_blocks=True, lstrip_blocks=True)
# A keyframe's store key: videos/<id>/keyframes/<fingerprint>/<id>@<start>_<end>#<k>.jpg (or, recorded
# before fingerprint folders, images/<id>/...); only keys the stage recorded are served.
_VIDEO_IMAGE = re.compile(r"^(?:images|videos)/([A-Za-z0-9_-]+)/.+\.jpg$")  # then checked against what was recorded


def caller_token(request: Request) -> str:
    """The caller's Airflow JWT: the bearer header, else the cookie the Airflow UI sets."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        token = request.cookies.get(COOKIE_NAME_JWT_TOKEN, "")
    return token


async def airflow_user(request: Request) -> None:
    """401 without a token or with an expired one, 403 with an invalid one or without the right."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    user = await resolve_user_from_token(caller_token(request))
    allowed = await run_in_threadpool(  # an auth manager may ask its database
        get_auth_manager().is_authorized_dag, method="GET", access_entity=DagAccessEntity.TASK_INSTANCE, user=user)
    if not allowed:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "reading task instances is not allowed for this user")


@lru_cache(maxsize=1)
def context() -> Any:
    """One textbook context per api-server worker, built on the first request, on the state
    database and bucket the task workers use (Airflow connections resolved as in the DAGs)."""
    from textbook_airflow import resolved_settings

    from textbook.context import Context

    return Context.from_settings(resolved_settings())


app = FastAPI(title="textbook", dependencies=[Depends(airflow_user)], docs_url=None, redoc_url=None,
              openapi_url=None)


def render(request: Request, template: str, **values: Any) -> HTMLResponse:
    """A page; its links keep whatever prefix Airflow is served under (``[api] base_url``)."""

    def link(name: str, **params: str) -> str:
        return request.url_for(name, **params).path

    airflow_base = request.scope.get("root_path", "").removesuffix(URL_PREFIX)  # for links to DAG pages
    return HTMLResponse(PAGES.get_template(template).render(link=link, airflow_base=airflow_base, **values))


def _not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, what)


@app.get("/", name="index")
def index(request: Request) -> HTMLResponse:
    from textbook import status as st

    ctx = context()
    return render(request, "index.html", subjects=st.subject_progress(ctx), statuses=st.STATUSES,
                  failed=st.video_counts(ctx).get("failed"))


@app.get("/subjects/{subject_id}", name="subject")
def subject(request: Request, subject_id: str) -> HTMLResponse:
    from textbook import status as st
    from textbook.taxonomy import TaxonomyLookupError

    ctx = context()
    try:
        kps = ctx.taxonomy.select(subject=subject_id)
    except TaxonomyLookupError as exc:
        raise _not_found(str(exc)) from None
    return render(request, "subject.html", subject_id=subject_id, rows=st.kp_progress(ctx, kps),
                  statuses=st.STATUSES)


@app.get("/kps/{kp_id}", name="kp")
def knowledge_point(request: Request, kp_id: str) -> HTMLResponse:
    from textbook.taxonomy import TaxonomyLookupError

    ctx = context()
    try:
        kp = ctx.taxonomy.get(kp_id)
    except TaxonomyLookupError as exc:
        raise _not_found(str(exc)) from None
    from textbook import status as st

    failed = st.failed_videos(ctx, [kp.id])
    return render(request, "kp.html", kp=kp, videos=ctx.db.videos(kp_ids=[kp.id]), failed=failed,
                  categories=st.by_category(failed), datasets=st.dataset_progress(ctx, [kp.id]))


@app.get("/datasets", name="datasets")
def datasets(request: Request) -> HTMLResponse:
    from textbook import status as st

    return render(request, "datasets.html", datasets=st.dataset_progress(context()))


@app.get("/videos/{video_id}", name="video")
def video(request: Request, video_id: str) -> HTMLResponse:
    from textbook import status as st
    from textbook.store import LocalStore

    ctx = context()
    state = st.video_state(ctx, video_id)
    if state is None:
        raise _not_found(f"unknown video {video_id!r}")
    local = isinstance(ctx.store, LocalStore)  # a local file is served below; S3 gives presigned URLs

    def src(key: str) -> str:
        return request.url_for("image", key=quote(key)).path if local else ctx.store.url(key)

    thumbs = [(key, src(key)) for key in state.keyframes]
    return render(request, "video.html", v=state, thumbs=thumbs, datasets=st.video_examples(ctx, video_id), src=src)


@app.get("/failed", name="failed")
def failed(request: Request) -> HTMLResponse:
    from textbook import status as st

    videos = st.failed_videos(context())
    return render(request, "failed.html", videos=videos, categories=st.by_category(videos))


def _api_url(request: Request) -> str:
    """Airflow's REST API: ``airflow.api_url`` when set, else this api-server as the caller reached it."""
    configured = context().settings.airflow.api_url
    return configured or str(request.base_url).rstrip("/") + request.scope.get("root_path", "").removesuffix(
        URL_PREFIX)


@app.post("/retry", name="retry")
async def retry(request: Request) -> HTMLResponse:
    """Retry failed videos through Airflow's REST API as the caller: the ``video_id`` fields, or
    every failed video (of ``kp``, of ``category``) with ``all``. Each clears only its own map
    index's failed task and downstream, so the other videos are not run again."""
    from textbook import status as st
    from textbook.airflow_api import AirflowApiError, AirflowClient
    from textbook.airflow_ops import retry_videos

    origin = request.headers.get("Origin")
    if origin and origin != str(request.base_url).rstrip("/"):  # a form posted from another site
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"retry refused: posted from {origin}")
    form = await request.form()
    ctx = context()
    kp_id, category = form.get("kp") or None, form.get("category") or None
    if form.get("all"):
        ids = [f.video_id for f in st.failed_videos(ctx, [kp_id] if kp_id else None, category)]
    else:
        ids = [str(v) for v in form.getlist("video_id")]
    if not ids:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "no failed video selected: send video_id, or all")
    client = AirflowClient.with_token(_api_url(request), caller_token(request))
    try:
        report = await run_in_threadpool(retry_videos, client, ctx, ids)
    except AirflowApiError as exc:
        code = exc.status if exc.status in (401, 403) else status.HTTP_502_BAD_GATEWAY
        raise HTTPException(code, f"retry through Airflow failed: {exc}") from None
    return render(request, "retried.html", report=report, kp_id=kp_id, category=category)


@app.get("/images/{key:path}", name="image")
def image(key: str) -> FileResponse:
    """An image from the local store: only a key the video's keyframes stage, or a stage of a
    derived dataset, recorded."""
    from textbook import status as st
    from textbook.store import MissingArtifact

    ctx = context()
    match = _VIDEO_IMAGE.match(key)
    if not match:
        raise _not_found("not an image key of a video")
    video_id = match.group(1)
    if key not in st.image_keys(ctx, video_id):
        raise _not_found(f"no image {key!r} recorded")
    try:
        with ctx.store.local_path(key) as path:
            return FileResponse(path, media_type="image/jpeg")
    except MissingArtifact:
        raise _not_found(f"image {key!r} is not in the store") from None


@app.get("/benchmarks", name="benchmarks")
def benchmarks(request: Request) -> HTMLResponse:
    """Training runs and benchmark runs with their headline averages (textbook.train/benchmark registries)."""
    from textbook.benchmark import registry as bench
    from textbook.train import registry as train

    ctx = context()
    return render(request, "benchmarks.html", trains=train.runs(ctx.db), benches=bench.runs(ctx.db))


@app.get("/benchmarks/{run_id}", name="benchmark_page")
def benchmark_page(run_id: str) -> FileResponse:
    """The run's page (tables and galleries), from the results folder the run recorded."""
    from urllib.parse import unquote, urlparse

    from textbook.state.train_models import BenchmarkRunRow

    with context().db.session() as s:
        row = s.get(BenchmarkRunRow, run_id)
    uri = urlparse(row.results_uri) if row is not None else None
    page = Path(unquote(uri.path)) / "index.html" if uri is not None and uri.scheme == "file" else None
    if page is None or not page.is_file():
        raise _not_found(f"no benchmark page for {run_id!r}")
    return FileResponse(page, media_type="text/html")


class TextbookPlugin(AirflowPlugin):
    name = "textbook"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "textbook"}]
    # Embedded in the UI (an iframe at /plugin/textbook); href is relative to Airflow's base URL.
    external_views = [{"name": "Textbook", "href": "textbook/", "url_route": "textbook", "destination": "nav",
                       "category": "browse"}]
