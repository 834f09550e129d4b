"""The textbook plugin inside a real Airflow api-server: refused without Airflow authentication,
and with it, the state of our database (not Airflow's) escaped into HTML, with thumbnails; and the
summaries of textbook.status it shows."""

from __future__ import annotations

import io
import urllib.error
import urllib.parse
import uuid
import urllib.request

import pytest
from PIL import Image

from textbook import keys, status
from textbook.context import Context
from textbook.records import Video

EVIL = '<script>alert("x")</script> & <b>bold</b>'
KEYFRAMES = [f"videos/pt_done/keyframes/0123abcd/{keys.keyframe_name('pt_done', 0.0, 12.5, k)}" for k in (1, 2)]
INFO = "videos/pt_done/download/0123abcd/info.json"
CYCLES = "videos/pt_done/qa_cycles/0123abcd/qa_cycles.json"
PAUSE_FRAME = "videos/pt_done/qa_cycles/0123abcd/pt_done_q0_0.jpg"


def _jpeg(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), (shade, 0, 0)).save(buf, format="JPEG")
    return buf.getvalue()


def _stage(ctx: Context, vid: str, stage: str, status: str, **kwargs) -> None:
    token = uuid.uuid4().hex
    assert ctx.db.claim(vid, stage, "cfg", token)
    ctx.db.finish(vid, stage, status, token, **kwargs)


def fill(ctx: Context, kp_id: str) -> None:
    """One video failed at transcript, one done with two keyframes, both found by ``kp_id``."""
    ctx.db.upsert_knowledge_points([ctx.taxonomy.get(kp_id)])
    ctx.db.add_video(Video("pt_fail", "https://example.org/fail", source="urls", title=EVIL), kp_id)
    _stage(ctx, "pt_fail", "download", "done")
    _stage(ctx, "pt_fail", "audio", "done")
    _stage(ctx, "pt_fail", "transcript", "failed", error=EVIL)
    ctx.db.set_video_status("pt_fail", "failed", f"transcript: {EVIL}")
    ctx.db.add_video(Video("pt_done", "https://example.org/done", source="urls", title="Fine"), kp_id)
    refs = [ctx.store.put_bytes(key, _jpeg(50 * n)) for n, key in enumerate(KEYFRAMES, 1)]
    ctx.store.put_json(INFO, {"media_key": "videos/pt_done/download/0/media.mp4"})
    _stage(ctx, "pt_done", "keyframes", "done", artifacts=[r.to_dict() for r in refs])
    frame = ctx.store.put_bytes(PAUSE_FRAME, _jpeg(200))
    doc = ctx.store.put_json(CYCLES, {"entries": [{"entry_id": "pt_done_q0", "question": f"Where is it? {EVIL}",
                                                   "answer": "On the hat.", "transcript": "Look closely.",
                                                   "frames": [{"key": PAUSE_FRAME, "timestamp": 3.0}]}]})
    _stage(ctx, "pt_done", "qa_cycles", "done", artifacts=[frame.to_dict(), doc.to_dict()],
           result={"pauses": 2, "cycles": 1, "dropped": 1, "frames": 1})
    _stage(ctx, "pt_done", "qa_mcq", "done", result={"not_run": "no LLM configured"})
    _stage(ctx, "pt_fail", "qa_cycles", "done", result={"not_run": "qa.enabled is off"})
    ctx.db.set_video_status("pt_done", "done")


def test_status_summaries(ctx):
    kp = "demo.intro.basics.lectures"
    fill(ctx, kp)
    demo = next(s for s in status.subject_progress(ctx) if s.id == "demo")
    assert (demo.knowledge_points, demo.searched, demo.counts.by_status) == (1, 1, {"done": 1, "failed": 1})
    [row] = status.kp_progress(ctx, ctx.taxonomy.select(subject="demo"))
    assert row.searched and row.counts.total == 2
    [failed] = status.failed_videos(ctx)
    assert (failed.video_id, failed.stage, failed.task_id) == ("pt_fail", "transcript", "video.audio_transcript")
    assert failed.dag_ids == ("textbook__demo__intro__basics__lectures",)
    state = status.video_state(ctx, "pt_done")
    assert state.keyframes == tuple(KEYFRAMES) and state.failed is None
    assert [status.airflow_task(s) for s in ("download", "audio", "refine", "visual_filter", "gone")] == [
        "video.metadata_download", "video.audio_transcript", "video.filters_refine", "video.visual_filter", ""]


def test_derived_datasets_are_counted_and_browsed_from_the_state(ctx):
    kp = "demo.intro.basics.lectures"
    fill(ctx, kp)
    for scope in (None, [kp]):
        cycles, mcq = (line for line in status.dataset_progress(ctx, scope) if line.view == "sos")
        assert (cycles.stage, cycles.videos, cycles.with_items, cycles.items) == ("qa_cycles", 2, 1, 1)
        assert cycles.not_run == (("qa.enabled is off", 1),)
        assert (mcq.stage, mcq.videos, mcq.items, mcq.not_run) == ("qa_mcq", 1, 0, (("no LLM configured", 1),))
    assert all(line.videos == 0 for line in status.dataset_progress(ctx, ["other.kp"]))
    found = {d.stage: d for d in status.video_examples(ctx, "pt_done")}
    [example] = found["qa_cycles"].examples
    assert (example.lines, example.images) == (("Answer: On the hat.", "Context: Look closely."), (PAUSE_FRAME,))
    assert found["qa_mcq"].not_run == "no LLM configured" and not found["qa_mcq"].examples
    assert status.image_keys(ctx, "pt_done") == {*KEYFRAMES, PAUSE_FRAME}
    ctx.store.delete(CYCLES)  # a store that lost the output: the page says so instead of failing
    assert status.video_examples(ctx, "pt_done")[0].not_run.startswith("its output is missing")


