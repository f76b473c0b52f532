"""The referral hub on the real broker and PostgreSQL: bulk intake with idempotency keys,
the acceptance loop (decline, re-route, revoke, close), SLA clocks raising flags and
escalations, possible duplicates, the coordinators' pipeline query, the intake officer's
detail, the urgent lane, and every field of the referral body refused when bad."""

import contextlib
import datetime as dt
import json
import time
import uuid

import eventlet
import pytest
import sqlalchemy as sa
from kombu import Connection, Queue
from sqlalchemy.orm import Session

from concord_contracts import topology
from concord_contracts.cases import ConflictCode
from concord_contracts.codes import (
    Agency,
    AgencyStatus,
    CaseStatus,
    Category,
    Channel,
    Flag,
    InvestigationStatus,
    Stage,
    Urgency,
)
from concord_contracts.envelope import new_envelope
from concord_contracts.events import dump_payload, read_event
from concord_kit import outbox
from concord_kit.bus import BusPublisher
from concord_kit.errors import BadInput, Conflict, Forbidden
from concord_kit.tables import audit_trail
from concord_kit.tables import outbox as outbox_table
from referral.domain import PipelineFilters
from referral.models import (
    agency_statuses,
    child_keys,
    pipeline,
    pipeline_counts,
    pipeline_funnel_counts,
    pipeline_hops,
    referrals,
    routing_decisions,
)
from referral.repository import ReferralRepository
from referral.service import ReferralService
from tests.bad_referrals import BAD_CASES, not_an_object_cases
from tests.conftest import database_url
from tests.integration.referral_support import COORDINATOR, INTAKE, POLICE, SOCIAL, handled
from tests.observe import wait_for
from tests.synthetic import make_child, make_platform_report, make_referral, make_self_report

pytestmark = pytest.mark.integration

SLA_SECONDS = 1.0


@contextlib.contextmanager
def refused_as(code: ConflictCode, *records: str):
    """Refused with a 409 whose first argument is `code` (the JSON `error.code`); the text
    after it names none of `records`."""
    with pytest.raises(Conflict) as refused:
        yield
    assert refused.value.args[0] == code.value
    assert not any(record in str(refused.value) for record in records)


@pytest.fixture
def hub(run_referral):
    """The referral service on PostgreSQL, with normal-urgency acceptance due after 1 s
    and its clocks checked every 0.2 s."""
    return run_referral(
        database_url("referral"),
        SLA_ACCEPTANCE_SECONDS={"immediate_danger": 7200, "high": 86400, "normal": SLA_SECONDS},
        SLA_CHECK_SECONDS=0.2,
    )


@pytest.fixture
def tap(referral_tap):
    """Every referral event that crosses the bus, both lanes, with its routing key."""
    return referral_tap


CODES = {
    "stage": Stage,
    "urgency": Urgency,
    "channel": Channel,
    "category": Category,
    "flag": Flag,
    "agency": Agency,
    "agency_status": AgencyStatus,
}

INTAKE_EVENTS = ("referral.received", "referral.triaged", "referral.routed")


def counts(hub):
    """What an intake writes. (The clocks of earlier tests' referrals may run out meanwhile
    and add their own events and hops: those are not counted.)"""
    return [
        hub.count(referrals),
        hub.count(pipeline),
        hub.count(agency_statuses),
        hub.count(outbox_table, outbox_table.c.event_type.in_(INTAKE_EVENTS)),
        hub.count(audit_trail),
        hub.count(pipeline_hops, pipeline_hops.c.kind.in_(("received", "triaged", "routed"))),
    ]


def assert_counts_kept(hub):
    """The counts per stage the hub keeps as rows change are the rows' own counts, read in
    one snapshot (whatever the clocks commit meanwhile)."""
    with (
        hub.engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn,
        Session(bind=conn) as session,
    ):
        kept = {(r.key, r.stage): r.n for r in session.execute(sa.select(pipeline_counts)) if r.n}
        assert kept == ReferralRepository(session).counts_of_rows()


def partner_event(event_type, cid, sequence, status, producer, id_field, time_field):
    payload = {
        id_field: uuid.uuid4(),
        "status": status,
        time_field: dt.datetime.now(dt.UTC).replace(microsecond=0),
    }
    version, dumped = dump_payload(event_type, payload)
    return new_envelope(
        event_type=event_type,
        schema_version=version,
        producer=producer,
        coordination_id=uuid.UUID(cid),
        sequence=sequence,
        correlation_id="test",
        payload=dumped,
    )


def case_opened(cid, sequence=1):
    return partner_event(
        "case.opened", cid, sequence, CaseStatus.new, "case_management", "case_id", "opened_at"
    )


def investigation_opened(cid, sequence=1):
    return partner_event(
        "investigation.opened",
        cid,
        sequence,
        InvestigationStatus.opened,
        "justice_liaison",
        "investigation_id",
        "opened_at",
    )


# --- bulk intake ------------------------------------------------------------------------


