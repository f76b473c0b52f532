"""Events applied in batches (concord_kit.events): the messages a lane received together
are applied in one transaction and acknowledged after its commit; a batch that meets a
failing event is handled again one event per transaction, so the failing one is retried,
then parked, while the others commit; a redelivered batch changes nothing. And the
connection pool's ping after idleness (concord_kit.db)."""

import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from kombu import Connection

from concord_contracts import topology
from concord_kit.bus import BusPublisher, Outgoing
from concord_kit.db import PING_AFTER_IDLE_SECONDS, make_engine
from concord_kit.events import ATTEMPT_HEADER, REASON_HEADER

sys.path.insert(0, str(Path(__file__).parent))

from tests.conftest import PG_URL, VHOST  # noqa: E402
from tests.integration.test_kit import (  # noqa: E402
    _drain,
    _pg_database,
    _probe_event,
    probe_container,
)
from tests.observe import wait_for  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def queued_probe(request, monkeypatch, nameko_config, tmp_path, container_factory):
    """The probe service, not started yet: events published before `start()` wait in its
    queue and are delivered together (one prefetch), as after a burst or a restart."""
    return probe_container(request.param, monkeypatch, nameko_config, tmp_path, container_factory)


def _publish_all(amqp_uri: str, bodies: list[dict]) -> None:
    """In one go (one wait for the broker's confirms), in this order."""
    BusPublisher(amqp_uri).publish_many(
        [
            Outgoing(
                body,
                exchange=topology.EVENTS_EXCHANGE,
                routing_key="probe.noted",
                message_id=body["event_id"],
            )
            for body in bodies
        ]
    )


def _notes(url: str) -> list[tuple[str, str]]:
    """(event_id, the inserting transaction) of every note; the transaction is PostgreSQL's
    `xmin` (None on SQLite)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    xmin = "xmin::text" if engine.dialect.name == "postgresql" else "NULL"
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT event_id, {xmin} FROM notes")).all()  # noqa: S608
    engine.dispose()
    return [(row[0], row[1]) for row in rows]


def _unacknowledged(amqp_uri: str) -> int:
    with Connection(amqp_uri) as conn:
        declared = conn.channel().queue_declare(topology.queue_name("kit_probe"), passive=True)
        return declared.message_count


def test_events_received_together_are_applied_in_one_transaction(queued_probe):
    container, config, url = queued_probe
    cid = uuid.uuid4()
    bodies = [_probe_event(cid) for _ in range(20)]
    _publish_all(config["AMQP_URI"], bodies)
    container.start()
    notes = wait_for(lambda: len(_notes(url)) == 20 and _notes(url))
    assert sorted(event_id for event_id, _ in notes) == sorted(b["event_id"] for b in bodies)
    if url.startswith("postgresql"):
        # Twenty events, far fewer transactions: the lane applied what it held together.
        assert len({xmin for _, xmin in notes}) < 10
    wait_for(lambda: _unacknowledged(config["AMQP_URI"]) == 0)  # each acknowledged


def test_a_poison_event_in_a_batch_is_parked_while_the_others_commit(queued_probe):
    container, config, url = queued_probe
    good = [_probe_event(uuid.uuid4()) for _ in range(10)]
    poison = _probe_event(uuid.uuid4(), fail=True)
    bodies = good[:5] + [poison] + good[5:]
    _publish_all(config["AMQP_URI"], bodies)
    container.start()
    notes = wait_for(lambda: len(_notes(url)) >= 10 and _notes(url))
    assert sorted(event_id for event_id, _ in notes) == sorted(b["event_id"] for b in good)
    parked = wait_for(lambda: _drain(config["AMQP_URI"], topology.dead_queue_name("kit_probe")))
    assert [m.payload["event_id"] for m in parked] == [poison["event_id"]]
    assert parked[0].headers[REASON_HEADER].startswith("Conflict")
    assert parked[0].headers[ATTEMPT_HEADER] == 3  # the first try and two retries
    # Nothing of the poison was applied, and nothing else twice.
    assert len(_notes(url)) == 10


def test_a_redelivered_batch_changes_nothing(queued_probe):
    container, config, url = queued_probe
    bodies = [_probe_event(uuid.uuid4()) for _ in range(10)]
    # The same ten twice in one delivery (a batch that met its own duplicates)...
    _publish_all(config["AMQP_URI"], bodies + bodies)
    container.start()
    wait_for(lambda: len(_notes(url)) >= 10)
    # ...and once more afterwards, as a redelivery after a lost acknowledgement would.
    _publish_all(config["AMQP_URI"], bodies)
    marker = _probe_event(uuid.uuid4())
    _publish_all(config["AMQP_URI"], [marker])
    wait_for(lambda: marker["event_id"] in {event_id for event_id, _ in _notes(url)})
    wait_for(lambda: _unacknowledged(config["AMQP_URI"]) == 0)
    applied = [event_id for event_id, _ in _notes(url)]
    assert sorted(applied) == sorted([b["event_id"] for b in bodies] + [marker["event_id"]])


@pytest.fixture
def pg_engine():
    engine = make_engine(_pg_database(f"{VHOST}_kit_ping"))
    yield engine
    engine.dispose()


def _kill_backends(database: str) -> None:
    admin = sa.create_engine(f"{PG_URL}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :d AND pid <> pg_backend_pid()"
            ),
            {"d": database},
        )
    admin.dispose()


def test_a_connection_idle_a_while_is_pinged_before_use(pg_engine):
    """A database restart while the pool's connections rest costs no transaction."""
    with pg_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    _kill_backends(pg_engine.url.database)
    time.sleep(PING_AFTER_IDLE_SECONDS + 0.2)
    with pg_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1


def test_a_connection_used_a_moment_ago_is_not_pinged(pg_engine):
    """Within the second after its last use a connection is trusted: a restart then fails
    the one transaction that meets it (as it fails those under way), and the pool is
    renewed at once."""
    with pg_engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    _kill_backends(pg_engine.url.database)
    with pytest.raises(sa.exc.OperationalError), pg_engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    with pg_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
