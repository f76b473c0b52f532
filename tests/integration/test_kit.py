"""The platform kit on the real broker and databases (SQLite and PostgreSQL): outbox and
relay, inbox, sequence numbers, retry and parking, the audit chain."""

import datetime as dt
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from kombu import Connection, Queue
from marshmallow import fields
from nameko.standalone.rpc import ClusterRpcClient

from concord_cli import dlq
from concord_contracts import events as catalogue
from concord_contracts import topology
from concord_kit import audit, outbox, upsert
from concord_kit.bus import BusPublisher, Unroutable
from concord_kit.db import make_engine
from concord_kit.events import ATTEMPT_HEADER, LANE_HEADER, REASON_HEADER
from concord_kit.identity import Caller
from concord_kit.migrations import upgrade
from concord_kit.tables import audit_trail
from concord_kit.tables import outbox as outbox_table

sys.path.insert(0, str(Path(__file__).parent))
from kit_probe.service import KitProbe  # noqa: E402

from tests.conftest import PG_URL, VHOST  # noqa: E402
from tests.observe import wait_for  # noqa: E402

pytestmark = pytest.mark.integration


class ProbeNoted(catalogue.Payload):
    note_id = fields.UUID(required=True)
    fail = fields.Boolean(load_default=False)


def _pg_database(name: str) -> str:
    admin = sa.create_engine(f"{PG_URL}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return f"{PG_URL}/{name}"


def probe_container(backend, monkeypatch, nameko_config, tmp_path, container_factory):
    """The probe service on `backend` (sqlite or postgresql), not started yet:
    (container, config, database URL)."""
    monkeypatch.setitem(
        catalogue.EVENTS,
        "probe.noted",
        catalogue.EventSpec("probe.noted", "kit_probe", 1, {1: ProbeNoted}, "probe"),
    )
    monkeypatch.setitem(topology.CONSUMERS, "kit_probe", ("probe.noted",))
    monkeypatch.setenv("CONCORD_VAR_DIR", str(tmp_path))
    topology.declare(nameko_config["AMQP_URI"])
    with Connection(nameko_config["AMQP_URI"]) as conn:
        for queue in topology.service_queues("kit_probe"):
            queue(conn.channel()).purge()
    url = (
        f"sqlite:///{tmp_path}/kit_probe.db"
        if backend == "sqlite"
        else _pg_database(f"{VHOST}_kit_probe")
    )
    config = {
        **nameko_config,
        "DATABASE_URLS": {"kit_probe": url},
        "EVENT_RETRY_BACKOFF_SECONDS": [0.2, 0.2],
    }
    return container_factory(KitProbe, config), config, url


@pytest.fixture(params=["sqlite", "postgresql"])
def probe(request, monkeypatch, nameko_config, tmp_path, container_factory):
    container, config, url = probe_container(
        request.param, monkeypatch, nameko_config, tmp_path, container_factory
    )
    container.start()
    client = ClusterRpcClient(uri=config["AMQP_URI"], timeout=15)
    with client as rpc:
        yield rpc.kit_probe, config, url


def _publish_raw(amqp_uri: str, body, routing_key="probe.noted", headers=None):
    BusPublisher(amqp_uri).publish(
        body, exchange=topology.EVENTS_EXCHANGE, routing_key=routing_key, headers=headers
    )


def _drain(amqp_uri: str, queue_name: str) -> list:
    messages = []
    with Connection(amqp_uri) as conn:
        queue = Queue(queue_name, no_declare=True)(conn.channel())
        while (message := queue.get(no_ack=True)) is not None:
            messages.append(message)
    return messages


def test_events_are_published_in_order_applied_once(probe):
    kit, config, _ = probe
    cid = str(uuid.uuid4())
    kit.note(cid, count=3)
    noted = wait_for(lambda: len(kit.noted(cid)) == 3 and kit.noted(cid))
    assert len(set(noted)) == 3
    assert kit.health()["outbox_pending"] == 0


def test_sequence_is_strictly_increasing_per_coordination_id(probe):
    _, _, url = probe
    engine = make_engine(url)
    cid = str(uuid.uuid4())
    with engine.begin() as conn:
        session = sa.orm.Session(bind=conn)
        for _ in range(3):
            outbox.add(
                session,
                producer="kit_probe",
                event_type="probe.noted",
                coordination_id=cid,
                payload={"note_id": uuid.uuid4()},
                correlation_id="test",
            )
        session.flush()
        sequences = conn.execute(
            sa.select(outbox_table.c.sequence)
            .where(outbox_table.c.coordination_id == cid)
            .order_by(outbox_table.c.id)
        ).scalars()
        assert list(sequences) == [1, 2, 3]
    engine.dispose()


def test_a_redelivered_event_changes_nothing(probe):
    kit, config, _ = probe
    cid = uuid.uuid4()
    body = _probe_event(cid)
    _publish_raw(config["AMQP_URI"], body)
    _publish_raw(config["AMQP_URI"], body)
    # A second, different event behind the duplicate: once it is applied, the duplicate
    # (queued before it) has had its chance.
    marker = _probe_event(cid)
    _publish_raw(config["AMQP_URI"], marker)
    noted = wait_for(lambda: len(kit.noted(str(cid))) >= 2 and kit.noted(str(cid)))
    assert sorted(noted) == sorted([body["event_id"], marker["event_id"]])


@pytest.fixture
def probe_database(tmp_path):
    """The probe's database alone, no service running: nothing drains its outbox but us."""
    url = f"sqlite:///{tmp_path}/probe-alone.db"
    upgrade("kit_probe", url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def _add_probe_event(engine, cid: str) -> None:
    with sa.orm.Session(engine) as session, session.begin():
        outbox.add(
            session,
            producer="kit_probe",
            event_type="probe.noted",
            coordination_id=cid,
            payload={"note_id": uuid.uuid4()},
            correlation_id="test",
        )


def _sent_at(engine, cid: str):
    with sa.orm.Session(engine) as session:
        return session.execute(
            sa.select(outbox_table.c.sent_at).where(outbox_table.c.coordination_id == cid)
        ).scalar_one()


def test_the_outbox_keeps_events_while_the_broker_is_unreachable(
    probe_database, nameko_config, monkeypatch
):
    monkeypatch.setitem(
        catalogue.EVENTS,
        "probe.noted",
        catalogue.EventSpec("probe.noted", "kit_probe", 1, {1: ProbeNoted}, "probe"),
    )
    monkeypatch.setitem(topology.CONSUMERS, "kit_probe", ("probe.noted",))
    topology.declare(nameko_config["AMQP_URI"])
    cid = str(uuid.uuid4())
    _add_probe_event(probe_database, cid)
    unreachable = BusPublisher("amqp://guest:guest@127.0.0.1:1/concord_test")
    with pytest.raises(OSError), sa.orm.Session(probe_database) as session, session.begin():
        outbox.publish_batch(session, unreachable)
    assert _sent_at(probe_database, cid) is None  # still pending, not lost

    with sa.orm.Session(probe_database) as session, session.begin():
        assert outbox.publish_batch(session, BusPublisher(nameko_config["AMQP_URI"])) == 1
    assert _sent_at(probe_database, cid) is not None


def test_an_event_without_a_route_stays_pending(probe_database, nameko_config, monkeypatch):
    """mandatory=True: an exchange with no queue for the key refuses, and the row waits."""
    monkeypatch.setitem(
        catalogue.EVENTS,
        "probe.noted",
        catalogue.EventSpec("probe.noted", "kit_probe", 1, {1: ProbeNoted}, "probe"),
    )
    monkeypatch.setattr(outbox, "EVENTS_EXCHANGE", "concord.test.unbound")
    with Connection(nameko_config["AMQP_URI"]) as conn:
        from kombu import Exchange

        Exchange("concord.test.unbound", type="topic", durable=False)(conn.channel()).declare()
    cid = str(uuid.uuid4())
    _add_probe_event(probe_database, cid)
    with pytest.raises(Unroutable), sa.orm.Session(probe_database) as session, session.begin():
        outbox.publish_batch(session, BusPublisher(nameko_config["AMQP_URI"]))
    assert _sent_at(probe_database, cid) is None


def test_a_failing_handler_is_retried_then_parked_with_its_reason(probe):
    kit, config, _ = probe
    cid = uuid.uuid4()
    failing = _probe_event(cid, fail=True)
    _publish_raw(config["AMQP_URI"], failing)
    # The queue keeps flowing behind it.
    ok_cid = uuid.uuid4()
    _publish_raw(config["AMQP_URI"], _probe_event(ok_cid))
    wait_for(lambda: kit.noted(str(ok_cid)))
    parked = wait_for(lambda: _drain(config["AMQP_URI"], topology.dead_queue_name("kit_probe")))
    assert len(parked) == 1
    headers = parked[0].headers
    assert headers[REASON_HEADER].startswith("Conflict")
    assert headers[ATTEMPT_HEADER] == 3  # the first try and two retries
    assert parked[0].payload["event_id"] == failing["event_id"]


@pytest.mark.parametrize("lane", ["main", "urgent"])
def test_a_parked_event_is_replayed_into_the_lane_it_came_from(probe, lane):
    kit, config, _ = probe
    uri = config["AMQP_URI"]
    failing = _probe_event(uuid.uuid4(), fail=True)
    _publish_raw(
        uri, failing, routing_key=topology.routing_key("probe.noted", 9 * (lane == "urgent"))
    )
    parked = wait_for(lambda: dlq.list_parked(uri, ["kit_probe"]))  # they stay parked
    assert [(p.event_id, p.lane) for p in parked] == [(failing["event_id"], lane)]
    [replayed] = dlq.replay(uri, ["kit_probe"], failing["event_id"])
    assert replayed.lane == lane
    # Back in its lane, it fails again and is parked again: from that same lane.
    again = wait_for(lambda: _drain_kept(uri))
    assert [(event_id, parked_from) for event_id, parked_from, _ in again] == [
        (failing["event_id"], lane)
    ]
    assert again[0][2] is not None  # the replay left its mark


def _drain_kept(uri: str) -> list[tuple]:
    """What the probe's parking queue holds, as (event_id, lane header, replayed at)."""
    return [
        (m.payload["event_id"], m.headers[LANE_HEADER], m.headers.get(dlq.REPLAYED_AT))
        for m in _drain(uri, topology.dead_queue_name("kit_probe"))
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"not": "an envelope"},
        "a string",
        None,  # replaced by an envelope with an impossible payload
    ],
)
def test_poison_messages_are_parked_at_once(probe, body):
    kit, config, _ = probe
    if body is None:
        body = _probe_event(uuid.uuid4())
        body["payload"] = {"note_id": "not-a-uuid", "extra": 1}
    _publish_raw(config["AMQP_URI"], body)
    parked = wait_for(lambda: _drain(config["AMQP_URI"], topology.dead_queue_name("kit_probe")))
    assert len(parked) == 1
    assert parked[0].headers[REASON_HEADER].startswith("InvalidEvent")
    assert parked[0].headers[ATTEMPT_HEADER] == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_add_to_adds_to_the_rows_it_finds_and_creates_the_others(backend, tmp_path):
    url = (
        f"sqlite:///{tmp_path}/counts.db"
        if backend == "sqlite"
        else _pg_database(f"{VHOST}_kit_counts")
    )
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    metadata = sa.MetaData()
    counts = sa.Table(
        "counts",
        metadata,
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("stage", sa.String(64), primary_key=True),
        sa.Column("n", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
    )
    metadata.create_all(engine)
    with sa.orm.Session(engine) as session, session.begin():
        session.execute(counts.insert(), [{"key": "all", "stage": "routed", "n": 5}])
        rows = [
            {"key": "all", "stage": "closed", "n": 1},
            {"key": "all", "stage": "routed", "n": -1},
            {"key": "urgency:high", "stage": "closed", "n": 1},
        ]
        upsert.add_to(session, counts, rows, ("key", "stage"), "n")
        upsert.add_to(session, counts, [], ("key", "stage"), "n")
    with engine.connect() as conn:
        found = {(r.key, r.stage): r.n for r in conn.execute(sa.select(counts))}
    assert found == {("all", "routed"): 4, ("all", "closed"): 1, ("urgency:high", "closed"): 1}
    engine.dispose()


def test_the_audit_chain_detects_an_edit(tmp_path):
    url = f"sqlite:///{tmp_path}/audit.db"
    upgrade("kit_probe", url)
    engine = make_engine(url)
    caller = Caller("u-1", "social_worker", "social_services")
    with sa.orm.Session(engine) as session, session.begin():
        for subject in ("a", "b", "c"):
            entry = audit.Entry(dt.datetime.now(dt.UTC), caller, "case.read", subject, "test")
            audit.append(session, [entry], correlation_id="c")
    with sa.orm.Session(engine) as session:
        assert audit.verify(session) is None
    with sa.orm.Session(engine) as session, session.begin():
        session.execute(audit_trail.update().where(audit_trail.c.id == 2).values(subject="x"))
    with sa.orm.Session(engine) as session:
        assert audit.verify(session) == 2
    engine.dispose()


def _probe_event(cid, event_id=None, fail=False):
    payload = {"note_id": str(uuid.uuid4())}
    if fail:
        payload["fail"] = True
    return {
        "event_id": str(event_id or uuid.uuid4()),
        "event_type": "probe.noted",
        "schema_version": 1,
        "occurred_at": "2026-11-23T10:00:00+00:00",
        "producer": "kit_probe",
        "coordination_id": str(cid),
        "sequence": 1,
        "correlation_id": "test",
        "causation_id": None,
        "payload": payload,
    }


def test_a_unit_of_work_takes_the_audit_lock_only_as_it_flushes_before_commit():
    """The audit trail's lock (one per service) is held until commit. Taken when an entry
    is noted, it would be held while the unit of work goes on to lock rows: one that holds
    such a row and then audits would wait for it, and it for the row (a deadlock). Noted
    entries are appended at `flush`, last: while another writer holds the lock, noting
    waits for nothing and flushing waits (here until its lock timeout)."""
    from concord_kit.db import UnitOfWork
    from concord_kit.identity import CallContext

    url = _pg_database(f"{VHOST}_kit_audit_lock")
    upgrade("kit_probe", url)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    caller = Caller("u-1", "social_worker", "social_services")
    with engine.connect() as other_writer:
        other_writer.execute(
            sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": audit._PG_AUDIT_LOCK}
        )
        with sa.orm.Session(engine) as session, session.begin():
            session.execute(sa.text("SET LOCAL lock_timeout = '300ms'"))
            uow = UnitOfWork(session, "kit_probe", CallContext({}))
            uow.audit("case.read", "a", reason="test", caller=caller)
            uow.audit_many([("case.read", "b", "test")])
            session.execute(sa.select(audit_trail.c.id).limit(1))  # the work goes on
            with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
                uow.flush()
            session.rollback()
        other_writer.rollback()
    # With the lock free, the entries are appended at flush and chained.
    with sa.orm.Session(engine) as session, session.begin():
        uow = UnitOfWork(session, "kit_probe", CallContext({}))
        uow.audit("case.read", "a", reason="test", caller=caller)
        uow.flush()
    with sa.orm.Session(engine) as session:
        assert session.execute(sa.select(sa.func.count()).select_from(audit_trail)).scalar() == 1
        assert audit.verify(session) is None
    engine.dispose()