def test_a_batch_takes_each_report_on_its_own_and_nothing_twice(hub):
    reports = [make_platform_report(seed=100 + i) for i in range(5)]
    bad_code = make_platform_report(seed=200, incident_type="mystery")
    no_key = make_platform_report(seed=201)
    del no_key["idempotency_key"]
    batch = [*reports, bad_code, "not an object", no_key, dict(reports[0])]
    before = counts(hub)

    first = hub.rpc(INTAKE).submit_batch(batch)
    assert (first["created"], first["replayed"], first["rejected"]) == (5, 1, 3)
    statuses = [r["status"] for r in first["results"]]
    assert statuses == ["created"] * 5 + ["rejected"] * 3 + ["replayed"]
    assert [r["index"] for r in first["results"]] == list(range(9))
    assert "incident_type" in first["results"][5]["errors"]
    assert "_schema" in first["results"][6]["errors"]
    assert "idempotency_key" in first["results"][7]["errors"]
    assert first["results"][8]["coordination_id"] == first["results"][0]["coordination_id"]
    created = counts(hub)
    assert created[0] - before[0] == 5 and created[1] - before[1] == 5

    again = hub.rpc(INTAKE).submit_batch(batch)
    assert (again["created"], again["replayed"], again["rejected"]) == (0, 6, 3)
    for one, two in zip(first["results"][:5], again["results"][:5], strict=True):
        assert one["coordination_id"] == two["coordination_id"]
        assert one["routed_to"] == two["routed_to"]
    assert counts(hub) == created  # nothing twice: no row, no event

    # The same key with another report is refused, naming the key; nothing is created.
    reused = make_platform_report(seed=300, idempotency_key=reports[1]["idempotency_key"])
    third = hub.rpc(INTAKE).submit_batch([reused])
    assert third["results"][0]["status"] == "rejected"
    assert "idempotency_key" in third["results"][0]["errors"]
    assert counts(hub) == created

    audit = hub.rows(
        sa.select(audit_trail.c.subject).where(audit_trail.c.action == "referral.submitted")
    )
    audited = {row["subject"] for row in audit}
    assert {r["coordination_id"] for r in first["results"][:5]} <= audited

    with pytest.raises(BadInput):
        hub.rpc(INTAKE).submit_batch([])
    with pytest.raises(BadInput):
        hub.rpc(INTAKE).submit_batch([make_platform_report(seed=1)] * 501)
    with pytest.raises(Forbidden):
        hub.rpc(COORDINATOR).submit_batch(reports)


def test_one_submission_with_a_key_is_idempotent(hub):
    referral = make_referral(seed=5, channel="school", urgency="high", idempotency_key="school:77")
    first = hub.rpc(INTAKE).submit_referral(referral)
    again = hub.rpc(INTAKE).submit_referral(referral)
    assert not first["replayed"] and again["replayed"]
    assert again["coordination_id"] == first["coordination_id"]
    assert again["routed_to"] == first["routed_to"]
    with pytest.raises(BadInput) as refused:
        hub.rpc(INTAKE).submit_referral({**referral, "summary": "Another report entirely."})
    assert "idempotency_key" in refused.value.errors


# --- triage and consent -----------------------------------------------------------------


def test_a_sextortion_with_a_deadline_is_urgent_and_travels_the_urgent_lane(hub, tap):
    referral = make_referral(
        seed=9,
        channel="helpline",
        categories=["sextortion"],
        urgency="normal",
        risk_indicators=["deadline_threat"],
    )
    receipt = hub.rpc(INTAKE).submit_referral(referral)
    assert receipt["urgency"] == "immediate_danger"
    assert receipt["triage_rule"] == "sextortion_with_deadline"
    cid = receipt["coordination_id"]
    events = wait_for(lambda: len(tap(cid)) >= 3 and tap(cid))
    assert {tap.routing_keys[e["event_id"]] for e in events} == {
        "urgent.referral.received",
        "urgent.referral.triaged",
        "urgent.referral.routed",
    }
    triaged = read_event(next(e for e in events if e["event_type"] == "referral.triaged"))
    assert triaged.payload["stated_urgency"] == "normal"
    assert triaged.payload["rule"] == "sextortion_with_deadline"
    # The agencies' urgent queues hold it (no agency service runs in this test).
    with Connection(hub.amqp_uri) as conn:
        queue = Queue(topology.urgent_queue_name("case_management"), no_declare=True)
        bound = queue(conn.channel())
        found = []
        while (message := bound.get(no_ack=True)) is not None:
            found.append(json.loads(message.body))
    assert any(b["coordination_id"] == cid for b in found)


def test_an_agency_event_on_the_urgent_lane_is_consumed_by_the_hub(hub):
    cid = hub.rpc(INTAKE).submit_referral(
        make_referral(channel="helpline", categories=["grooming"], urgency="immediate_danger")
    )["coordination_id"]
    envelope = case_opened(cid)
    with handled(hub, "on_case_opened", str(envelope.event_id)):
        BusPublisher(hub.amqp_uri).publish(
            envelope.to_message(),
            exchange=topology.EVENTS_EXCHANGE,
            routing_key=topology.routing_key("case.opened", topology.URGENT_PRIORITY),
        )
    row = hub.rpc(COORDINATOR).pipeline_row(cid)
    assert row["agencies"]["social_services"]["status"] == "case_opened"


