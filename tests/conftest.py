"""Test environment: the real RabbitMQ and PostgreSQL of this machine, kept apart from a
running `make run` by their own virtual host, databases and ports.

Where they are not reachable and a Docker engine is, pytest-docker starts them from
deploy/test/docker-compose.yml; otherwise the run stops with one line saying what is missing.
"""

import eventlet

eventlet.monkey_patch()  # nameko's pytest plugin no longer does it; psycopg2 needs it green

import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SERVICES = ("referral", "case_management", "justice_liaison", "cross_border", "gateway")

# CONCORD_TEST_NAMESPACE lets several test runs share one machine without touching each
# other: each gets its own virtual host, databases and HTTP port.
NAMESPACE = os.environ.get("CONCORD_TEST_NAMESPACE", "")
_SUFFIX = f"_{NAMESPACE}" if NAMESPACE else ""
VHOST = f"concord_test{_SUFFIX}"
AMQP_URI = os.environ.get("CONCORD_TEST_AMQP_URI", f"amqp://guest:guest@127.0.0.1:5672/{VHOST}")
PG_URL = os.environ.get("CONCORD_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432")
HTTP_PORT = int(
    os.environ.get("CONCORD_TEST_HTTP_PORT", str(18000 + (sum(NAMESPACE.encode()) % 50) * 10))
)


# What a run leaves for a person to read (service logs, screenshots, summaries); several
# runs share one checkout, so a namespaced run keeps its own.
ARTIFACTS = (
    REPO / "var" / "test-artifacts" / NAMESPACE if NAMESPACE else REPO / "var" / "test-artifacts"
)


def database_url(service: str) -> str:
    return f"{PG_URL}/concord_test{_SUFFIX}_{service}"


# One data key for the whole test session, shared by the services run in this process and
# the system the e2e tests start (it inherits the environment): rows sealed by one suite
# stay readable by the next, as they would be in one deployment with its one key.
if not os.environ.get("CONCORD_DATA_KEY"):
    from cryptography.fernet import Fernet

    os.environ["CONCORD_DATA_KEY"] = Fernet.generate_key().decode()


def ensure_namespace() -> None:
    """Create this namespace's virtual host and databases where missing (the default ones
    are made by deploy/local/ensure-services.sh)."""
    if shutil.which("rabbitmqctl"):
        listed = subprocess.run(
            ["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True
        )
        if VHOST not in listed.stdout.split():
            subprocess.run(["rabbitmqctl", "add_vhost", VHOST], capture_output=True, check=True)
            subprocess.run(
                ["rabbitmqctl", "set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*"],
                capture_output=True,
                check=True,
            )
    admin = sa.create_engine(f"{PG_URL}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        existing = set(conn.execute(sa.text("SELECT datname FROM pg_database")).scalars())
        for service in SERVICES:
            name = database_url(service).rsplit("/", 1)[1]
            if name not in existing:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


# Where the broker is: CONCORD_TEST_AMQP_URI's host and port (another broker than the
# machine's own can serve a run), else RabbitMQ's standard local port.
_AMQP_PARSED = urlsplit(AMQP_URI)
_AMQP_ADDRESS = (_AMQP_PARSED.hostname or "127.0.0.1", _AMQP_PARSED.port or 5672)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def backing_services(request):
    """RabbitMQ and PostgreSQL, reachable; started by pytest-docker only where needed."""
    if not (_reachable(*_AMQP_ADDRESS) and _reachable("127.0.0.1", 5432)):
        if not _docker_engine():
            pytest.exit(
                "RabbitMQ or PostgreSQL is not reachable on 127.0.0.1 and there is no Docker "
                "engine: run `make services` (or `docker compose up rabbitmq`).",
                returncode=3,
            )
        request.getfixturevalue("docker_services").wait_until_responsive(
            timeout=120,
            pause=1,
            check=lambda: _reachable(*_AMQP_ADDRESS) and _reachable("127.0.0.1", 5432),
        )
    return {"amqp_uri": AMQP_URI, "database_url": database_url}


@pytest.fixture(scope="session")
def docker_compose_file():
    return str(REPO / "deploy" / "test" / "docker-compose.yml")


def reset_database(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def reset_bus(amqp_uri: str) -> None:
    """Declare the topology in the test virtual host and empty every Concord queue."""
    from kombu import Connection

    from concord_contracts import topology

    topology.declare(amqp_uri)
    with Connection(amqp_uri) as conn:
        channel = conn.channel()
        for service in topology.CONSUMERS:
            for queue in topology.all_queues(service):
                queue(channel).purge()
        from kombu import Queue

        Queue(topology.MONITOR_QUEUE, no_declare=True)(channel).purge()


@pytest.fixture(scope="session")
def clean_environment(backing_services):
    """Fresh databases and empty queues, once per test session."""
    ensure_namespace()
    for service in SERVICES:
        reset_database(database_url(service))
    reset_bus(AMQP_URI)
    return backing_services


@pytest.fixture
def nameko_config(clean_environment):
    """The nameko config a service under test runs with (pass to container_factory)."""
    return {
        "AMQP_URI": AMQP_URI,
        "DATABASE_URLS": {service: database_url(service) for service in SERVICES},
        "RPC_TIMEOUT_SECONDS": 10,
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{HTTP_PORT + 1}",
        "max_workers": 10,
        "serializer": "json",
    }