@pytest.fixture(scope="module")
def view(airflow_server):
    """Our database as the plugin in the api-server reads it."""
    ctx = Context.from_settings(airflow_server.settings)
    ctx.db.upsert_knowledge_points(ctx.taxonomy.select(subject="pt"))
    fill(ctx, "pt.c.s.alpha")
    return ctx


def get(server, path: str, *, token: str | None = None, cookie: str | None = None) -> tuple[int, str, bytes]:
    request = urllib.request.Request(server.url + path)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if cookie:
        request.add_header("Cookie", f"_token={cookie}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


@pytest.mark.slow
def test_refused_without_valid_airflow_authentication(airflow_server, view):
    for path in ("/textbook/", "/textbook/videos/pt_fail", "/textbook/failed",
                 "/textbook/images/" + urllib.parse.quote(KEYFRAMES[0])):
        assert get(airflow_server, path)[0] == 401
        assert get(airflow_server, path, token="not-a-jwt")[0] == 403
        assert get(airflow_server, path, cookie="not-a-jwt")[0] == 403


@pytest.mark.slow
def test_pages_show_our_database_escaped(airflow_server, view):
    token = airflow_server.client("viewer").token()  # the least role Airflow has can read it
    status, kind, body = get(airflow_server, "/textbook/videos/pt_fail", token=token)
    page = body.decode()
    assert status == 200 and kind.startswith("text/html")
    assert "<script>" not in page and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;" in page
    assert "Failed in stage <strong>transcript</strong>" in page
    assert "<code>video.audio_transcript</code>" in page  # the Airflow task to clear
    assert 'href="/dags/textbook__pt__c__s__alpha"' in page

    # The UI's session cookie works as well as a bearer token.
    status, _, body = get(airflow_server, "/textbook/failed", cookie=token)
    assert status == 200 and "pt_fail" in body.decode() and "<script>" not in body.decode()

    status, _, body = get(airflow_server, "/textbook/subjects/pt", token=token)
    page = body.decode()
    assert status == 200 and "2 of 2 knowledge points searched so far" in page
    assert 'class="n failed">1<' in page and 'class="n done">1<' in page
    assert get(airflow_server, "/textbook/", token=token)[0] == 200
    assert get(airflow_server, "/textbook/kps/pt.c.s.alpha", token=token)[0] == 200
    assert get(airflow_server, "/textbook/videos/nope", token=token)[0] == 404
    assert get(airflow_server, "/textbook/subjects/nope", token=token)[0] == 404


@pytest.mark.slow
def test_keyframe_thumbnails_are_served_and_nothing_else(airflow_server, view):
    token = airflow_server.client("viewer").token()
    page = get(airflow_server, "/textbook/videos/pt_done", token=token)[2].decode()
    srcs = [f"/textbook/images/{urllib.parse.quote(key)}" for key in KEYFRAMES]
    assert all(f'src="{src}"' in page for src in srcs) and "Keyframes (2)" in page
    status, kind, body = get(airflow_server, srcs[0], token=token)
    assert (status, kind, body) == (200, "image/jpeg", view.store.get_bytes(KEYFRAMES[0]))
    page = get(airflow_server, "/textbook/videos/pt_done", token=token)[2].decode()
    assert "Question-pause-answer cycles (<code>sos</code>, stage <code>qa_cycles</code>): 1" in page
    assert "&lt;script&gt;" in page and "<script>" not in page and "Did not run: no LLM configured" in page
    pause = f"/textbook/images/{urllib.parse.quote(PAUSE_FRAME)}"
    assert f'src="{pause}"' in page and get(airflow_server, pause, token=token)[2] == view.store.get_bytes(PAUSE_FRAME)
    datasets = get(airflow_server, "/textbook/datasets", token=token)[2].decode()
    assert "<td>question-pause-answer cycles</td>" in datasets and "1 × qa.enabled is off" in datasets
    for key in (INFO,  # in the store, but not a keyframe
                keys.keyframe("pt_done", 0.0, 12.5, 3),  # a keyframe key no stage recorded
                "images/pt_done/../../state.db", "images/pt_fail/pt_done@0.0_12.5#1.jpg"):
        assert get(airflow_server, "/textbook/images/" + urllib.parse.quote(key), token=token)[0] == 404


@pytest.mark.slow
def test_plugin_registers_its_app_and_menu_entry(airflow_server):
    plugins = airflow_server.client().call("GET", "/api/v2/plugins")["plugins"]
    plugin = next(p for p in plugins if p["name"] == "textbook")
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/textbook"]
    assert [(v["name"], v["href"], v["url_route"]) for v in plugin["external_views"]] == [
        ("Textbook", "textbook/", "textbook")]
    assert not airflow_server.client().call("GET", "/api/v2/plugins/importErrors")["import_errors"]