def test_a_childs_own_report_without_consent_is_held_until_routed_with_a_legal_basis(hub):
    receipt = hub.rpc(INTAKE).submit_referral(make_self_report(seed=3))
    cid = receipt["coordination_id"]
    assert receipt["routed_to"] == [] and receipt["routing_rule"] == "held_without_consent"
    row = hub.rpc(COORDINATOR).pipeline_row(cid)
    assert row["stage"] == "triaged" and row["flags"] == ["awaiting_routing"]

    with pytest.raises(BadInput) as refused:
        hub.rpc(INTAKE).reroute(cid, {"agencies": ["social_services"]})
    assert "legal_basis" in refused.value.errors
    row = hub.rpc(INTAKE).reroute(
        cid, {"agencies": ["social_services"], "legal_basis": "child_safety"}
    )
    assert row["stage"] == "routed" and row["flags"] == []
    detail = hub.rpc(INTAKE).referral_detail(cid)
    assert detail["consent"]["legal_basis"] == "child_safety"
    assert detail["consent"]["decided_by"] == INTAKE.user_id
    last = detail["routing"][-1]
    assert (last["kind"], last["rule"], last["legal_basis"]) == (
        "reroute",
        "intake_officer_decision",
        "child_safety",
    )
    assert last["legal_basis_decided_by"] == INTAKE.user_id
    assert detail["reporter"]["kind"] == "child"


# --- the acceptance loop ----------------------------------------------------------------


def test_decline_goes_back_to_intake_then_reroute_then_accept(hub, tap):
    referral = make_referral(channel="helpline", categories=["cyberstalking"], urgency="high")
    cid = hub.rpc(INTAKE).submit_referral(referral)["coordination_id"]
    with pytest.raises(Forbidden):
        hub.rpc(POLICE).decline(cid, {"reason": "outside_mandate"})  # not routed to justice
    with pytest.raises(BadInput) as refused:
        hub.rpc(SOCIAL).decline(cid, {"reason": "because"})
    assert "reason" in refused.value.errors
    with pytest.raises(BadInput):
        hub.rpc(SOCIAL).decline(
            cid, {"reason": "better_agency", "better_agency": "social_services"}
        )

    row = hub.rpc(SOCIAL).decline(cid, {"reason": "better_agency", "better_agency": "justice"})
    social = row["agencies"]["social_services"]
    assert (social["status"], social["decline_reason"], social["suggested_agency"]) == (
        "declined",
        "better_agency",
        "justice",
    )
    assert row["stage"] == "triaged"
    assert row["flags"] == ["declined_by_all", "awaiting_routing"]
    with refused_as(ConflictCode.wrong_state, cid):
        hub.rpc(SOCIAL).decline(cid, {"reason": "no_capacity"})
    with pytest.raises(Forbidden):
        hub.rpc(SOCIAL).pull_details(cid)  # declined: no claim on the details any more

    with pytest.raises(Forbidden):
        hub.rpc(COORDINATOR).reroute(cid, {"agencies": ["justice"]})
    row = hub.rpc(INTAKE).reroute(cid, {"agencies": ["justice"]})
    assert row["stage"] == "routed" and row["flags"] == []
    justice = row["agencies"]["justice"]
    assert (
        justice["status"] == "pending_acceptance" and justice["rule"] == "intake_officer_decision"
    )
    assert justice["due_at"] is not None
    with refused_as(ConflictCode.already_with_agency, cid):
        hub.rpc(INTAKE).reroute(cid, {"agencies": ["justice"]})  # it holds it already
    assert hub.rpc(POLICE).pull_details(cid)["coordination_id"] == cid

    envelope = investigation_opened(cid)
    with handled(hub, "on_investigation_opened", str(envelope.event_id)):
        hub.send(envelope.to_message())
    row = hub.rpc(COORDINATOR).pipeline_row(cid)
    assert row["stage"] == "in_care"
    assert row["agencies"]["justice"]["status"] == "investigation_opened"
    with refused_as(ConflictCode.agency_working, cid):
        hub.rpc(INTAKE).close(cid, {"reason": "no_further_action"})  # justice works on it

    kinds = [(h["kind"], h["agency"]) for h in row["timeline"]]
    assert kinds == [
        ("received", None),
        ("triaged", None),
        ("routed", "social_services"),
        ("declined", "social_services"),
        ("routed", "justice"),
        ("accepted", "justice"),
        ("partner_status", "justice"),
    ]
    assert row["timeline"][-1]["ongoing"] and not row["timeline"][3]["ongoing"]
    decisions = hub.rows(
        sa.select(routing_decisions).where(routing_decisions.c.coordination_id == cid)
    )
    assert [(d["kind"], d["decided_by"]) for d in decisions] == [
        ("initial", INTAKE.user_id),
        ("reroute", INTAKE.user_id),
    ]

    wanted = ("referral.declined", "referral.flags_changed", "referral.routed", "referral.accepted")
    events = wait_for(lambda: all(tap(cid, t) for t in wanted) and tap(cid))
    declined = read_event(tap(cid, "referral.declined")[0]).payload
    assert (declined["agency"], declined["reason"], declined["suggested_agency"]) == (
        "social_services",
        "better_agency",
        "justice",
    )
    rerouted = read_event(tap(cid, "referral.routed")[-1]).payload
    assert [str(a) for a in rerouted["agencies"]] == ["justice"]
    assert rerouted["rule"] == "intake_officer_decision"
    sequences = [e["sequence"] for e in events]
    assert len(set(sequences)) == len(sequences)


