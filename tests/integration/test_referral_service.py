"""The referral service on the real broker and database (PostgreSQL, and SQLite, the
embedded default): submit, route and announce; bad input; details pulled with
authorisation and audit; agencies' events projected once and in order."""

import datetime as dt
import json
import re
import uuid

import pytest
import sqlalchemy as sa
from alembic import command
from kombu import Connection, Queue
from sqlalchemy.orm import Session

from concord_contracts import topology
from concord_contracts.codes import CaseStatus, Instrument, RequestStatus
from concord_contracts.envelope import new_envelope
from concord_contracts.events import dump_payload, read_event
from concord_kit.errors import BadInput, Forbidden, NotFound
from concord_kit.events import REASON_HEADER
from concord_kit.identity import Caller
from concord_kit.migrations import alembic_config
from concord_kit.tables import audit_trail, inbox, outbox
from referral.domain import Cursor
from referral.models import agency_statuses, pipeline, pipeline_funnel_counts, referrals
from referral.repository import ReferralRepository
from tests.conftest import database_url
from tests.integration.referral_support import (
    COORDINATOR,
    INTAKE,
    POLICE,
    SOCIAL,
    handled,
    intake_queue_pages,
)
from tests.observe import wait_for
from tests.synthetic import make_child, make_platform_report, make_referral, make_self_report

pytestmark = pytest.mark.integration


@pytest.fixture(params=["postgresql", "sqlite"])
def service(request, run_referral, tmp_path):
    url = (
        database_url("referral")
        if request.param == "postgresql"
        else f"sqlite:///{tmp_path}/referral.db"
    )
    return run_referral(url)


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


def test_a_referral_is_stored_routed_and_announced(service, referral_tap):
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

    events = wait_for(lambda: len(referral_tap(cid)) >= 3 and referral_tap(cid))
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

    social_queue = [item for page in intake_queue_pages(service.rpc(SOCIAL)) for item in page]
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

    police_ids = {
        item["coordination_id"] for page in intake_queue_pages(service.rpc(POLICE)) for item in page
    }
    assert urgent["coordination_id"] in police_ids
    assert normal["coordination_id"] not in police_ids  # cyberstalking alone: not justice

    for caller in (COORDINATOR, INTAKE):
        with pytest.raises(Forbidden):
            service.rpc(caller).intake_queue()


RANK = {"immediate_danger": 0, "high": 1, "normal": 2}


