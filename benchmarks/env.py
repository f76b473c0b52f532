"""Where the benchmark runs: its own RabbitMQ virtual host and PostgreSQL databases on this
machine's broker and database server, its own var directory, so that it never touches a
`make run` or a test run beside it.

    CONCORD_BENCH_AMQP_URI   default amqp://guest:guest@127.0.0.1:5672/concord_bench
    CONCORD_BENCH_PG_URL     default postgresql+psycopg2://postgres@127.0.0.1:5432
    CONCORD_BENCH_HTTP_PORT  default 18950 (the gateway of the whole-system measurements)

With CONCORD_TEST_NAMESPACE=<ns> set (as for the tests), every name gets the namespace:
vhost `concord_bench_<ns>`, databases `concord_bench_<ns>_*`, `var/bench/<ns>/`, so two
engineers' benchmark runs on one machine never empty each other's queues.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks.services_path import SERVICES_DIR

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = os.environ.get("CONCORD_TEST_NAMESPACE", "").strip()
PREFIX = f"concord_bench_{NAMESPACE}" if NAMESPACE else "concord_bench"
VAR = REPO / "var" / "bench" / NAMESPACE if NAMESPACE else REPO / "var" / "bench"
BIN = Path(sys.executable).parent
VHOST = PREFIX
AMQP_URI = os.environ.get("CONCORD_BENCH_AMQP_URI", f"amqp://guest:guest@127.0.0.1:5672/{VHOST}")
PG_URL = os.environ.get("CONCORD_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432")
HTTP_PORT = int(
    os.environ.get(
        "CONCORD_BENCH_HTTP_PORT",
        str(18950 + sum(NAMESPACE.encode()) % 1000 + 1) if NAMESPACE else "18950",
    )
)
MANAGEMENT = "http://127.0.0.1:15672/api"


def database_url(name: str) -> str:
    return f"{PG_URL}/{PREFIX}_{name}"


def ensure_vhost() -> None:
    if not shutil.which("rabbitmqctl"):
        return  # a broker elsewhere: the vhost must exist already
    listed = subprocess.run(["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True)
    if VHOST not in listed.stdout.split():
        subprocess.run(["rabbitmqctl", "add_vhost", VHOST], capture_output=True, check=True)
        subprocess.run(
            ["rabbitmqctl", "set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*"],
            capture_output=True,
            check=True,
        )


def delete_queues() -> None:
    """Empty the benchmark's virtual host of queues left by an earlier run."""
    for queue in management(f"/queues/{urllib.parse.quote(VHOST, safe='')}") or []:
        name = urllib.parse.quote(queue["name"], safe="")
        management(f"/queues/{urllib.parse.quote(VHOST, safe='')}/{name}", method="DELETE")


def fresh_database(name: str) -> str:
    """An empty database `<PREFIX>_<name>` (created where missing); its URL."""
    url = database_url(name)
    database = url.rsplit("/", 1)[1]
    admin = sa.create_engine(f"{PG_URL}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": database}
        ).first()
        if not exists:
            conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    admin.dispose()
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    return url


def management(path: str, method: str = "GET") -> Any:
    """RabbitMQ's management API (guest on localhost)."""
    request = urllib.request.Request(MANAGEMENT + path, method=method)
    request.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")  # guest:guest
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            payload = response.read()
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise
    return json.loads(payload) if payload else None


def write_config(name: str, databases: dict[str, str], extra: dict | None = None) -> Path:
    """A nameko config file for the benchmark's own services (JSON is YAML)."""
    VAR.mkdir(parents=True, exist_ok=True)
    config = {
        "AMQP_URI": AMQP_URI,
        "DATABASE_URLS": databases,
        "RPC_TIMEOUT_SECONDS": 60,
        "max_workers": 10,
        "serializer": "json",
        "LOGGING": {"version": 1, "disable_existing_loggers": False},
        **(extra or {}),
    }
    path = VAR / f"{name}.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


def nameko_config(databases: dict[str, str]) -> dict:
    return {"AMQP_URI": AMQP_URI, "DATABASE_URLS": databases, "serializer": "json"}


class Process:
    """One `nameko run` of a benchmark service, its output in var/bench/log/."""

    def __init__(self, config: Path, target: str, label: str):
        (VAR / "log").mkdir(parents=True, exist_ok=True)
        self.label = label
        self.log_path = VAR / "log" / f"{label}.log"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(SERVICES_DIR), str(REPO)])),
            "CONCORD_VAR_DIR": str(VAR),
        }
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [str(BIN / "nameko"), "run", "--config", str(config), target],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()


@contextmanager
def processes(*started: Process):
    try:
        yield started
    finally:
        for process in started:
            process.stop()


@contextmanager
def rpc(databases: dict[str, str], timeout: float = 120):
    """A nameko RPC client on the benchmark's virtual host."""
    from nameko import config
    from nameko.standalone.rpc import ClusterRpcClient

    with (
        config.patch(nameko_config(databases), clear=True),
        ClusterRpcClient(timeout=timeout) as client,
    ):
        yield client


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval=0.05) -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - still starting; say what at the end
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s ({last_error!r})")