def test_revoke_then_close_with_a_reason(hub, tap):
    cid = hub.rpc(INTAKE).submit_referral(
        make_referral(channel="school", categories=["grooming"], urgency="high")
    )["coordination_id"]
    with pytest.raises(Forbidden):
        hub.rpc(SOCIAL).revoke(cid, {"agency": "justice"})
    row = hub.rpc(INTAKE).revoke(cid, {"agency": "justice", "reason": "routed_in_error"})
    assert row["agencies"]["justice"]["status"] == "revoked"
    assert row["agencies"]["justice"]["revoke_reason"] == "routed_in_error"
    assert row["stage"] == "routed"
    with refused_as(ConflictCode.wrong_state, cid):
        hub.rpc(INTAKE).revoke(cid, {"agency": "justice"})
    with pytest.raises(Forbidden):
        hub.rpc(POLICE).pull_details(cid)

    row = hub.rpc(INTAKE).close(cid, {"reason": "referred_outside_concord"})
    assert row["stage"] == "closed" and row["close_reason"] == "referred_outside_concord"
    assert row["agencies"]["social_services"]["status"] == "revoked"
    assert row["flags"] == []
    with refused_as(ConflictCode.wrong_state, cid):
        hub.rpc(INTAKE).close(cid, {"reason": "no_further_action"})
    with refused_as(ConflictCode.wrong_state, cid):
        hub.rpc(INTAKE).reroute(cid, {"agencies": ["social_services"]})
    with pytest.raises(BadInput) as refused:
        hub.rpc(INTAKE).close(str(uuid.uuid4()), {"reason": "nope"})
    assert "reason" in refused.value.errors

    wait_for(lambda: tap(cid, "referral.closed"))
    revoked = [read_event(e).payload["agency"] for e in tap(cid, "referral.revoked")]
    assert sorted(str(a) for a in revoked) == ["justice", "social_services"]
    assert_counts_kept(hub)


# --- SLA clocks -------------------------------------------------------------------------


def test_an_acceptance_clock_that_runs_out_raises_a_flag_and_an_escalation(hub, tap):
    cid = hub.rpc(INTAKE).submit_referral(
        make_referral(channel="helpline", categories=["cyberstalking"], urgency="normal")
    )["coordination_id"]
    row = wait_for(
        lambda: (r := hub.rpc(COORDINATOR).pipeline_row(cid))["overdue"] and r, timeout=20
    )
    assert row["flags"] == ["awaiting_acceptance_overdue"]
    assert row["agencies"]["social_services"]["overdue"]
    escalated = wait_for(lambda: tap(cid, "referral.escalated"))
    assert len(escalated) == 1  # once, however often the clocks are checked
    payload = read_event(escalated[0]).payload
    assert payload["agency"] == "social_services" and payload["reason"] == "acceptance_overdue"
    assert payload["escalated_at"] >= payload["due_at"]
    page = hub.rpc(COORDINATOR).pipeline({"flag": ["awaiting_acceptance_overdue"], "limit": 200})
    assert cid in {item["coordination_id"] for item in page["items"]}

    # Taking it on stops the clock and clears the flag.
    envelope = case_opened(cid)
    with handled(hub, "on_case_opened", str(envelope.event_id)):
        hub.send(envelope.to_message())
    row = hub.rpc(COORDINATOR).pipeline_row(cid)
    assert row["flags"] == [] and not row["overdue"]
    assert ("escalated", "social_services") in [(h["kind"], h["agency"]) for h in row["timeline"]]


# --- possible duplicates ------------------------------------------------------------------


