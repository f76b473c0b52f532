"""The referral hub running alone under test (test_referral_service.py and
test_referral_hub.py): who calls it, the running service, waiting for its handlers."""

import contextlib
import uuid
from typing import Any

import eventlet
import sqlalchemy as sa
from nameko.standalone.rpc import ClusterRpcClient
from nameko.testing.services import entrypoint_waiter

from concord_contracts import topology
from concord_kit.bus import BusPublisher
from concord_kit.identity import Caller
from concord_kit.tables import inbox
from tests.observe import wait_for

INTAKE = Caller("u-intake-1", "intake_officer", "referral_hub")
SOCIAL = Caller("u-social-1", "social_worker", "social_services")
POLICE = Caller("u-police-1", "police_liaison_officer", "justice")
COORDINATOR = Caller("u-coord-1", "coordinator", "coordination_body")


class Running:
    """The referral service started by the `run_referral` fixture, with its database."""

    def __init__(self, container, config, url):
        self.container = container
        self.config = config
        self.amqp_uri = config["AMQP_URI"]
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        self._clients: dict[tuple[Caller, Any], ClusterRpcClient] = {}
        self._proxies: dict[tuple[Caller, Any], Any] = {}

    def rpc(self, caller: Caller):
        """The referral service as `caller` sees it. One client per caller and green thread
        (a standalone client serves one call at a time), kept for the test: each client
        leaves a durable reply queue on the broker for 5 minutes."""
        key = (caller, eventlet.getcurrent())
        if key not in self._clients:
            client = ClusterRpcClient(
                context_data={**caller.as_context(), "correlation_id": f"test-{uuid.uuid4()}"},
                uri=self.amqp_uri,
                timeout=15,
            )
            self._proxies[key] = client.start()
            self._clients[key] = client
        return self._proxies[key].referral

    def rows(self, query):
        with self.engine.connect() as conn:
            return conn.execute(query).mappings().all()

    def count(self, table, *where):
        query = sa.select(sa.func.count()).select_from(table)
        for clause in where:
            query = query.where(clause)
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def send(self, body):
        publisher = BusPublisher(self.amqp_uri)
        try:
            publisher.publish(
                body, exchange=topology.EVENTS_EXCHANGE, routing_key=body["event_type"]
            )
        finally:
            publisher.close()

    def close(self):
        for client in self._clients.values():
            client.stop()
        self.engine.dispose()


@contextlib.contextmanager
def handled(service: Running, method: str, event_id: str, times: int = 1):
    """Wait (as a context manager) until `method` handled the event `times` times and, when
    it succeeded, until its change committed: events delivered together are applied in one
    transaction that commits after their handlers returned (concord_kit.events)."""
    seen = []

    def callback(worker_ctx, result, exc_info):
        if str(worker_ctx.args[0].event_id) == event_id:
            seen.append(exc_info)
        return len(seen) >= times

    with entrypoint_waiter(service.container, method, callback=callback, timeout=15) as result:
        yield result
    if seen and seen[-1] is None:
        wait_for(lambda: service.count(inbox, inbox.c.event_id == event_id))


def intake_queue_pages(referral, limit: int = 200) -> list[list[dict]]:
    """Every page of the caller's intake queue (`referral`: an RPC proxy), in order."""
    pages: list[list[dict]] = []
    query: dict = {"limit": limit}
    while True:
        page = referral.intake_queue(query)
        pages.append(page["items"])
        if page["next_cursor"] is None:
            return pages
        assert len(pages) < 10_000, "the next page never ends"
        query = {"limit": limit, "cursor": page["next_cursor"]}
