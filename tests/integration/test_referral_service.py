"""The referral service on the real broker and database (PostgreSQL, and SQLite, the
embedded default): submit, route and announce; bad input; details pulled with
authorisation and audit; agencies' events projected once and in order."""

import datetime as dt
import json
import re
import time
import uuid

import pytest
import sqlalchemy as sa
from kombu import Connection, Queue
from nameko.standalone.rpc import ClusterRpcClient
from nameko.testing.services import entrypoint_waiter

from concord_contracts import topology
from concord_contracts.codes import CaseStatus, Instrument, RequestStatus
from concord_contracts.envelope import new_envelope
from concord_contracts.events import dump_payload, read_event
from concord_kit.bus import BusPublisher
from concord_kit.errors import BadInput, Forbidden, NotFound
from concord_kit.events import REASON_HEADER
from concord_kit.identity import Caller
from concord_kit.tables import audit_trail, inbox, outbox
from referral.models import agency_statuses, pipeline, referrals
from referral.service import ReferralService
from tests.conftest import database_url
from tests.synthetic import make_referral

pytestmark = pytest.mark.integration

INTAKE = Caller("u-intake-1", "intake_officer", "referral_hub")
SOCIAL = Caller("u-social-1", "social_worker", "social_services")
POLICE = Caller("u-police-1", "police_liaison_officer", "justice")
COORDINATOR = Caller("u-coord-1", "coordinator", "coordination_body")