def test_the_same_child_from_another_channel_is_flagged_then_linked_or_dismissed(hub, tap):
    child = make_child(seed=41)
    child.update(date_of_birth="2012-03-04", age_years=None)
    first = hub.rpc(INTAKE).submit_referral(
        make_referral(seed=1, channel="helpline", urgency="high", child=child)
    )
    same_channel = hub.rpc(INTAKE).submit_referral(
        make_referral(seed=2, channel="helpline", urgency="high", child=dict(child))
    )
    assert same_channel["possible_duplicates"] == []
    # Another channel, the name written differently: the same child.
    respelled = {**child, "given_name": child["given_name"].upper() + " ", "sex": "unknown"}
    second = hub.rpc(INTAKE).submit_referral(
        make_referral(seed=3, channel="school", urgency="high", child=respelled)
    )
    assert first["coordination_id"] in second["possible_duplicates"]
    for cid in (first["coordination_id"], second["coordination_id"]):
        assert "possible_duplicate" in hub.rpc(COORDINATOR).pipeline_row(cid)["flags"]
    stored = hub.rows(
        sa.select(child_keys).where(child_keys.c.coordination_id == second["coordination_id"])
    )
    assert stored and all(child["given_name"].lower() not in r["key"] for r in stored)
    # The second is about the same child as both earlier ones (each from another channel).
    assert set(second["possible_duplicates"]) == {
        first["coordination_id"],
        same_channel["coordination_id"],
    }
    detail = hub.rpc(INTAKE).referral_detail(second["coordination_id"])
    assert {d["coordination_id"] for d in detail["possible_duplicates"]} == set(
        second["possible_duplicates"]
    )
    assert {d["status"] for d in detail["possible_duplicates"]} == {"open"}

    row = hub.rpc(INTAKE).link_duplicate(
        second["coordination_id"], {"duplicate_of": first["coordination_id"]}
    )
    assert row["stage"] == "closed" and row["close_reason"] == "duplicate"
    assert row["linked_to"] == first["coordination_id"]
    kept = hub.rpc(COORDINATOR).pipeline_row(first["coordination_id"])
    assert "possible_duplicate" not in kept["flags"]
    assert hub.rpc(INTAKE).referral_detail(first["coordination_id"])["linked_referrals"] == [
        second["coordination_id"]
    ]
    wait_for(lambda: tap(second["coordination_id"], "referral.linked"))

    third = hub.rpc(INTAKE).submit_referral(
        make_referral(seed=4, channel="health_service", urgency="high", child=dict(child))
    )
    assert first["coordination_id"] in third["possible_duplicates"]
    # Not under the one linked as a duplicate: under the one it is linked to.
    linked = (third["coordination_id"], second["coordination_id"], first["coordination_id"])
    with refused_as(ConflictCode.link_to_primary, *linked):
        hub.rpc(INTAKE).link_duplicate(linked[0], {"duplicate_of": linked[1]})
    with pytest.raises(BadInput):
        hub.rpc(INTAKE).dismiss_duplicate(third["coordination_id"], {"other": str(uuid.uuid4())})
    # The one linked as a duplicate is represented by the referral it was linked to.
    assert second["coordination_id"] not in third["possible_duplicates"]
    row = hub.rpc(INTAKE).dismiss_duplicate(
        third["coordination_id"], {"other": first["coordination_id"]}
    )
    assert "possible_duplicate" in row["flags"]  # another possible duplicate is still open
    row = hub.rpc(INTAKE).dismiss_duplicate(
        third["coordination_id"], {"other": same_channel["coordination_id"]}
    )
    assert "possible_duplicate" not in row["flags"]
    for cid in (first["coordination_id"], same_channel["coordination_id"]):
        assert "possible_duplicate" not in hub.rpc(COORDINATOR).pipeline_row(cid)["flags"]
    assert_counts_kept(hub)


# --- the coordinators' pipeline -------------------------------------------------------------


def test_the_pipeline_filters_pages_and_counts(hub):
    start = dt.datetime.now(dt.UTC).isoformat()
    made = {}
    for name, body in {
        "urgent_grooming": make_referral(
            seed=11, channel="helpline", categories=["grooming"], urgency="immediate_danger"
        ),
        "high_stalking": make_referral(
            seed=12, channel="school", categories=["cyberstalking"], urgency="high"
        ),
        "high_sextortion": make_referral(
            seed=13, channel="helpline", categories=["sextortion"], urgency="high"
        ),
        "platform_1": make_platform_report(seed=14),
        "platform_2": make_platform_report(seed=15),
        "self_report": make_self_report(seed=16),
    }.items():
        made[name] = hub.rpc(INTAKE).submit_referral(body)["coordination_id"]
    hub.rpc(SOCIAL).decline(made["high_stalking"], {"reason": "no_capacity"})
    scope = {"received_from": start}
    mine = set(made.values())

    def ids(query):
        return [i["coordination_id"] for i in hub.rpc(COORDINATOR).pipeline(query)["items"]]

    everything = hub.rpc(COORDINATOR).pipeline({**scope, "limit": 200})
    assert set(i["coordination_id"] for i in everything["items"]) == mine
    ranks = [i["urgency"] for i in everything["items"]]
    order = {"immediate_danger": 0, "high": 1, "normal": 2}
    assert ranks == sorted(ranks, key=order.get)  # most urgent first
    assert everything["items"][0]["coordination_id"] == made["urgent_grooming"]
    assert sum(everything["counts"].values()) == 6
    assert everything["counts"]["triaged"] == 2  # the declined one and the held self-report
    for item in everything["items"]:
        text = json.dumps(item)
        assert "given_name" not in text and "summary" not in text

    assert set(ids({**scope, "channel": ["platform_report"]})) == {
        made["platform_1"],
        made["platform_2"],
    }
    assert ids({**scope, "category": ["cyberstalking"]}) == [made["high_stalking"]]
    assert ids({**scope, "urgency": ["immediate_danger"]}) == [made["urgent_grooming"]]
    assert set(ids({**scope, "flag": ["awaiting_routing"]})) == {
        made["high_stalking"],
        made["self_report"],
    }
    assert ids({**scope, "flag": ["declined_by_all"]}) == [made["high_stalking"]]
    declined = ids({**scope, "agency": ["social_services"], "agency_status": ["declined"]})
    assert declined == [made["high_stalking"]]
    assert ids({**scope, "stage": ["triaged"], "channel": ["child_self_report"]}) == [
        made["self_report"]
    ]
    assert mine.isdisjoint(ids({"received_to": start, "limit": 200}))

    # Keyset pages of 2: every row once, in the same order as one page.
    for sort in ("priority", "oldest", "newest"):
        seen, cursor, pages = [], None, 0
        while True:
            query = {**scope, "limit": 2, "sort": sort, **({"cursor": cursor} if cursor else {})}
            page = hub.rpc(COORDINATOR).pipeline(query)
            assert (page["counts"] is None) == (cursor is not None)
            seen += [i["coordination_id"] for i in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == 3 and len(seen) == len(set(seen)) == 6
        whole = ids({**scope, "limit": 200, "sort": sort})
        assert seen == whole
    newest = ids({**scope, "limit": 200, "sort": "newest"})
    assert newest == list(reversed(ids({**scope, "limit": 200, "sort": "oldest"})))

    with pytest.raises(BadInput) as refused:
        hub.rpc(COORDINATOR).pipeline({**scope, "cursor": "bm90LWEtY3Vyc29y"})
    assert "cursor" in refused.value.errors
    page = hub.rpc(COORDINATOR).pipeline({**scope, "limit": 2, "sort": "oldest"})
    with pytest.raises(BadInput):  # a cursor of another order
        hub.rpc(COORDINATOR).pipeline({**scope, "sort": "newest", "cursor": page["next_cursor"]})
    for query, field in (
        ({"stage": ["limbo"]}, "stage"),
        ({"limit": 0}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"sort": "random"}, "sort"),
        ({"received_from": "yesterday"}, "received_from"),
        ({"received_from": "2026-01-02T00:00:00", "received_to": None}, "received_from"),
        ({"received_from": start, "received_to": start}, "received_to"),
        ({"colour": ["red"]}, "colour"),
    ):
        with pytest.raises(BadInput) as refused:
            hub.rpc(COORDINATOR).pipeline(query)
        assert field in refused.value.errors, query
    for caller in (SOCIAL, POLICE):
        with pytest.raises(Forbidden):
            hub.rpc(caller).pipeline({})


