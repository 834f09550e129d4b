"""A small client for Airflow 3's public REST API (v2), over urllib: no Airflow import.

The library never imports Airflow, so commands that act on a running Airflow (`textbook retry`,
`textbook backfill`) go through its api-server like any other client: a JWT from ``POST
/auth/token`` (username and password; the SimpleAuthManager and FAB both serve it), then
``Authorization: Bearer`` on every ``/api/v2`` call. An expired token is renewed once, on the
first 401. Every failure names the method, the path, the HTTP status and Airflow's own reason.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Iterator, Mapping

from textbook.config import ConfigError, Settings

PAGE = 100  # items per page when listing; the API's default maximum is 100


class AirflowApiError(RuntimeError):
    """Airflow answered with an error, or could not be reached."""

    def __init__(self, method: str, path: str, status: int | None, detail: str) -> None:
        self.method, self.path, self.status, self.detail = method, path, status, detail
        where = f"HTTP {status}" if status is not None else "unreachable"
        super().__init__(f"Airflow API {method} {path}: {where}: {detail}")


def _detail(body: bytes) -> str:
    """Airflow's reason from an error body: FastAPI's ``detail`` (a string or a list of problems)."""
    try:
        detail = json.loads(body).get("detail", "")
    except (ValueError, AttributeError):
        return body.decode(errors="replace").strip()[:300]
    if isinstance(detail, list):  # validation errors: [{"loc": [...], "msg": ...}, ...]
        return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg', '')}"
                         if isinstance(d, dict) else str(d) for d in detail)
    return str(detail)


def segment(value: str) -> str:
    """One path segment, escaped: run ids carry ':' and '+'."""
    return urllib.parse.quote(value, safe="")


class AirflowClient:
    """Calls to one api-server with one user's credentials."""

    def __init__(self, api_url: str, username: str, password: str, timeout: float = 30.0) -> None:
        if not api_url.startswith(("http://", "https://")):
            raise ConfigError(f"airflow.api_url: expected an http(s) URL, got {api_url!r}")
        self.api_url = api_url.rstrip("/")
        self.username = username
        self._password = password
        self.timeout = timeout
        self._token: str | None = None

    @classmethod
    def with_token(cls, api_url: str, token: str, timeout: float = 30.0) -> "AirflowClient":
        """Calls as the holder of ``token`` (a user's own JWT, which the plugin forwards), with that
        user's permissions; it is not renewed: a 401 is the caller's to act on."""
        client = cls(api_url, "", "", timeout)
        client._token = token
        return client

    @classmethod
    def from_settings(cls, settings: Settings) -> "AirflowClient":
        cfg = settings.airflow
        if not cfg.api_url:
            raise ConfigError("airflow.api_url is not set (TEXTBOOK_AIRFLOW__API_URL): no Airflow API to call")
        if not cfg.username:
            raise ConfigError("airflow.username is not set (TEXTBOOK_AIRFLOW__USERNAME)")
        password = os.environ.get(cfg.password_env, "")
        if not password:
            raise ConfigError(f"airflow.password_env: the variable {cfg.password_env} holding the password "
                              f"of Airflow user {cfg.username!r} is not set")
        return cls(cfg.api_url, cfg.username, password, cfg.timeout)

    # -- transport ----------------------------------------------------------------------------

    def _send(self, method: str, path: str, params: Mapping[str, Any] | None, body: Any,
              token: str | None) -> Any:
        url = self.api_url + path
        if params:
            url += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise AirflowApiError(method, path, exc.code, _detail(exc.read())) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AirflowApiError(method, path, None, f"{reason} (airflow.api_url is {self.api_url})") from None
        return json.loads(payload) if payload else None

    def token(self) -> str:
        """A JWT for this user (cached until Airflow refuses it)."""
        if self._token is None:
            answer = self._send("POST", "/auth/token", None,
                                {"username": self.username, "password": self._password}, None)
            self._token = answer["access_token"]
        return self._token

    def call(self, method: str, path: str, params: Mapping[str, Any] | None = None, body: Any = None) -> Any:
        """One API call; a 401 (expired token) gets a new token and one more try."""
        try:
            return self._send(method, path, params, body, self.token())
        except AirflowApiError as exc:
            if exc.status != 401 or not self.username:  # a forwarded token cannot be renewed here
                raise
            self._token = None
            return self._send(method, path, params, body, self.token())

    def pages(self, path: str, key: str, params: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list endpoint (``limit``/``offset``, ``total_entries``)."""
        offset = 0
        while True:
            answer = self.call("GET", path, {**(params or {}), "limit": PAGE, "offset": offset})
            items = answer[key]
            yield from items
            offset += len(items)
            if not items or offset >= answer["total_entries"]:
                return

    # -- the endpoints textbook uses ------------------------------------------------------------

    def dags(self, dag_id_prefix: str) -> list[dict[str, Any]]:
        """DAGs whose id starts with the prefix (the API also strips trailing '_': filter exactly)."""
        return list(self.pages("/api/v2/dags", "dags", {"dag_id_prefix_pattern": dag_id_prefix}))

    def set_paused(self, dag_id: str, paused: bool) -> dict[str, Any]:
        return self.call("PATCH", f"/api/v2/dags/{segment(dag_id)}", {"update_mask": "is_paused"},
                         {"is_paused": paused})

    def dag(self, dag_id: str) -> dict[str, Any]:
        return self.call("GET", f"/api/v2/dags/{segment(dag_id)}")

    def trigger(self, dag_id: str, run_id: str, note: str | None = None,
                logical_date: str | None = None) -> dict[str, Any]:
        """A manual run now; with no logical date unless given, so runs of one DAG never collide on it."""
        body: dict[str, Any] = {"dag_run_id": run_id, "logical_date": logical_date}
        if note:
            body["note"] = note
        return self.call("POST", f"/api/v2/dags/{segment(dag_id)}/dagRuns", body=body)

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.call("GET", f"/api/v2/dags/{segment(dag_id)}/dagRuns/{segment(run_id)}")

    def dag_runs(self, dag_id_prefix: str, **filters: Any) -> list[dict[str, Any]]:
        """Runs of every DAG whose id starts with the prefix, with the API's filters (``state``
        may be a list; ``run_id_prefix_pattern``...); the caller filters the DAG ids exactly."""
        return list(self.pages("/api/v2/dags/~/dagRuns", "dag_runs", {"dag_id_prefix_pattern": dag_id_prefix,
                                                                         **filters}))

    def task_instances(self, dag_id: str, run_id: str = "~", **filters: Any) -> list[dict[str, Any]]:
        """Task instances of one run (``~``: of every run), with the API's query filters."""
        path = f"/api/v2/dags/{segment(dag_id)}/dagRuns/{segment(run_id)}/taskInstances"
        return list(self.pages(path, "task_instances", filters))

    def clear_task_instances(self, dag_id: str, run_id: str, task_ids: list[str | tuple[str, int]], *,
                             include_downstream: bool, only_failed: bool, dry_run: bool = False) -> list[dict]:
        """Clear task instances of one run (``(task_id, map_index)`` for one mapped instance);
        returns the instances cleared, or that would be with ``dry_run``."""
        body = {"dag_run_id": run_id, "task_ids": [list(t) if isinstance(t, tuple) else t for t in task_ids],
                "include_downstream": include_downstream, "only_failed": only_failed, "dry_run": dry_run}
        return self.call("POST", f"/api/v2/dags/{segment(dag_id)}/clearTaskInstances", body=body)["task_instances"]