def wait_for(predicate, timeout=15.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


class Running:
    def __init__(self, container, config, url):
        self.container = container
        self.config = config
        self.amqp_uri = config["AMQP_URI"]
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        self._clients = []

    def rpc(self, caller: Caller):
        client = ClusterRpcClient(
            context_data={**caller.as_context(), "correlation_id": f"test-{uuid.uuid4()}"},
            uri=self.amqp_uri,
            timeout=15,
        )
        self._clients.append(client)
        return client.start().referral

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
        for client in self._clients:
            client.stop()
        self.engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def service(request, nameko_config, container_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("CONCORD_VAR_DIR", str(tmp_path))
    url = (
        database_url("referral")
        if request.param == "postgresql"
        else f"sqlite:///{tmp_path}/referral.db"
    )
    config = {
        **nameko_config,
        "DATABASE_URLS": {**nameko_config["DATABASE_URLS"], "referral": url},
        "EVENT_RETRY_BACKOFF_SECONDS": [0.2, 0.2],
    }
    container = container_factory(ReferralService, config)
    container.start()
    running = Running(container, config, url)
    yield running
    running.close()


@pytest.fixture
def bus_tap(nameko_config):
    """An exclusive queue bound to the hub's events: what actually crossed the bus."""
    connection = Connection(nameko_config["AMQP_URI"])
    queue = Queue(
        f"test.referral.tap.{uuid.uuid4()}",
        exchange=topology.events_exchange(),
        routing_key="referral.*",
        exclusive=True,
        auto_delete=True,
    )(connection.channel())
    queue.declare()
    # Urgent referrals' events travel the urgent lane (`urgent.<event type>`).
    queue.bind_to(exchange=topology.EVENTS_EXCHANGE, routing_key="urgent.referral.*")
    seen = []

    def drain(coordination_id=None):
        while (message := queue.get(no_ack=True)) is not None:
            seen.append(json.loads(message.body))
        return [e for e in seen if coordination_id in (None, e["coordination_id"])]

    yield drain
    connection.release()


def personal_values(referral: dict) -> list[str]:
    child, contact = referral["child"], referral["reporter"].get("contact") or {}
    values = [child.get("given_name"), child.get("family_name"), child.get("date_of_birth")]
    values += [contact.get("name"), contact.get("phone"), contact.get("email")]
    values += re.findall(r"[A-Za-z]{6,}", referral["summary"])
    return [str(v) for v in values if v]


def assert_no_personal_data(text: str, referral: dict) -> None:
    for value in personal_values(referral):
        assert value not in text, "personal data where there must be none"


def case_payload(status="new", at="2026-11-23T10:00:00+00:00", opened=True, case_id=None):
    """A case_management payload as its producer holds it (typed; dump_payload dumps it)."""
    key = "opened_at" if opened else "changed_at"
    return {
        "case_id": uuid.UUID(case_id) if case_id else uuid.uuid4(),
        "status": CaseStatus(status),
        key: dt.datetime.fromisoformat(at),
    }


# --- submit -------------------------------------------------------------------------


def test_a_referral_is_stored_routed_and_announced(service, bus_tap):
    referral = make_referral(categories=["grooming", "cyberstalking"], urgency="high")
    receipt = service.rpc(INTAKE).submit_referral(referral)
    cid = receipt["coordination_id"]
    assert receipt["routed_to"] == ["social_services", "justice"]
    assert receipt["urgency"] == "high"

    stored = service.rows(sa.select(referrals).where(referrals.c.coordination_id == cid))
    assert len(stored) == 1
    assert stored[0]["channel"] == referral["channel"]
    assert stored[0]["routing_rule"] == "sexual_exploitation"
    assert_no_personal_data(json.dumps(dict(stored[0]), default=str), referral)  # sealed
    statuses = service.rows(
        sa.select(agency_statuses).where(agency_statuses.c.coordination_id == cid)
    )
    assert {(s["agency"], s["status"]) for s in statuses} == {
        ("social_services", "pending_acceptance"),
        ("justice", "pending_acceptance"),
    }
    audit = service.rows(sa.select(audit_trail).where(audit_trail.c.subject == cid))
    assert [(a["action"], a["user_id"], a["role"]) for a in audit] == [
        ("referral.submitted", INTAKE.user_id, "intake_officer")
    ]

    events = wait_for(lambda: len(bus_tap(cid)) >= 3 and bus_tap(cid))
    assert sorted(e["event_type"] for e in events) == [
        "referral.received",
        "referral.routed",
        "referral.triaged",
    ]
    for body in events:
        envelope = read_event(body)
        assert envelope.producer == "referral"
        assert str(envelope.coordination_id) == cid
    routed = next(read_event(e) for e in events if e["event_type"] == "referral.routed")
    assert routed.payload["rule"] == "sexual_exploitation"
    assert [str(a) for a in routed.payload["agencies"]] == ["social_services", "justice"]
    assert sorted(e["sequence"] for e in events) == [1, 2, 3]
    assert_no_personal_data(json.dumps(events), referral)
    wait_for(lambda: service.rpc(INTAKE).health()["outbox_pending"] == 0)

    row = service.rpc(COORDINATOR).pipeline_row(cid)
    assert row["stage"] == "routed" and row["urgency"] == "high" and row["flags"] == []
    assert set(row["agencies"]) == {"social_services", "justice"}
    assert_no_personal_data(json.dumps(row), referral)


def test_each_routed_agency_sees_it_in_its_intake_queue(service):
    urgent = service.rpc(INTAKE).submit_referral(
        make_referral(categories=["sextortion"], urgency="immediate_danger")
    )
    stalking = make_referral(categories=["cyberstalking"], urgency="normal")
    normal = service.rpc(INTAKE).submit_referral(stalking)

    social_queue = service.rpc(SOCIAL).intake_queue()
    ids = [item["coordination_id"] for item in social_queue]
    assert urgent["coordination_id"] in ids and normal["coordination_id"] in ids
    assert ids.index(urgent["coordination_id"]) < ids.index(normal["coordination_id"])
    # What still waits comes first, most urgent first; answered referrals after.
    waiting = [item["status"] == "pending_acceptance" for item in social_queue]
    assert waiting == sorted(waiting, reverse=True)
    urgencies = [item["urgency"] for item in social_queue if item["status"] == "pending_acceptance"]
    rank = {"immediate_danger": 0, "high": 1, "normal": 2}
    assert urgencies == sorted(urgencies, key=rank.get)
    item = social_queue[ids.index(normal["coordination_id"])]
    assert set(item) == {
        "coordination_id", "received_at", "channel", "categories", "urgency", "status", "since",
        "due_at",
    }  # fmt: skip
    assert item["status"] == "pending_acceptance"
    assert item["due_at"] > item["since"]  # the acceptance clock runs
    assert_no_personal_data(json.dumps(social_queue), stalking)

    police_ids = {item["coordination_id"] for item in service.rpc(POLICE).intake_queue()}
    assert urgent["coordination_id"] in police_ids
    assert normal["coordination_id"] not in police_ids  # cyberstalking alone: not justice

    for caller in (COORDINATOR, INTAKE):
        with pytest.raises(Forbidden):
            service.rpc(caller).intake_queue()


def test_bad_input_names_the_fields_and_stores_nothing(service):
    before = [service.count(t) for t in (referrals, pipeline, outbox, audit_trail)]
    referral = make_referral()
    referral["urgency"] = "whenever"
    referral["child"]["given_name"] = "x" * 5000
    with pytest.raises(BadInput) as refused:
        service.rpc(INTAKE).submit_referral(referral)
    assert {"urgency", "child"} <= set(refused.value.errors)
    assert "given_name" in refused.value.errors["child"]
    assert "x" * 100 not in json.dumps(refused.value.errors)  # values are not echoed

    with pytest.raises(BadInput) as refused:
        service.rpc(INTAKE).submit_referral(["not", "an", "object"])
    with pytest.raises(BadInput) as refused:
        service.rpc(INTAKE).submit_referral(make_referral(surprise="field"))
    assert "surprise" in refused.value.errors

    with pytest.raises(Forbidden):
        service.rpc(COORDINATOR).submit_referral(make_referral())
    with pytest.raises(Forbidden):
        service.rpc(SOCIAL).submit_referral(make_referral())
    after = [service.count(t) for t in (referrals, pipeline, outbox, audit_trail)]
    assert after == before


# --- details ------------------------------------------------------------------------


def test_details_go_to_a_routed_agency_and_every_pull_is_audited(service):
    referral = make_referral(categories=["cyberstalking"], urgency="normal")
    cid = service.rpc(INTAKE).submit_referral(referral)["coordination_id"]

    details = service.rpc(SOCIAL).pull_details(cid)
    assert details["coordination_id"] == cid
    assert details["child"]["given_name"] == referral["child"]["given_name"]
    assert details["child"].get("date_of_birth") == referral["child"].get("date_of_birth")
    assert details["summary"] == referral["summary"]
    assert details["reporter"] == referral["reporter"]
    assert details["consent"] == referral["consent"]
    assert details["categories"] == ["cyberstalking"]

    with pytest.raises(Forbidden):
        service.rpc(POLICE).pull_details(cid)
    with pytest.raises(Forbidden):
        service.rpc(COORDINATOR).pull_details(cid)

    pulls = service.rows(
        sa.select(audit_trail)
        .where(audit_trail.c.subject == cid)
        .where(audit_trail.c.action == "referral.details_pulled")
        .order_by(audit_trail.c.id)
    )
    assert [(p["user_id"], p["role"], p["agency"], p["outcome"]) for p in pulls] == [
        (SOCIAL.user_id, "social_worker", "social_services", "allowed"),
        (POLICE.user_id, "police_liaison_officer", "justice", "refused"),
        (COORDINATOR.user_id, "coordinator", "coordination_body", "refused"),
    ]
    assert_no_personal_data(json.dumps([dict(p) for p in pulls], default=str), referral)

    with pytest.raises(NotFound):
        service.rpc(SOCIAL).pull_details(str(uuid.uuid4()))
    with pytest.raises(BadInput) as refused:
        service.rpc(SOCIAL).pull_details("not-a-uuid")
    assert "coordination_id" in refused.value.errors


def test_pipeline_row_is_for_oversight_and_routed_agencies_only(service):
    cid = service.rpc(INTAKE).submit_referral(
        make_referral(categories=["cyberstalking"], urgency="normal")
    )["coordination_id"]
    for caller in (COORDINATOR, INTAKE, SOCIAL):
        assert service.rpc(caller).pipeline_row(cid)["coordination_id"] == cid
    with pytest.raises(Forbidden):
        service.rpc(POLICE).pipeline_row(cid)
    with pytest.raises(NotFound):
        service.rpc(COORDINATOR).pipeline_row(str(uuid.uuid4()))
    with pytest.raises(BadInput):
        service.rpc(COORDINATOR).pipeline_row("42")


# --- partner events -----------------------------------------------------------------


def handled(service, method, event_id, times=1):
    """Wait (as a context manager) until `method` handled the event `times` times."""
    seen = []

    def callback(worker_ctx, result, exc_info):
        if str(worker_ctx.args[0].event_id) == event_id:
            seen.append(exc_info)
        return len(seen) >= times

    return entrypoint_waiter(service.container, method, callback=callback, timeout=15)


def test_a_case_opened_moves_the_pipeline_and_is_announced_as_accepted(service, bus_tap):
    referral = make_referral(categories=["grooming"])
    cid = service.rpc(INTAKE).submit_referral(referral)["coordination_id"]
    opened_at = "2026-11-23T10:00:00+00:00"
    event_id = str(uuid.uuid4())
    body = _case_opened_body(cid, 1, opened_at, event_id)
    with handled(service, "on_case_opened", event_id):
        service.send(body)

    row = service.rpc(COORDINATOR).pipeline_row(cid)
    assert row["stage"] == "in_care"
    social = row["agencies"]["social_services"]
    assert (social["status"], social["since"], social["detail"]) == (
        "case_opened",
        opened_at,
        "new",
    )
    assert social["due_at"] is None  # accepted: the clock stopped
    assert row["agencies"]["justice"]["status"] == "pending_acceptance"

    accepted = wait_for(lambda: [e for e in bus_tap(cid) if e["event_type"] == "referral.accepted"])
    assert len(accepted) == 1
    envelope = read_event(accepted[0])
    assert envelope.payload["agency"] == "social_services"
    assert envelope.payload["accepted_at"].isoformat() == opened_at
    assert envelope.causation_id == uuid.UUID(event_id)
    assert envelope.sequence == 4  # after referral.received, .triaged and .routed


def test_the_same_event_delivered_twice_changes_nothing(service, bus_tap):
    cid = service.rpc(INTAKE).submit_referral(make_referral(categories=["grooming"]))[
        "coordination_id"
    ]
    event_id = str(uuid.uuid4())
    body = _case_opened_body(cid, 1, "2026-11-23T10:00:00+00:00", event_id)
    with handled(service, "on_case_opened", event_id):
        service.send(body)
    first = service.rpc(COORDINATOR).pipeline_row(cid)
    state_before = service.rows(
        sa.select(agency_statuses).where(agency_statuses.c.coordination_id == cid)
    )
    with handled(service, "on_case_opened", event_id) as result:
        service.send(body)
    assert result.get() is None  # handled without error
    assert service.rpc(COORDINATOR).pipeline_row(cid) == first
    state_after = service.rows(
        sa.select(agency_statuses).where(agency_statuses.c.coordination_id == cid)
    )
    assert state_after == state_before
    assert service.count(inbox, inbox.c.event_id == event_id) == 1
    accepted = service.count(
        outbox, outbox.c.coordination_id == cid, outbox.c.event_type == "referral.accepted"
    )
    assert accepted == 1
    wait_for(lambda: any(e["event_type"] == "referral.accepted" for e in bus_tap(cid)))
    assert [e["event_type"] for e in bus_tap(cid)].count("referral.accepted") == 1


def test_an_older_event_after_a_newer_one_is_ignored(service):
    cid = service.rpc(INTAKE).submit_referral(
        make_referral(categories=["cyberstalking"], urgency="normal")
    )["coordination_id"]
    case_id = str(uuid.uuid4())
    changed = "on_case_status_changed"
    steps = [
        ("case.opened", "on_case_opened", 1, "new", "2026-11-23T10:00:00+00:00"),
        ("case.status_changed", changed, 3, "closed", "2026-12-20T10:00:00+00:00"),
        ("case.status_changed", changed, 2, "assessed", "2026-11-30T10:00:00+00:00"),
    ]
    for event_type, method, sequence, status, at in steps:
        opened = event_type == "case.opened"
        payload = case_payload(status, at, opened=opened, case_id=case_id)
        version, dumped = dump_payload(event_type, payload)
        envelope = new_envelope(
            event_type=event_type,
            schema_version=version,
            producer="case_management",
            coordination_id=uuid.UUID(cid),
            sequence=sequence,
            correlation_id="test",
            payload=dumped,
        )
        with handled(service, method, str(envelope.event_id)):
            service.send(envelope.to_message())
    row = service.rpc(COORDINATOR).pipeline_row(cid)
    social = row["agencies"]["social_services"]
    assert (social["status"], social["since"]) == ("closed", "2026-12-20T10:00:00+00:00")
    assert row["stage"] == "closed"
    [state] = service.rows(
        sa.select(agency_statuses).where(agency_statuses.c.coordination_id == cid)
    )
    assert state["last_sequence"] == 3 and state["detail"] == "closed"


def test_a_request_abroad_adds_the_central_authority_without_routing(service):
    cid = service.rpc(INTAKE).submit_referral(make_referral(categories=["sextortion"]))[
        "coordination_id"
    ]
    payload = {
        "request_id": uuid.uuid4(),
        "instrument": Instrument.european_investigation_order,
        "executing_country": "DE",
        "status": RequestStatus.sent,
        "due_at": None,
        "filed_at": dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC),
    }
    version, dumped = dump_payload("request.filed", payload)
    envelope = new_envelope(
        event_type="request.filed",
        schema_version=version,
        producer="cross_border",
        coordination_id=uuid.UUID(cid),
        sequence=1,
        correlation_id="test",
        payload=dumped,
    )
    with handled(service, "on_request_filed", str(envelope.event_id)):
        service.send(envelope.to_message())
    row = service.rpc(COORDINATOR).pipeline_row(cid)
    assert row["agencies"]["cross_border"]["status"] == "request_filed"
    assert row["stage"] == "in_care"
    central = Caller("u-central-1", "central_authority_officer", "cross_border")
    with pytest.raises(Forbidden):
        service.rpc(central).pull_details(cid)


def test_an_event_for_an_unknown_referral_is_retried_then_parked_not_lost(service):
    event_id = str(uuid.uuid4())
    body = _case_opened_body(str(uuid.uuid4()), 1, "2026-11-23T10:00:00+00:00", event_id)
    service.send(body)
    dead = topology.dead_queue_name("referral")

    def parked():
        with Connection(service.amqp_uri) as conn:
            queue = Queue(dead, no_declare=True)(conn.channel())
            while (message := queue.get(no_ack=True)) is not None:
                if message.payload.get("event_id") == event_id:
                    return message
        return None

    message = wait_for(parked)
    assert message.headers[REASON_HEADER].startswith("NotFound")
    assert message.headers["x-concord-attempt"] == 3  # the first try and two retries
    assert service.count(inbox, inbox.c.event_id == event_id) == 0


def _case_opened_body(cid, sequence, opened_at, event_id):
    version, dumped = dump_payload("case.opened", case_payload("new", opened_at))
    envelope = new_envelope(
        event_type="case.opened",
        schema_version=version,
        producer="case_management",
        coordination_id=uuid.UUID(cid),
        sequence=sequence,
        correlation_id="test",
        payload=dumped,
    )
    body = envelope.to_message()
    body["event_id"] = event_id
    return body