COUNTED_QUERIES = (
    {},
    {"stage": ["routed", "triaged"]},
    {"urgency": ["high", "immediate_danger"]},
    {"channel": ["platform_report"], "stage": ["routed"]},
    {"category": ["grooming"]},
    {"flag": ["awaiting_routing"]},
    {"flag": ["declined_by_all"]},
    {"agency": ["social_services"], "agency_status": ["pending_acceptance"]},
    {"agency": ["justice"]},
    {"agency_status": ["declined"]},
)


def test_the_counts_per_stage_are_the_rows_counted_under_each_single_filter(hub):
    """Created, declined, re-routed, revoked, closed: the first page's counts (kept as rows
    change) are what counting the matching rows gives."""
    made = [
        hub.rpc(INTAKE).submit_referral(
            make_referral(seed=60 + i, channel="school", categories=["grooming"], urgency="high")
        )["coordination_id"]
        for i in range(3)
    ]
    # High urgency: no acceptance clock runs out while the next tests read the pipeline.
    hub.rpc(INTAKE).submit_batch(
        [make_platform_report(seed=70 + i, urgency="high") for i in range(4)]
    )
    hub.rpc(SOCIAL).decline(made[0], {"reason": "no_capacity"})
    hub.rpc(INTAKE).reroute(made[0], {"agencies": ["social_services"]})
    hub.rpc(INTAKE).revoke(made[1], {"agency": "justice", "reason": "routed_in_error"})
    hub.rpc(INTAKE).close(made[2], {"reason": "no_further_action"})
    assert_counts_kept(hub)
    with hub.engine.connect() as conn, Session(bind=conn) as session:
        repository = ReferralRepository(session)
        for query in COUNTED_QUERIES:
            filters = PipelineFilters.from_query(
                {k: [type_(v) for v in vs] for k, vs in query.items() for type_ in [CODES[k]]}
            )
            rows = session.execute(
                sa.select(pipeline.c.stage, sa.func.count())
                .where(*repository._where(filters))
                .group_by(pipeline.c.stage)
            ).all()
            counted = {stage: 0 for stage in Stage} | {Stage(s): n for s, n in rows}
            answered = hub.rpc(COORDINATOR).pipeline({**query, "limit": 1})["counts"]
            assert answered == {str(s): n for s, n in counted.items()}, query


