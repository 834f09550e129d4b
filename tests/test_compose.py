"""docker-compose.yaml and docker/ agree with the code.

Debian's docker-compose 1.29 validates the file (`config -q`) and resolves it (anchors, merge keys,
variables at their defaults); the resolved services are then checked against textbook.config
(every TEXTBOOK_* variable is a setting, queues, pools, connections, bucket), requirements.txt
(the pins the Dockerfiles install) and the Dockerfiles (base image, what they copy). No Docker
engine is needed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy.engine import make_url

from textbook.config import Settings, load_settings
from textbook.tasks import TASK_PLAN

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yaml"
AIRFLOW_DOCKERFILE = REPO / "docker" / "airflow.Dockerfile"
GPU_DOCKERFILE = REPO / "docker" / "gpu-worker.Dockerfile"
GPU_REQUIREMENTS = REPO / "docker" / "requirements-gpu.txt"
AIRFLOW_SERVICES = {"airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
                    "airflow-dag-processor": "dag-processor", "airflow-triggerer": "triggerer",
                    "flower": "celery flower"}
WORKERS = ("airflow-worker", "airflow-worker-gpu")


def docker_compose(*args: str, env_file: Path) -> subprocess.CompletedProcess:
    """docker-compose on our file, blind to the caller's variables and any .env file."""
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose is not installed: apt-get install docker-compose (Debian's 1.29), "
                    "or scripts/setup-system.sh docker-compose")
    return subprocess.run([exe, "-f", str(COMPOSE), "--env-file", str(env_file), *args], cwd=REPO, check=False,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(env_file.parent)},
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def services(tmp_path_factory) -> dict[str, dict[str, Any]]:
    """The services as docker-compose resolves them."""
    env_file = tmp_path_factory.mktemp("compose") / "empty.env"
    env_file.write_text("")
    checked = docker_compose("config", "-q", env_file=env_file)
    assert checked.returncode == 0, f"docker-compose config -q rejects docker-compose.yaml:\n{checked.stderr}"
    resolved = docker_compose("config", env_file=env_file)
    assert resolved.returncode == 0, resolved.stderr
    return yaml.safe_load(resolved.stdout)["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # KEY=VALUE form
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def settings_of(service: dict[str, Any]) -> Settings:
    return load_settings(environ=environment(service))


def our_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services that run our code: those given TEXTBOOK_* settings."""
    return {name: s for name, s in services.items() if any(k.startswith("TEXTBOOK_") for k in environment(s))}


def pins(path: Path) -> dict[str, str]:
    """name (normalised) -> version of each ``name==version`` line."""
    out = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)$", line.split("#")[0].strip())
        if match:
            out[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return out


def gpu_devices(service: dict[str, Any]) -> list[dict[str, Any]]:
    return ((service.get("deploy") or {}).get("resources") or {}).get("reservations", {}).get("devices", [])


def test_the_stack_has_every_service_of_the_design(services):
    assert set(services) == {"postgres", "redis", "minio", "minio-init", "airflow-init", *AIRFLOW_SERVICES, *WORKERS}
    for name, cmd in AIRFLOW_SERVICES.items():
        assert command(services[name]) == cmd.split(), name
    assert services["flower"]["profiles"] == ["flower"]
    assert [s for s in services if services[s].get("profiles")] == ["flower"]
    for name in (*AIRFLOW_SERVICES, *WORKERS):
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully", name
        assert "healthcheck" in services[name], name
    for name in ("postgres", "redis", "minio"):
        assert "healthcheck" in services[name], name
    env = environment(services["airflow-worker"])
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).scheme == "redis"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")


def test_every_url_names_a_service_of_the_stack(services):
    env = environment(services["airflow-worker"])
    urls = [env[k] for k in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND",
                             "AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
                             "AIRFLOW_CONN_TEXTBOOK_DB", "TEXTBOOK_DATABASE_URL", "TEXTBOOK_STORE__ENDPOINT_URL",
                             "TEXTBOOK_AIRFLOW__API_URL")]
    for url in urls:
        assert urlsplit(url).hostname in services, url


def test_every_textbook_variable_is_a_setting_and_all_services_agree(services):
    ours = our_services(services)
    assert set(ours) == {"airflow-init", *AIRFLOW_SERVICES, *WORKERS}
    loaded = {name: settings_of(s) for name, s in ours.items()}  # an unknown key raises ConfigError
    # Stages fingerprint the settings they read: every container must see the same ones. Only the
    # GPU worker's model-server URL (how it runs models, not what they produce) may differ.
    reference = {k: v for k, v in loaded["airflow-worker"].to_dict().items() if k != "workers"}
    for name, settings in loaded.items():
        assert {k: v for k, v in settings.to_dict().items() if k != "workers"} == reference, name


def test_worker_queues_are_the_dag_queues(services):
    dags = settings_of(services["airflow-worker"]).dags
    queues = {}
    for name in WORKERS:
        cmd = command(services[name])
        assert cmd[:2] == ["celery", "worker"], name
        queues[name] = set(cmd[cmd.index("--queues") + 1].split(","))
    assert queues == {"airflow-worker": {dags.default_queue}, "airflow-worker-gpu": {dags.gpu_queue, dags.train_queue}}
    # dags/ sends TASK_PLAN's gpu tasks to dags.gpu_queue and everything else to dags.default_queue
    assert {spec.queue for spec in TASK_PLAN} == {"default", "gpu"}


def test_the_gpu_worker_reserves_an_nvidia_gpu_and_runs_the_model_server(services):
    gpu = services["airflow-worker-gpu"]
    devices = gpu_devices(gpu)
    assert len(devices) == 1 and devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert int(devices[0]["count"]) >= 1
    assert not gpu_devices(services["airflow-worker"])
    url = settings_of(gpu).workers.model_server_url
    assert urlsplit(url).hostname in ("127.0.0.1", "localhost") and urlsplit(url).port, url
    assert settings_of(services["airflow-worker"]).workers.model_server_url == ""
    # the entrypoint the GPU image runs starts the server there, with a CLI command that exists
    entrypoint = r'^ENTRYPOINT \[.*"/opt/textbook/gpu-worker-entrypoint\.sh"\]$'
    assert re.search(entrypoint, GPU_DOCKERFILE.read_text(), re.MULTILINE)
    script = (REPO / "docker" / "gpu-worker-entrypoint.sh").read_text()
    assert 'textbook model-server --host "${host}" --port "${port}"' in script
    assert "TEXTBOOK_WORKERS__MODEL_SERVER_URL" in script
    from textbook.cli import build_parser

    args = build_parser().parse_args(["model-server", "--host", "127.0.0.1", "--port", str(urlsplit(url).port)])
    assert args.fn.__name__ == "cmd_model_server"


def test_pools_created_by_airflow_init_are_the_dag_pools(services):
    dags = settings_of(services["airflow-worker"]).dags
    script = command(services["airflow-init"])[-1]
    pools = {name: int(slots) for name, slots in re.findall(r"airflow pools set (\S+) (\d+)", script)}
    assert dags.download_pool and dags.gpu_pool, "the DAGs must name both pools in the cluster"
    assert set(pools) == {dags.download_pool, dags.gpu_pool, dags.pack_pool, dags.train_pool}
    assert pools[dags.pack_pool] == 1, "exports of the shared dataset must never overlap"
    gpus = sum(int(d["count"]) for s in services.values() for d in gpu_devices(s))
    assert pools[dags.gpu_pool] == gpus, "one gpu pool slot per reserved GPU"
    assert pools[dags.download_pool] >= 1
    assert "airflow db migrate" in script
    assert "Context.from_settings()" in script  # our state database migrated too


def test_the_bucket_is_the_one_minio_init_creates(services):
    settings = settings_of(services["airflow-worker"])
    created = re.findall(r"mc mb (?:--\S+ )*\S+?/(\S+)", command(services["minio-init"])[-1])
    assert created == [settings.store.bucket]
    assert settings.store.kind == "s3" and settings.store.path_style
    assert urlsplit(settings.store.endpoint_url).hostname == "minio"
    ports = services["minio"]["ports"]
    targets = {int(p["target"]) if isinstance(p, dict) else int(str(p).split(":")[-1]) for p in ports}
    assert urlsplit(settings.store.endpoint_url).port == 9000 and 9000 in targets  # MinIO's S3 port
    export = urlsplit(settings.export.root)
    assert (export.scheme, export.netloc) == ("s3", settings.store.bucket) and export.path.strip("/")
    env, minio = environment(services["airflow-worker"]), environment(services["minio"])
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == \
        (minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"])
    assert environment(services["minio-init"]) == minio
    assert services["airflow-init"]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    from textbook.store.s3 import S3Store

    assert S3Store.from_settings(settings.store).uri == f"s3://{settings.store.bucket}/{settings.store.root}"


def test_connections_referenced_are_defined_and_agree_with_the_settings(services):
    env = environment(services["airflow-worker"])
    settings = settings_of(services["airflow-worker"])
    referenced = {getattr(section, f.name) for section in (getattr(settings, s.name) for s in
                  dataclasses.fields(settings)) if dataclasses.is_dataclass(section)
                  for f in dataclasses.fields(section) if f.name.endswith("conn_id")} - {""}
    assert referenced == {"textbook_s3"}  # store.aws_conn_id
    for conn_id in referenced | {"textbook_db", "textbook_s3"}:
        assert f"AIRFLOW_CONN_{conn_id.upper()}" in env, conn_id
    db, state = urlsplit(env["AIRFLOW_CONN_TEXTBOOK_DB"]), make_url(settings.database_url)
    assert db.scheme in ("postgres", "postgresql")
    assert (db.hostname, db.port or 5432, db.path.strip("/"), db.username, db.password) == \
        (state.host, state.port or 5432, state.database, state.username, state.password)
    s3 = json.loads(env["AIRFLOW_CONN_TEXTBOOK_S3"])
    assert s3["conn_type"] == "aws"
    assert s3["extra"]["endpoint_url"] == settings.store.endpoint_url
    assert (s3["login"], s3["password"]) == (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
    assert s3["extra"]["config_kwargs"]["s3"]["addressing_style"] == "path"


def test_postgres_creates_the_state_database_beside_airflows(services):
    postgres = services["postgres"]
    mounts = {str(v).split(":")[1]: Path(str(v).split(":")[0]) for v in postgres["volumes"] if str(v).startswith("/")}
    init_dir = mounts["/docker-entrypoint-initdb.d"]
    sql = "\n".join(p.read_text() for p in sorted(init_dir.glob("*.sql")))
    role = re.search(r"CREATE ROLE (\w+) LOGIN PASSWORD '([^']*)';", sql)
    database = re.search(r"CREATE DATABASE (\w+) OWNER (\w+);", sql)
    state = make_url(settings_of(services["airflow-worker"]).database_url)
    assert state.drivername == "postgresql+psycopg" and state.host == "postgres"
    assert (state.username, state.password) == role.groups()
    assert (state.database, state.username) == database.groups()
    assert state.database != environment(postgres)["POSTGRES_DB"]  # not Airflow's metadata database


def test_images_are_built_from_our_dockerfiles(services):
    for name, service in services.items():
        if name in ("postgres", "redis", "minio", "minio-init"):
            assert "build" not in service, name
            continue
        build = service["build"]
        assert Path(build["context"]) == REPO, name
        expected = GPU_DOCKERFILE if name == "airflow-worker-gpu" else AIRFLOW_DOCKERFILE
        assert (Path(build["context"]) / build["dockerfile"]).resolve() == expected, name
    assert services["airflow-worker-gpu"]["image"] != services["airflow-worker"]["image"]


@pytest.mark.parametrize("dockerfile", [AIRFLOW_DOCKERFILE, GPU_DOCKERFILE], ids=lambda p: p.stem)
def test_dockerfiles_install_the_pinned_stack_our_package_dags_and_plugins(dockerfile):
    text = dockerfile.read_text()
    required = pins(REPO / "requirements.txt")
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    base = f"apache/airflow:slim-{required['apache-airflow']}-{python}"
    assert re.findall(r"^FROM (\S+)", text, re.MULTILINE) == [base]
    assert "-r /opt/textbook/requirements" in text and '"apache-airflow==${AIRFLOW_VERSION}"' in text
    assert re.search(r"^COPY --chown=airflow:0 textbook /opt/textbook/src/textbook$", text, re.MULTILINE)
    assert "pip install --no-cache-dir --no-deps /opt/textbook/src" in text
    assert re.search(r"^COPY --chown=airflow:0 dags /opt/airflow/dags$", text, re.MULTILINE)
    assert re.search(r"^COPY --chown=airflow:0 plugins /opt/airflow/plugins$", text, re.MULTILINE)
    for tool in ("ffmpeg", "tesseract-ocr", "tesseract-ocr-eng"):
        assert re.search(rf"\s{re.escape(tool)}(\s|$)", text), tool


def test_both_images_get_airflow_and_celery_from_requirements_txt():
    required = pins(REPO / "requirements.txt")
    gpu_extra = pins(GPU_REQUIREMENTS)
    for name in ("apache-airflow", "apache-airflow-core", "apache-airflow-providers-celery", "celery",
                 "faster-whisper"):
        assert name in required, name
    # The CPU image installs requirements.txt whole, torch first from the CPU index at its pin;
    # the GPU image installs it without its torch line, plus requirements-gpu.txt, which pins
    # nothing else of requirements.txt (so celery, Airflow and its providers are the same).
    cpu = AIRFLOW_DOCKERFILE.read_text()
    assert "--index-url https://download.pytorch.org/whl/cpu" in cpu
    assert "\"$(grep '^torch==' /opt/textbook/requirements.txt)\"" in cpu
    assert "-r /opt/textbook/requirements.txt" in cpu
    gpu = GPU_DOCKERFILE.read_text()
    assert "grep -v '^torch==' /opt/textbook/requirements.txt > /opt/textbook/requirements-shared.txt" in gpu
    assert "-r /opt/textbook/requirements-shared.txt -r /opt/textbook/requirements-gpu.txt" in gpu
    assert set(gpu_extra) & set(required) == {"torch"}
    assert {"whisperx", "torch", "torchaudio"} <= set(gpu_extra)
    lines = [ln for ln in GPU_REQUIREMENTS.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(lines) == len(gpu_extra), "every requirements-gpu.txt line is an exact pin"
