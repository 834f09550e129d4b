"""Airflow-side settings for textbook: the environment's, with the state database and bucket of the
Airflow connections they name. Shared by the DAGs (tasks) and the plugin view (api-server); the
plugins folder is on ``sys.path`` in every Airflow component.
"""

from __future__ import annotations

import os
import re

from airflow.sdk import BaseHook

from textbook.config import Settings, load_settings


# Progress bars of third-party libraries (tqdm, huggingface_hub downloads, faster-whisper's model
# load) write to stderr, which Airflow's task runner logs at ERROR: a healthy task looked failed.
# The stages log what they did at INFO instead (textbook.tasks).
QUIET = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


def quiet_progress_bars() -> None:
    """Turn those bars off in this process (before the libraries are imported; a variable set
    already, e.g. to see the bars, wins)."""
    for key, value in QUIET.items():
        os.environ.setdefault(key, value)


def resolved_settings() -> Settings:
    """``database_conn_id`` and ``store.aws_conn_id`` resolved through Airflow connections."""
    settings = load_settings()
    if settings.database_conn_id:
        conn = BaseHook.get_connection(settings.database_conn_id)
        url = conn.get_uri().split("?", 1)[0]
        settings = settings.replace(database_url=re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", url))
    if settings.store.aws_conn_id:
        conn = BaseHook.get_connection(settings.store.aws_conn_id)
        extra = conn.extra_dejson
        if conn.login:  # boto3 reads credentials from this process's environment
            os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = conn.login, conn.password or ""
        settings = settings.replace(store={
            "endpoint_url": extra.get("endpoint_url") or settings.store.endpoint_url,
            "region": extra.get("region_name") or settings.store.region})
    return settings