def test_two_instances_writing_at_once_keep_the_counts_exact(hub, container_factory):
    """A second instance on the same database; batches, single submissions and decisions
    on the same referrals from both at once: nothing lost, no deadlock, counts and funnel
    exact."""
    second = container_factory(ReferralService, hub.config)
    second.start()
    targets = [
        hub.rpc(INTAKE).submit_referral(
            make_referral(seed=80 + i, channel="school", categories=["sextortion"], urgency="high")
        )["coordination_id"]
        for i in range(6)
    ]
    batches = [
        [make_platform_report(seed=1000 + 20 * b + i, urgency="high") for i in range(20)]
        for b in range(6)
    ]

    def work(n):
        rpc = hub.rpc(INTAKE)
        if n < len(batches):
            return rpc.submit_batch(batches[n])["created"]
        if n < 2 * len(batches):
            rpc.submit_referral(make_referral(seed=900 + n, urgency="immediate_danger"))
            return 1
        cid = targets[n % len(targets)]
        try:
            if n % 3 == 0:
                hub.rpc(SOCIAL).decline(cid, {"reason": "no_capacity"})
            elif n % 3 == 1:
                rpc.revoke(cid, {"agency": "justice", "reason": "routed_in_error"})
            else:
                rpc.close(cid, {"reason": "no_further_action"})
        except Conflict:
            pass  # another writer got there first: refused, nothing changed
        return 0

    pool = eventlet.GreenPool(12)
    done = list(pool.imap(work, range(2 * len(batches) + 3 * len(targets))))
    assert sum(done[: len(batches)]) == 20 * len(batches)
    # The same batches again from both: nothing twice.
    again = list(pool.imap(lambda n: hub.rpc(INTAKE).submit_batch(batches[n]), range(6)))
    assert all(a["replayed"] == 20 and a["created"] == 0 for a in again)
    assert_counts_kept(hub)
    assert_funnel_kept(hub)
    second.stop()


def assert_funnel_kept(hub):
    """The funnel the hub keeps as rows change is the rows' own, and `funnel` answers each
    filter the counts answer as counting the matching rows does (one snapshot)."""
    p = pipeline.c
    with (
        hub.engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn,
        Session(bind=conn) as session,
    ):
        kept = {
            (r.key, r.stage, r.reached): r.n
            for r in session.execute(sa.select(pipeline_funnel_counts))
            if r.n
        }
        repository = ReferralRepository(session)
        assert kept == repository.funnel_of_rows()
        for query in COUNTED_QUERIES:
            filters = PipelineFilters.from_query(
                {k: [type_(v) for v in vs] for k, vs in query.items() for type_ in [CODES[k]]}
            )
            counted = session.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.count(p.triaged_at),
                    sa.func.count(p.routed_at),
                    sa.func.count(p.in_care_at),
                    sa.func.count(p.closed_at),
                ).where(*repository._where(filters))
            ).one()
            assert list(repository.funnel(filters).values()) == list(counted), query


def test_the_kept_funnel_is_the_rows_counted_after_each_kind_of_change_and_a_recount(hub):
    """Referrals held at triage, closed at triage (never routed), routed, declined and
    re-routed, revoked, in care, closed after routing: the funnel kept as rows change is
    the rows counted, before and after `recount`, and moves on exactly after it."""
    start = dt.datetime.now(dt.UTC).isoformat()
    made = [
        hub.rpc(INTAKE).submit_referral(
            make_referral(seed=40 + i, channel="school", categories=["grooming"], urgency="high")
        )["coordination_id"]
        for i in range(4)
    ]
    held = [
        hub.rpc(INTAKE).submit_referral(make_self_report(seed=45 + i))["coordination_id"]
        for i in range(2)
    ]
    hub.rpc(INTAKE).close(held[0], {"reason": "no_further_action"})
    hub.rpc(SOCIAL).decline(made[0], {"reason": "no_capacity"})
    hub.rpc(INTAKE).reroute(made[0], {"agencies": ["social_services"]})
    hub.rpc(INTAKE).revoke(made[1], {"agency": "justice", "reason": "routed_in_error"})
    envelope = case_opened(made[2])
    with handled(hub, "on_case_opened", str(envelope.event_id)):
        hub.send(envelope.to_message())
    hub.rpc(INTAKE).close(made[3], {"reason": "no_further_action"})
    funnel = hub.rpc(COORDINATOR).pipeline_summary({"received_from": start})["funnel"]
    assert [(s["stage"], s["count"]) for s in funnel] == [
        ("received", 6),
        ("triaged", 6),
        ("routed", 4),  # the one closed at triage was never routed
        ("in_care", 1),
        ("closed", 2),
    ]
    assert_funnel_kept(hub)

    with Session(hub.engine) as session, session.begin():
        ReferralRepository(session).recount()
    assert_funnel_kept(hub)
    envelope = case_opened(made[0])
    with handled(hub, "on_case_opened", str(envelope.event_id)):
        hub.send(envelope.to_message())
    assert_funnel_kept(hub)