def queue_place(item: dict) -> tuple:
    """Where an item belongs in the intake queue: waiting for an answer first, then most
    urgent, newest (in whole microseconds: exact), then by coordination id."""
    received = dt.datetime.fromisoformat(item["received_at"])
    micros = (received - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    answered = item["status"] != "pending_acceptance"
    return (answered, RANK[item["urgency"]], -micros, item["coordination_id"])


def routed_to(service, agency: str) -> set[str]:
    query = sa.select(agency_statuses.c.coordination_id).where(
        agency_statuses.c.agency == agency, agency_statuses.c.routed.is_(True)
    )
    return {row["coordination_id"] for row in service.rows(query)}


def test_the_intake_queue_pages_through_every_routed_referral_once_in_order(service):
    # Bulk intakes (a batch shares its received_at: the coordination id orders the ties).
    # routing_rules.yaml: a named child's cyberstalking goes to social services alone, a
    # platform's report of sextortion of a child nobody named to justice alone, a named
    # child's sextortion (or any child in immediate danger) to both.
    def batch(categories, named, urgencies):
        reports = []
        for urgency in urgencies:
            for _ in range(3):
                report = make_platform_report(categories=categories, urgency=urgency)
                report.pop("child", None)
                reports.append({**report, "child": make_child()} if named else report)
        results = service.rpc(INTAKE).submit_batch(reports)["results"]
        assert {r["status"] for r in results} == {"created"}, results
        return [r["coordination_id"] for r in results]

    social_only = batch(["cyberstalking"], True, ["high", "normal"])
    justice_only = batch(["sextortion"], False, ["high", "normal"])
    both = batch(["sextortion"], True, list(RANK))
    # Answered, they come after every referral still waiting for social services.
    declined = social_only[::4] + both[::4]
    for cid in declined:
        service.rpc(SOCIAL).decline(cid, {"reason": "outside_mandate"})

    status_in: dict[str, dict[str, str]] = {}
    for caller, agency, seeded, never in (
        (SOCIAL, "social_services", social_only + both, justice_only),
        (POLICE, "justice", justice_only + both, social_only),
    ):
        pages = intake_queue_pages(service.rpc(caller), limit=4)
        queue = [item for page in pages for item in page]
        ids = [item["coordination_id"] for item in queue]
        assert len(pages) > 2 and all(len(page) <= 4 for page in pages)
        assert len(ids) == len(set(ids)), "an item on two pages"
        assert set(ids) == routed_to(service, agency), "every routed referral, none other"
        assert set(seeded) <= set(ids) and not set(never) & set(ids)
        assert [queue_place(item) for item in queue] == sorted(map(queue_place, queue))
        status_in[agency] = {item["coordination_id"]: item["status"] for item in queue}
    assert {status_in["social_services"][cid] for cid in declined} == {"declined"}
    assert {status_in["justice"][cid] for cid in both[::4]} == {"pending_acceptance"}


def test_small_pages_of_the_intake_queue_give_what_one_read_gives_across_ties(service):
    # A page ends anywhere: inside a run of ties (a batch shares its received_at, so within
    # one urgency only the coordination id orders them), between urgencies, between
    # batches, and between the waiting part and the answered part.
    def batch(urgencies):
        reports = []
        for urgency in urgencies:
            # No annotations: one could raise the urgency and break the ties asked for.
            report = make_platform_report(
                categories=["cyberstalking"], urgency=urgency, annotations=[]
            )
            reports.append({**report, "child": make_child()})
        results = service.rpc(INTAKE).submit_batch(reports)["results"]
        assert {r["status"] for r in results} == {"created"}, results
        return [r["coordination_id"] for r in results]

    seeded = batch(["high"] * 4 + ["normal"] * 4 + ["immediate_danger"] * 2)
    seeded += batch(["high"] * 3 + ["normal"] * 3)
    for cid in seeded[1::3]:
        service.rpc(SOCIAL).decline(cid, {"reason": "outside_mandate"})

    social = service.rpc(SOCIAL)
    whole = intake_queue_pages(social, limit=200)  # one read, unless other tests filled it
    queue = [item for page in whole for item in page]
    assert [queue_place(item) for item in queue] == sorted(map(queue_place, queue))
    mine = [queue_place(item)[:3] for item in queue if item["coordination_id"] in seeded]
    assert len(mine) == len(seeded)
    for answered in (False, True):  # ties in the waiting part and in the answered part
        places = [place for place in mine if place[0] is answered]
        assert len(set(places)) < len(places), "no tie"
        assert len({rank for _, rank, _ in places}) > 1, "one urgency only"

    for limit in (1, 2, 3):
        pages = intake_queue_pages(social, limit=limit)
        assert all(len(page) == limit for page in pages[:-1]) and 0 < len(pages[-1]) <= limit
        assert [item for page in pages for item in page] == queue, f"pages of {limit}"


def test_a_page_of_the_intake_queue_is_bounded_and_its_cursor_checked(service):
    social = service.rpc(SOCIAL)
    for query in ({"limit": 0}, {"limit": 201}, {"limit": "5"}, {"sort": "oldest"}):
        with pytest.raises(BadInput):
            social.intake_queue(query)
    pipeline_cursor = Cursor("priority", 1, dt.datetime.now(dt.UTC), str(uuid.uuid4())).encode()
    for cursor in ("bm90LWEtY3Vyc29y", pipeline_cursor, "!" * 10):
        with pytest.raises(BadInput) as refused:
            social.intake_queue({"cursor": cursor})
        assert "cursor" in str(refused.value)


def test_agency_rows_stored_before_revision_0004_get_their_referrals_sort_keys(
    run_referral, tmp_path
):
    url = f"sqlite:///{tmp_path}/referral.db"
    before = run_referral(url)
    cids = [
        before.rpc(INTAKE).submit_referral(
            # A helpline call: a platform report's random annotations could raise its urgency.
            make_referral(channel="helpline", categories=["cyberstalking"], urgency=urgency)
        )["coordination_id"]
        for urgency in ("normal", "immediate_danger", "high", "normal", "high")
    ]
    before.rpc(SOCIAL).decline(cids[1], {"reason": "outside_mandate"})
    queue = [item for page in intake_queue_pages(before.rpc(SOCIAL), limit=2) for item in page]
    before.container.stop()
    # The agency rows as revision 0003 kept them (no sort keys), then upgraded again.
    config = alembic_config("referral", url)
    command.downgrade(config, "0003")
    command.upgrade(config, "head")

    after = run_referral(url)
    s, p = agency_statuses.c, pipeline.c
    keys = after.rows(
        sa.select(
            s.coordination_id,
            s.urgency_rank,
            s.received_at,
            p.urgency_rank.label("rank"),
            p.received_at.label("at"),
        )
        .join(pipeline, p.coordination_id == s.coordination_id)
        .where(s.coordination_id.in_(cids))
    )
    assert {row["coordination_id"] for row in keys} == set(cids)
    assert all(
        (row["urgency_rank"], row["received_at"]) == (row["rank"], row["at"]) for row in keys
    )
    assert [item for page in intake_queue_pages(after.rpc(SOCIAL), limit=2) for item in page] == (
        queue
    )
    # Waiting first (most urgent, then newest), the declined one last.
    assert [item["coordination_id"] for item in queue] == [cids[i] for i in (4, 2, 3, 0, 1)]


def test_the_funnel_of_rows_stored_before_revision_0005_is_counted_by_the_upgrade(
    run_referral, tmp_path
):
    """On SQLite (the embedded default): the kept funnel, counted once from the rows by the
    upgrade, gives the summary the rows gave; a time range still counts the rows."""
    url = f"sqlite:///{tmp_path}/referral.db"
    before = run_referral(url)
    cids = [
        before.rpc(INTAKE).submit_referral(
            make_referral(channel="helpline", categories=["cyberstalking"], urgency="high")
        )["coordination_id"]
        for _ in range(3)
    ]
    held = before.rpc(INTAKE).submit_referral(make_self_report())["coordination_id"]
    before.rpc(INTAKE).close(held, {"reason": "no_further_action"})  # never routed
    before.rpc(SOCIAL).decline(cids[0], {"reason": "outside_mandate"})
    before.rpc(INTAKE).close(cids[0], {"reason": "no_further_action"})
    charts = ("counts", "funnel", "ageing")
    summary = before.rpc(COORDINATOR).pipeline_summary({})
    before.container.stop()
    config = alembic_config("referral", url)
    command.downgrade(config, "0004")
    command.upgrade(config, "head")

    after = run_referral(url)
    with Session(after.engine) as session:
        kept = {
            (r.key, r.stage, r.reached): r.n
            for r in session.execute(sa.select(pipeline_funnel_counts))
            if r.n
        }
        assert kept == ReferralRepository(session).funnel_of_rows()
    again = after.rpc(COORDINATOR).pipeline_summary({})
    assert {k: again[k] for k in charts} == {k: summary[k] for k in charts}
    assert [(s["stage"], s["count"]) for s in summary["funnel"]] == [
        ("received", 4),
        ("triaged", 4),
        ("routed", 3),
        ("in_care", 0),
        ("closed", 2),
    ]
    counted = after.rpc(COORDINATOR).pipeline_summary({"received_from": "2000-01-01T00:00:00Z"})
    assert {k: counted[k] for k in charts} == {k: summary[k] for k in charts}


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
    # The hub's word on the caller's agency, as of its last event for the referral.
    sequences = service.rows(sa.select(outbox.c.sequence).where(outbox.c.coordination_id == cid))
    word = details["hub_status"]
    assert (word["agency"], word["status"]) == ("social_services", "pending_acceptance")
    assert word["sequence"] == max(row["sequence"] for row in sequences)

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


def test_a_case_opened_moves_the_pipeline_and_is_announced_as_accepted(service, referral_tap):
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

    accepted = wait_for(
        lambda: [e for e in referral_tap(cid) if e["event_type"] == "referral.accepted"]
    )
    assert len(accepted) == 1
    envelope = read_event(accepted[0])
    assert envelope.payload["agency"] == "social_services"
    assert envelope.payload["accepted_at"].isoformat() == opened_at
    assert envelope.causation_id == uuid.UUID(event_id)
    assert envelope.sequence == 4  # after referral.received, .triaged and .routed


def as_stored(row: dict) -> dict:
    """A pipeline row without what the clock adds at reading: an ongoing hop's time spent
    grows by the second, so two reads a moment apart may differ there and only there."""
    timeline = [
        {**hop, "time_spent_seconds": None} if hop["ongoing"] else hop for hop in row["timeline"]
    ]
    return {**row, "timeline": timeline}


def test_the_same_event_delivered_twice_changes_nothing(service, referral_tap):
    cid = service.rpc(INTAKE).submit_referral(make_referral(categories=["grooming"]))[
        "coordination_id"
    ]
    event_id = str(uuid.uuid4())
    body = _case_opened_body(cid, 1, "2026-11-23T10:00:00+00:00", event_id)
    with handled(service, "on_case_opened", event_id):
        service.send(body)
    first = as_stored(service.rpc(COORDINATOR).pipeline_row(cid))
    state_before = service.rows(
        sa.select(agency_statuses).where(agency_statuses.c.coordination_id == cid)
    )
    with handled(service, "on_case_opened", event_id) as result:
        service.send(body)
    assert result.get() is None  # handled without error
    assert as_stored(service.rpc(COORDINATOR).pipeline_row(cid)) == first
    state_after = service.rows(
        sa.select(agency_statuses).where(agency_statuses.c.coordination_id == cid)
    )
    assert state_after == state_before
    assert service.count(inbox, inbox.c.event_id == event_id) == 1
    accepted = service.count(
        outbox, outbox.c.coordination_id == cid, outbox.c.event_type == "referral.accepted"
    )
    assert accepted == 1
    wait_for(lambda: any(e["event_type"] == "referral.accepted" for e in referral_tap(cid)))
    assert [e["event_type"] for e in referral_tap(cid)].count("referral.accepted") == 1


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
