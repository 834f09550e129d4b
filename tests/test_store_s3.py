"""S3Store and the S3 export against a real S3 server (s3rver) on loopback."""

from __future__ import annotations

import json

import hashlib
import os
import socket
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from export_helpers import ClipSpec, add_done_video, add_knowledge_point, snapshot
from media_helpers import register_downloaded, silence_wav, video_with_audio
from s3_server import start_s3

from textbook import keys
from textbook.artifacts import output_key
from textbook.config import StoreSettings, load_settings
from textbook.context import Context
from textbook.export import export_dataset, validate_dataset
from textbook.export.files import owned_files, owned_folders
from textbook.records import Video
from textbook.runner import StageFailed, run_stage
from textbook.stages import audio
from textbook.stages.base import StageResult, stage
from textbook.state import StateDB
from textbook.store import LocalStore, MissingArtifact, open_store
from textbook.store.s3 import ChecksumMismatch, MiB, S3Store, S3StoreError


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with start_s3(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def aws_env(s3, monkeypatch, tmp_path):
    """The server's credentials in the standard boto3 environment, and no stray AWS config files."""
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def bucket(s3) -> str:
    return s3.create_bucket(f"t-{uuid.uuid4().hex[:12]}")


def store_settings(s3, bucket: str, **over) -> StoreSettings:
    return StoreSettings(**{"kind": "s3", "bucket": bucket, "root": "artifacts", "endpoint_url": s3.endpoint_url,
                            "region": "us-east-1", "path_style": True, **over})


@pytest.fixture
def store(s3, bucket, aws_env) -> S3Store:
    return S3Store.from_settings(store_settings(s3, bucket))


def count_calls(store: S3Store, operation: str) -> list[int]:
    """A one-element counter of the store's client calls to ``operation``."""
    calls = [0]

    def seen(**_kwargs) -> None:
        calls[0] += 1

    store.client.meta.events.register(f"before-call.s3.{operation}", seen)
    return calls


def server_sha256(s3, bucket: str, key: str) -> str:
    return hashlib.sha256(s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()


def test_open_store_builds_an_s3_store_from_settings(s3, bucket, aws_env):
    settings = load_settings(environ={"TEXTBOOK_STORE__KIND": "s3", "TEXTBOOK_STORE__BUCKET": bucket,
                                      "TEXTBOOK_STORE__ENDPOINT_URL": s3.endpoint_url,
                                      "TEXTBOOK_STORE__PATH_STYLE": "true", "TEXTBOOK_STORE__ROOT": "/a/b/"})
    store = open_store(settings)
    assert isinstance(store, S3Store) and store.uri == f"s3://{bucket}/a/b"
    assert store.put_bytes("x.txt", b"x").size == 1
    assert s3.client().get_object(Bucket=bucket, Key="a/b/x.txt")["Body"].read() == b"x"
    with pytest.raises(ValueError, match="store.bucket: required"):
        open_store(settings.replace(store={"bucket": ""}))
    with pytest.raises(ValueError, match="store.root: invalid S3 key prefix"):
        S3Store.from_settings(store_settings(s3, bucket, root="a/../b"))
    with pytest.raises(ValueError, match="store.multipart_threshold_mb: must be at least 1, got 0"):
        S3Store.from_settings(store_settings(s3, bucket, multipart_threshold_mb=0))


def test_round_trip_bytes_json_exists_list_delete(s3, bucket, store):
    key = keys.keyframe("vid_1", 0.0, 12.5, 1)  # '@' and '#' in the key
    ref = store.put_bytes(key, b"\xff\xd8jpeg bytes")
    assert ref.to_dict() == {"key": key, "sha256": hashlib.sha256(b"\xff\xd8jpeg bytes").hexdigest(), "size": 12}
    assert store.get_bytes(key) == b"\xff\xd8jpeg bytes"
    doc = {"clips": [{"text": "Grüße", "n": 1}]}
    jref = store.put_json("videos/vid_1/clips.json", doc)
    assert store.get_json("videos/vid_1/clips.json") == doc
    assert store.exists(key) and not store.exists("videos/vid_1/other.json")
    assert store.checksum(key) == ref.sha256 and store.checksum(jref.key) == jref.sha256

    head = s3.client().head_object(Bucket=bucket, Key=f"artifacts/{key}")
    assert head["Metadata"] == {"sha256": ref.sha256}
    assert head["ETag"].strip('"') == hashlib.md5(b"\xff\xd8jpeg bytes").hexdigest()

    assert list(store.list("")) == ["images/vid_1/vid_1@0.0_12.5#1.jpg", "videos/vid_1/clips.json"]
    store.delete(key)
    store.delete(key)  # deleting what is gone is fine, as in LocalStore
    assert not store.exists(key)
    assert list(store.list("images")) == []


def test_put_file_and_local_path_keep_bytes_and_suffix(store, tmp_path):
    src = tmp_path / "media.mp4"
    src.write_bytes(os.urandom(3000))
    ref = store.put_file("videos/v/media.mp4", src)
    assert ref.size == 3000 and ref.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    with store.local_path("videos/v/media.mp4") as path:
        assert path.suffix == ".mp4" and path.read_bytes() == src.read_bytes()
    assert not path.exists()  # the download is removed afterwards


def test_a_large_file_goes_up_in_parts_and_is_verified(s3, bucket, aws_env, tmp_path):
    store = S3Store.from_settings(store_settings(s3, bucket, multipart_threshold_mb=1, multipart_chunk_mb=5))
    parts = count_calls(store, "UploadPart")
    completed = count_calls(store, "CompleteMultipartUpload")
    single = count_calls(store, "PutObject")
    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(11 * MiB))  # 5 + 5 + 1 MiB
    ref = store.put_file("videos/v/media.mp4", big)
    assert (parts[0], completed[0], single[0]) == (3, 1, 0)
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    assert ref.sha256 == digest and ref.size == 11 * MiB
    assert server_sha256(s3, bucket, "artifacts/videos/v/media.mp4") == digest
    assert store.checksum("videos/v/media.mp4") == digest
    with store.local_path("videos/v/media.mp4") as path:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    store.put_bytes("small.json", b"{}")  # under the threshold: one PUT
    assert (parts[0], single[0]) == (3, 1)


def overwrite_after_put(store: S3Store, s3, bucket: str, data: bytes) -> None:
    """Another writer replaces each object the store puts, between the store's PUT and its check."""
    other = s3.client()

    def note_key(params, context, **_kwargs) -> None:
        context["overwrite"] = params["Key"]

    def overwrite(context, **_kwargs) -> None:
        other.put_object(Bucket=bucket, Key=context["overwrite"], Body=data)

    store.client.meta.events.register("provide-client-params.s3.PutObject", note_key)
    store.client.meta.events.register("after-call.s3.PutObject", overwrite)


def test_an_upload_changed_before_its_check_raises(s3, bucket, store):
    overwrite_after_put(store, s3, bucket, b"someone else's bytes")
    with pytest.raises(ChecksumMismatch, match=r"upload of s3://.*/artifacts/videos/v/clips.json .* not verified"):
        store.put_bytes("videos/v/clips.json", b'{"clips": []}')


def test_an_upload_whose_first_check_sees_it_half_recorded_is_looked_at_again(s3, bucket, store):
    """s3rver once answered the HEAD after a PUT with size 0 (right ETag and metadata) while it
    finished writing: a transient state, not a failed upload."""
    seen = []

    def half_recorded(parsed, **_kwargs) -> None:
        seen.append(parsed.get("ContentLength"))
        if len(seen) == 1:
            parsed["ContentLength"] = 0

    store.client.meta.events.register("after-call.s3.HeadObject", half_recorded)
    ref = store.put_bytes("videos/v/slow.json", b'{"clips": [1]}')
    assert ref.size == 14 and len(seen) == 2 and store.get_bytes("videos/v/slow.json") == b'{"clips": [1]}'


def test_an_object_changed_behind_the_stores_back_is_detected(s3, bucket, store):
    ref = store.put_bytes("videos/v/audio.wav", b"the real audio")
    other = s3.client()
    # Same metadata, other bytes: reads refuse them.
    other.put_object(Bucket=bucket, Key="artifacts/videos/v/audio.wav", Body=b"corrupted!",
                     Metadata={"sha256": ref.sha256})
    with pytest.raises(ChecksumMismatch, match="changed behind the store's back"):
        store.get_bytes("videos/v/audio.wav")
    with pytest.raises(ChecksumMismatch), store.local_path("videos/v/audio.wav"):
        pass
    # No metadata (written by another tool): checksum is computed from the bytes, and differs.
    other.put_object(Bucket=bucket, Key="artifacts/videos/v/audio.wav", Body=b"corrupted!")
    assert store.checksum("videos/v/audio.wav") == hashlib.sha256(b"corrupted!").hexdigest() != ref.sha256
    assert store.get_bytes("videos/v/audio.wav") == b"corrupted!"  # nothing to check against


def test_presigned_url_fetches_with_plain_http(s3, bucket, aws_env):
    store = S3Store.from_settings(store_settings(s3, bucket, url_expiry_seconds=120))
    store.put_bytes("images/v/v@0.0_10.0#1.jpg", b"jpeg")
    url = store.url("images/v/v@0.0_10.0#1.jpg")
    assert url.startswith(f"{s3.endpoint_url}/{bucket}/artifacts/images/v/") and "X-Amz-Expires=120" in url
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"jpeg"
    with pytest.raises(urllib.error.HTTPError):  # the signature covers the key
        urllib.request.urlopen(url.replace("%231.jpg", "%232.jpg"))


def test_missing_keys_buckets_and_servers_are_named(s3, bucket, store, aws_env):
    for read in (store.get_bytes, store.get_json, store.checksum):
        with pytest.raises(MissingArtifact, match=rf"'videos/none.json' not found in s3://{bucket}/artifacts"):
            read("videos/none.json")
    with pytest.raises(MissingArtifact), store.local_path("videos/none.mp4"):
        pass
    assert not store.exists("videos/none.json")

    gone = S3Store.from_settings(store_settings(s3, "no-such-bucket"))
    with pytest.raises(S3StoreError, match="bucket 'no-such-bucket' does not exist at http://127.0.0.1"):
        gone.exists("videos/v/info.json")
    with pytest.raises(S3StoreError, match="bucket 'no-such-bucket' does not exist"):
        gone.put_bytes("videos/v/info.json", b"{}")

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = S3Store.from_settings(store_settings(s3, bucket, endpoint_url=f"http://127.0.0.1:{port}"))
    with pytest.raises(S3StoreError, match=rf"GET s3://{bucket}/artifacts/videos/v/info.json at "
                                           rf"http://127.0.0.1:{port}: Could not connect"):
        down.get_json("videos/v/info.json")


def test_list_pages_through_a_folder_only(s3, bucket, aws_env):
    store = S3Store(bucket, "artifacts", endpoint_url=s3.endpoint_url, region="us-east-1", path_style=True,
                    page_size=2)
    wanted = [f"frames/v1/v1@0.0_10.0#f{n}.jpg" for n in range(1, 6)]
    # Not "frames/v1.json": s3rver lists in directory-walk order, and pages would skip it (S3 would not).
    for key in [*wanted, "frames/v10/x.jpg", "frames/v2.json"]:
        store.put_bytes(key, b"x")
    S3Store(bucket, "elsewhere", client=store.client).put_bytes("frames/v1/y.jpg", b"y")
    pages = count_calls(store, "ListObjectsV2")
    assert list(store.list("frames/v1/")) == wanted == list(store.list("frames/v1"))
    assert pages[0] == 6  # 5 keys, 2 per page, for each of the two listings
    assert len(list(store.list(""))) == 7


def s3_context(tmp_path: Path, s3, bucket: str, **store_over) -> Context:
    settings = load_settings(environ={}, data_root=str(tmp_path / "data"),
                             store={"kind": "s3", "bucket": bucket, "root": "artifacts",
                                    "endpoint_url": s3.endpoint_url, "region": "us-east-1", "path_style": True,
                                    **store_over})
    db = StateDB(settings.db_url)
    db.create_schema()
    return Context(settings=settings, store=open_store(settings), db=db)


def test_a_stage_records_artifacts_with_the_sha256_the_server_holds(s3, bucket, aws_env, tmp_path):
    ctx = s3_context(tmp_path, s3, bucket)
    media = video_with_audio(tmp_path / "in.mp4", silence_wav(tmp_path / "quiet.wav", 2.0))
    register_downloaded(ctx, "vid_a", media, duration=2.0)  # media and info.json go to S3
    outcome = run_stage(audio.STAGE, "vid_a", ctx)  # media comes back through local_path, audio.wav goes up
    assert outcome.status == "done"
    [artifact] = ctx.db.run("vid_a", "audio").artifacts
    assert artifact["key"] == output_key(ctx, "vid_a", "audio", "audio.wav")
    assert artifact["sha256"] == server_sha256(s3, bucket, f"artifacts/{artifact['key']}")
    head = s3.client().head_object(Bucket=bucket, Key=f"artifacts/{artifact['key']}")
    assert head["ContentLength"] == artifact["size"] and head["Metadata"]["sha256"] == artifact["sha256"]


@stage("s3_probe")
def _probe(video: Video, ctx: Context) -> StageResult:
    return StageResult(artifacts=[ctx.store.put_json(f"videos/{video.video_id}/probe.json", {"ok": True})])


def test_an_unverified_upload_fails_the_stage_and_records_no_artifact(s3, bucket, aws_env, tmp_path):
    ctx = s3_context(tmp_path, s3, bucket)
    ctx.db.add_video(Video("vid_b", "https://example.org/b"))
    overwrite_after_put(ctx.store, s3, bucket, b"not the probe")
    with pytest.raises(StageFailed, match="ChecksumMismatch: upload of .* not verified"):
        run_stage(_probe, "vid_b", ctx)
    run = ctx.db.run("vid_b", "s3_probe")
    assert run.status == "failed" and run.artifacts == []


def owned(files: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in files.items() if k in owned_files() or k.split("/", 1)[0] in owned_folders()}


def remote_files(s3, bucket: str, prefix: str) -> dict[str, bytes]:
    client = s3.client()
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", [])
    return {o["Key"][len(prefix) + 1:]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            for o in listed}


def published(root):
    """The dataset's files: what the mirror carries (not the exporter's own bookkeeping under .textbook/)."""
    return {k: v for k, v in snapshot(root).items() if not k.startswith(".textbook/")}


@pytest.mark.parametrize("artifacts", ["s3", "local"])
def test_export_to_s3_mirrors_the_local_dataset_and_drops_stale_files(s3, bucket, aws_env, tmp_path, artifacts):
    ctx = s3_context(tmp_path, s3, bucket)  # the artifacts the exporter reads are in S3 too, or in a folder
    if artifacts == "local":
        ctx = Context(settings=ctx.settings, store=LocalStore(tmp_path / "artifacts"), db=ctx.db)
    for kp, vid in (("kp_a", "vid_a"), ("kp_b", "vid_b")):
        add_knowledge_point(ctx, kp)
        add_done_video(ctx, vid, kp, [ClipSpec(0.0, 12.0, f"First part of {vid}.", keyframes=2),
                                      ClipSpec(12.0, 25.0, f"Second part of {vid}.")])
    url = f"s3://{bucket}/datasets/v1"
    ctx = Context(settings=ctx.settings.replace(export={"root": url, "sampled_frames": True}), store=ctx.store,
                  db=ctx.db)
    s3.client().put_object(Bucket=bucket, Key="datasets/v1/NOTES.txt", Body=b"not the exporter's")

    summary = export_dataset(ctx)
    local = summary.root
    assert local == tmp_path / "data" / "dataset" and validate_dataset(local) == []
    assert summary.remote.url == url and summary.remote.deleted == 0
    assert summary.remote.uploaded == len(published(local)) and summary.remote.unchanged == 0
    remote = remote_files(s3, bucket, "datasets/v1")
    assert owned(remote) == published(local) and remote["NOTES.txt"] == b"not the exporter's"
    assert any(k.startswith("images/vid_b/") for k in remote) and any(k.startswith("frames/") for k in remote)

    again = export_dataset(ctx)  # nothing changed: nothing uploaded
    assert (again.remote.uploaded, again.remote.deleted) == (0, 0)

    only_a = export_dataset(ctx, ["kp_a"])
    remote = remote_files(s3, bucket, "datasets/v1")
    assert only_a.remote.deleted > 0 and not any("vid_b" in k for k in remote)
    assert owned(remote) == published(local) and "NOTES.txt" in remote
    assert validate_dataset(local) == []

    # Those mirrored only what they changed. One broken off (its state left incomplete) is followed
    # by a mirror of the whole folder, which puts back what went missing meanwhile.
    client = s3.client()
    client.delete_object(Bucket=bucket, Key="datasets/v1/videos.jsonl")
    (local / ".textbook" / "mirror.json").write_text(json.dumps({"url": url, "complete": False}) + "\n")
    healed = export_dataset(ctx, ["kp_a"])
    assert (healed.remote.uploaded, healed.remote.deleted) == (1, 0)
    assert owned(remote_files(s3, bucket, "datasets/v1")) == published(local)


def test_export_url_errors_are_named(s3, bucket, aws_env, tmp_path):
    ctx = s3_context(tmp_path, s3, bucket)
    for export, message in (({"root": f"s3://{bucket}/artifacts/ds"}, "lies inside the artifact store"),
                            ({"root": "s3:///ds"}, "no bucket"),
                            ({"root": f"s3://{bucket}/ds", "absolute_paths": True}, "export.absolute_paths")):
        bad = Context(settings=ctx.settings.replace(export=export), store=ctx.store, db=ctx.db)
        with pytest.raises(ValueError, match=message):
            export_dataset(bad)