def test_the_summary_counts_the_funnel_and_the_ageing_and_the_version_moves(hub):
    start = dt.datetime.now(dt.UTC).isoformat()
    routed = hub.rpc(INTAKE).submit_referral(
        make_referral(seed=21, channel="helpline", categories=["grooming"], urgency="high")
    )["coordination_id"]
    hub.rpc(INTAKE).submit_referral(make_self_report(seed=22))
    before = hub.rpc(COORDINATOR).pipeline_version()["pipeline_version"]
    summary = hub.rpc(COORDINATOR).pipeline_summary({"received_from": start})
    assert summary["counts"] == {
        "received": 0,
        "triaged": 1,
        "routed": 1,
        "in_care": 0,
        "closed": 0,
    }
    assert [(s["stage"], s["count"]) for s in summary["funnel"]] == [
        ("received", 2),
        ("triaged", 2),
        ("routed", 1),
        ("in_care", 0),
        ("closed", 0),
    ]
    assert summary["ageing"]["routed"]["under_2_hours"] == 1
    assert sum(summary["ageing"]["triaged"].values()) == 1
    assert "closed" not in summary["ageing"]
    assert summary["pipeline_version"] == before

    time.sleep(0.01)
    envelope = case_opened(routed)
    with handled(hub, "on_case_opened", str(envelope.event_id)):
        hub.send(envelope.to_message())
    after = hub.rpc(COORDINATOR).pipeline_version()["pipeline_version"]
    assert after != before
    funnel = hub.rpc(COORDINATOR).pipeline_summary({"received_from": start})["funnel"]
    assert dict((s["stage"], s["count"]) for s in funnel)["in_care"] == 1
    with pytest.raises(BadInput):
        hub.rpc(COORDINATOR).pipeline_summary({"sort": "newest"})
    with pytest.raises(Forbidden):
        hub.rpc(SOCIAL).pipeline_summary({})
    with pytest.raises(Forbidden):
        hub.rpc(SOCIAL).pipeline_version()


# --- the intake officer's view ------------------------------------------------------------


def test_the_referral_detail_is_for_intake_officers_only_and_every_read_is_audited(hub):
    referral = make_platform_report(seed=31, child=make_child(seed=31))
    cid = hub.rpc(INTAKE).submit_referral(referral)["coordination_id"]
    detail = hub.rpc(INTAKE).referral_detail(cid)
    assert detail["child"]["given_name"] == referral["child"]["given_name"]
    assert detail["platform"] == referral["platform"]
    assert detail["file_hashes"] == [
        {"algorithm": h["algorithm"], "digest": h["digest"]} for h in referral["file_hashes"]
    ]
    assert detail["reporter"]["kind"] == "platform"
    assert detail["routing"][0]["kind"] == "initial"
    assert [h["kind"] for h in detail["timeline"]][:2] == ["received", "triaged"]
    for caller in (COORDINATOR, SOCIAL, POLICE):
        with pytest.raises(Forbidden):
            hub.rpc(caller).referral_detail(cid)
    reads = hub.rows(
        sa.select(audit_trail)
        .where(audit_trail.c.subject == cid)
        .where(audit_trail.c.action == "referral.detail_read")
        .order_by(audit_trail.c.id)
    )
    assert [(r["role"], r["outcome"]) for r in reads] == [
        ("intake_officer", "allowed"),
        ("coordinator", "refused"),
        ("social_worker", "refused"),
        ("police_liaison_officer", "refused"),
    ]
    assert "given_name" not in json.dumps(hub.rpc(COORDINATOR).pipeline_row(cid))


# --- bad input ----------------------------------------------------------------------------


def test_every_field_of_the_referral_body_refused_by_name_and_nothing_stored(hub):
    before = counts(hub)
    for case in BAD_CASES:
        body = case.build()
        with pytest.raises(BadInput) as refused:
            hub.rpc(INTAKE).submit_referral(body)
        assert case.field in refused.value.errors, case.id
        text = json.dumps(refused.value.errors)
        assert "x" * 200 not in text and "\x00" not in text, case.id  # values not echoed
    for name, body in not_an_object_cases():
        with pytest.raises(BadInput):
            hub.rpc(INTAKE).submit_referral(body)
        result = hub.rpc(INTAKE).submit_batch([body])
        assert result["results"][0]["status"] == "rejected", name
    batch = hub.rpc(INTAKE).submit_batch(
        [{**case.build(), "idempotency_key": f"bad:{i}"} for i, case in enumerate(BAD_CASES[:40])]
    )
    assert batch["rejected"] >= 38  # the two whose key itself was the fault are replaced
    assert counts(hub) == before


# --- the relay's order --------------------------------------------------------------------


class Recorder:
    def __init__(self):
        self.keys = []

    def publish_many(self, messages, timeout=None):
        self.keys += [m.routing_key for m in messages]
        return len(messages)


def test_the_relay_publishes_urgent_events_before_a_backlog(tmp_path):
    from concord_kit.db import make_engine
    from concord_kit.migrations import upgrade

    url = f"sqlite:///{tmp_path}/relay.db"
    upgrade("referral", url)
    engine = make_engine(url)
    with engine.begin() as conn:
        session = sa.orm.Session(bind=conn)
        backlog = [("referral.received", uuid.uuid4(), 0) for _ in range(30)]
        for event_type, cid, priority in [*backlog, ("referral.received", uuid.uuid4(), 9)]:
            outbox.add(
                session,
                producer="referral",
                event_type=event_type,
                coordination_id=cid,
                payload={
                    "channel": Channel.helpline,
                    "categories": [Category.grooming],
                    "urgency": Urgency.immediate_danger if priority else Urgency.normal,
                    "received_at": dt.datetime.now(dt.UTC),
                },
                correlation_id="test",
                priority=priority,
            )
        session.flush()
        recorder = Recorder()
        assert outbox.publish_batch(session, recorder, limit=10) == 10
    engine.dispose()
    assert recorder.keys[0] == "urgent.referral.received"
    assert recorder.keys[1:] == ["referral.received"] * 9
