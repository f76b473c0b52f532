"""Fixtures the integration tests share: services started on the real broker and
databases with an RPC client per person, a tap on the bus, and each service's database."""

import contextlib

import pytest
import sqlalchemy as sa

from tests import observe
from tests.conftest import AMQP_URI, database_url


class CallerClient:
    """The services as one caller reaches them (`client.case_management.get_case(...)`),
    connected at the caller's first call: a test calls as a few of the people it names,
    and each client leaves a durable reply queue on the broker for 5 minutes."""

    def __init__(self, connect):
        self._connect = connect
        self._proxy = None

    def __getattr__(self, service: str):
        return _Service(self, service)

    def proxy(self):
        if self._proxy is None:
            self._proxy = self._connect()
        return self._proxy


class _Service:
    def __init__(self, client: CallerClient, name: str):
        self._client, self._name = client, name

    def __getattr__(self, method: str):
        return getattr(getattr(self._client.proxy(), self._name), method)


@pytest.fixture
def cluster(container_factory, nameko_config, tmp_path, monkeypatch):
    """`cluster(ServiceA, ServiceB, callers=[...])` starts the services and answers an RPC
    client per caller (each call carries that caller's identity)."""
    from nameko.standalone.rpc import ClusterRpcClient

    monkeypatch.setenv("CONCORD_VAR_DIR", str(tmp_path))
    with contextlib.ExitStack() as stack:

        def client_of(caller):
            def connect():
                return stack.enter_context(
                    ClusterRpcClient(context_data=caller.as_context(), uri=AMQP_URI, timeout=30)
                )

            return CallerClient(connect)

        def start(*service_classes, callers):
            for service_class in service_classes:
                container_factory(service_class, nameko_config).start()
            return {caller: client_of(caller) for caller in callers}

        yield start


@pytest.fixture
def bus_tap():
    """Every event that crosses the bus: `bus_tap(cid, event_type=None)` answers the events
    seen so far of that referral."""
    with observe.bus_tap("#") as tap:
        yield tap


@pytest.fixture
def database():
    """Read-only looks into a service's own database, as an operator would:
    `database("case_management")` is its engine."""
    engines: dict[str, sa.Engine] = {}

    def connect(service: str) -> sa.Engine:
        if service not in engines:
            engines[service] = sa.create_engine(database_url(service))
        return engines[service]

    yield connect
    for engine in engines.values():
        engine.dispose()


@pytest.fixture
def run_referral(nameko_config, container_factory, tmp_path, monkeypatch):
    """`run_referral(url, **settings)`: the referral service alone, on the database at
    `url`, failed handlers retried after 0.2 s; stopped after the test."""
    from referral.service import ReferralService
    from tests.integration.referral_support import Running

    monkeypatch.setenv("CONCORD_VAR_DIR", str(tmp_path))
    started: list[Running] = []

    def run(url: str, **settings) -> Running:
        config = {
            **nameko_config,
            "DATABASE_URLS": {**nameko_config["DATABASE_URLS"], "referral": url},
            "EVENT_RETRY_BACKOFF_SECONDS": [0.2, 0.2],
            **settings,
        }
        container = container_factory(ReferralService, config)
        container.start()
        started.append(Running(container, config, url))
        return started[-1]

    yield run
    for running in started:
        running.close()


@pytest.fixture
def referral_tap():
    """Every referral event that crosses the bus, both lanes: `referral_tap(cid=None,
    event_type=None)`, and `referral_tap.routing_keys[event_id]`."""
    with observe.bus_tap(*observe.REFERRAL_EVENTS) as tap:
        yield tap
