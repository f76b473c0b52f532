"""case_management on the real broker and PostgreSQL, with the real referral hub: a case
from the accepted referral to its approved closure, who may read and change it (and the
refusals audited), the list due and overdue first with keyset pagination, writes on a
stale version refused, bad input refused by name with nothing written, notes and texts
sealed and never published, partners' requests abroad, and the migration of old rows."""

import contextlib
import datetime as dt
import json
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from case_management.models import case_notes, partner_status
from case_management.models import cases as cases_table
from case_management.repository import CaseRepository
from case_management.service import CaseManagementService
from concord_contracts.codes import Organisation, Role
from concord_contracts.events import read_event
from concord_kit.errors import BadInput, Conflict, Forbidden, NotFound
from concord_kit.identity import Caller
from concord_kit.migrations import alembic_config
from concord_kit.tables import audit_trail
from tests.integration.support import held_back, in_inbox, publish_event, send
from tests.observe import wait_for
from tests.synthetic import (
    make_assessment,
    make_case_child,
    make_family,
    make_plan,
    make_referral,
    make_registration,
    make_safety,
    make_self_report,
)

pytestmark = pytest.mark.integration

INTAKE = Caller("ci-intake", Role.intake_officer, Organisation.referral_hub)
SOCIAL = Caller("ci-social-1", Role.social_worker, Organisation.social_services)
SOCIAL_2 = Caller("ci-social-2", Role.social_worker, Organisation.social_services)
SUPERVISOR = Caller("ci-supervisor-1", Role.supervisor, Organisation.social_services)
SUPERVISOR_2 = Caller("ci-supervisor-2", Role.supervisor, Organisation.social_services)
POLICE = Caller("ci-police", Role.police_liaison_officer, Organisation.justice)
COORDINATOR = Caller("ci-coordinator", Role.coordinator, Organisation.coordination_body)
# Another agency's worker claiming a social-services role is not social services.
OUTSIDER = Caller("ci-outsider", Role.social_worker, Organisation.justice)
PEOPLE = (INTAKE, SOCIAL, SOCIAL_2, SUPERVISOR, SUPERVISOR_2, POLICE, COORDINATOR, OUTSIDER)


@pytest.fixture
def rpc(cluster):
    """The hub and case_management, and an RPC client per person."""
    from referral.service import ReferralService

    clients = cluster(ReferralService, CaseManagementService, callers=PEOPLE)
    return {c: client.case_management for c, client in clients.items()} | {
        "hub": clients[INTAKE].referral,
        "hub_as_social": clients[SOCIAL].referral,
        "hub_as_police": clients[POLICE].referral,
    }


@pytest.fixture
def engine(database):
    return database("case_management")


def open_case(rpc, by: Caller = SOCIAL) -> tuple[str, str, dict]:
    """A referral routed to social services and justice, accepted by `by`."""
    referral = make_referral(channel="helpline", categories=["sextortion"], urgency="high")
    cid = rpc["hub"].submit_referral(referral)["coordination_id"]
    case_id = rpc[by].accept_referral(cid)["case_id"]
    return cid, case_id, referral


def audit_rows(engine, subject: str, action: str | None = None) -> list[tuple]:
    query = sa.select(audit_trail.c.user_id, audit_trail.c.action, audit_trail.c.outcome).where(
        audit_trail.c.subject == subject
    )
    if action:
        query = query.where(audit_trail.c.action == action)
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query.order_by(audit_trail.c.id))]


# --- the whole workflow -------------------------------------------------------------------


def test_a_case_from_the_accepted_referral_to_its_approved_closure(rpc, bus_tap, engine):
    cid, case_id, referral = open_case(rpc)
    social, supervisor, supervisor_2 = rpc[SOCIAL], rpc[SUPERVISOR], rpc[SUPERVISOR_2]

    case = social.get_case(case_id, "first visit")
    assert case["status"] == "new" and case["origin"] == "referral"
    assert case["child"]["given_name"] == referral["child"]["given_name"]
    assert [s["status"] for s in case["workflow"]] == [
        "new",
        "assessed",
        "plan_approved",
        "services_under_way",
        "closure_requested",
        "closed",
    ]
    assert case["workflow"][0]["reached_at"] and not case["workflow"][1]["reached_at"]

    child = make_case_child(7)
    case = social.update_section(case_id, "child", child, expected_version=case["version"])
    assert case["child"]["school_name"] == child["school_name"]
    case = social.update_section(case_id, "family", make_family(7))
    assert all(uuid.UUID(m["person_id"]) for m in case["family"])
    case = social.update_section(case_id, "safety", make_safety(7))

    case = social.record_assessment(case_id, make_assessment(7, risk_level="high"))
    assert case["status"] == "assessed" and case["assessment"]["risk_level"] == "high"
    assert case["assessment"]["signature"]["signed_by"] == SOCIAL.user_id
    case = social.save_plan(case_id, make_plan(7, services=2))
    assert case["plan"]["state"] == "draft"
    case = social.submit_plan(case_id)
    assert case["pending_approval"] == "plan"

    [waiting] = [i for i in supervisor.approvals_queue() if i["case_id"] == case_id]
    assert waiting["kind"] == "plan" and waiting["requested_by"] == SOCIAL.user_id
    assert waiting["child"]["given_name"] == child["given_name"]
    case = supervisor.approve_plan(case_id, {"comment": "Good plan."})
    assert case["status"] == "plan_approved" and case["plan"]["approved_version"] == 1

    service_id = case["services"][0]["service_id"]
    case = social.update_service(case_id, service_id, {"status": "in_progress"})
    assert case["status"] == "services_under_way"
    case = social.schedule_follow_up(
        case_id, {"kind": "review", "due_on": dt.date.today().isoformat()}
    )
    [review] = case["follow_ups"]
    case = social.record_follow_up(
        case_id,
        review["follow_up_id"],
        {
            "done_on": dt.date.today().isoformat(),
            "summary": "Sorvek talomen.",
            "child_views": "Feels safer.",
        },
    )
    case = social.update_service(
        case_id, service_id, {"status": "delivered", "delivered_on": dt.date.today().isoformat()}
    )
    case = social.request_closure(case_id, {"reason": "goals_met"})
    assert case["status"] == "closure_requested"
    # The second service was never delivered: the supervisor is told.
    assert "services_open" in case["closure"]["warnings"]
    case = supervisor.approve_closure(case_id, {"comment": "Agreed."})
    assert case["status"] == "closed" and all(s["reached_at"] for s in case["workflow"])

    # Every status change crossed the bus, in order, with nothing personal in it.
    statuses = wait_for(
        lambda: (
            [e["payload"]["status"] for e in bus_tap(cid, "case.status_changed")]
            if len(bus_tap(cid, "case.status_changed")) >= 5
            else None
        )
    )
    assert statuses == [
        "assessed",
        "plan_approved",
        "services_under_way",
        "closure_requested",
        "closed",
    ]
    published = bus_tap(cid)
    for body in published:
        read_event(body)
    text = json.dumps(published)
    for secret in (child["given_name"], child["family_name"], child["school_name"], "Feels safer"):
        assert secret not in text
    # The hub followed: social services closed in the pipeline.
    wait_for(
        lambda: rpc["hub"].pipeline_row(cid)["agencies"]["social_services"]["status"] == "closed"
    )

    # Reopened with a reason: back to what its work makes it, announced.
    case = supervisor_2.reopen_case(case_id, {"reason": "A new concern."})
    assert case["status"] == "services_under_way" and case["reopenings"][0]["reason"]
    wait_for(
        lambda: bus_tap(cid, "case.status_changed")[-1]["payload"]["status"] == "services_under_way"
    )

    # Every change is in the audit trail, by whom.
    actions = {(user, action) for user, action, outcome in audit_rows(engine, case_id)}
    for expected in (
        (SOCIAL.user_id, "case.read"),
        (SOCIAL.user_id, "case.section_updated"),
        (SOCIAL.user_id, "case.assessment_recorded"),
        (SOCIAL.user_id, "case.plan_submitted"),
        (SUPERVISOR.user_id, "case.plan_approved"),
        (SOCIAL.user_id, "case.service_updated"),
        (SOCIAL.user_id, "case.follow_up_recorded"),
        (SOCIAL.user_id, "case.closure_requested"),
        (SUPERVISOR.user_id, "case.closure_approved"),
        (SUPERVISOR_2.user_id, "case.reopened"),
    ):
        assert expected in actions


def test_four_eyes_and_workflow_conflicts_are_refused_with_nothing_written(rpc):
    _, case_id, _ = open_case(rpc, by=SUPERVISOR)
    supervisor = rpc[SUPERVISOR]
    with pytest.raises(Conflict):
        supervisor.save_plan(case_id, make_plan(1))  # not assessed yet
    supervisor.record_assessment(case_id, make_assessment(1))
    supervisor.save_plan(case_id, make_plan(1))
    case = supervisor.submit_plan(case_id)
    with pytest.raises(Conflict):
        supervisor.approve_plan(case_id)  # their own plan
    assert supervisor.get_case(case_id)["version"] == case["version"]
    with pytest.raises(Forbidden):
        rpc[SOCIAL].approve_plan(case_id)  # not a supervisor (nor assigned)
    rpc[SUPERVISOR_2].approve_plan(case_id)
    supervisor.request_closure(case_id, {"reason": "moved_away"})
    with pytest.raises(Conflict):
        supervisor.approve_closure(case_id)
    case = rpc[SUPERVISOR_2].reject_closure(case_id, {"reason": "Still needed."})
    assert case["status"] == "plan_approved" and case["closure"]["decision"] == "rejected"


# --- who may ------------------------------------------------------------------------------


def test_strangers_are_refused_and_every_refusal_is_recorded(rpc, engine):
    _, case_id, _ = open_case(rpc)
    for stranger in (SOCIAL_2, OUTSIDER, COORDINATOR, POLICE, INTAKE):
        with pytest.raises(Forbidden):
            rpc[stranger].get_case(case_id, "curious")
        with pytest.raises(Forbidden):
            rpc[stranger].add_note(case_id, {"text": "Not mine to write."})
        with pytest.raises(Forbidden):
            rpc[stranger].list_notes(case_id)
    refused = {
        (user, action)
        for user, action, outcome in audit_rows(engine, case_id)
        if outcome == "refused"
    }
    for stranger in (SOCIAL_2, OUTSIDER, COORDINATOR, POLICE, INTAKE):
        for action in ("case.read", "case.note_added", "case.notes_read"):
            assert (stranger.user_id, action) in refused
    with engine.connect() as conn:
        assert not conn.execute(
            sa.select(case_notes).where(case_notes.c.case_id == case_id)
        ).first()
    # An unknown case: 404 to staff, audited as not found; 403 to anyone else.
    missing = str(uuid.uuid4())
    with pytest.raises(NotFound):
        rpc[SOCIAL].get_case(missing)
    with pytest.raises(Forbidden):
        rpc[POLICE].get_case(missing)
    assert audit_rows(engine, missing, "case.read") == [
        (SOCIAL.user_id, "case.read", "not_found"),
        (POLICE.user_id, "case.read", "refused"),
    ]


def test_reassignment_moves_who_may_read(rpc, engine):
    _, case_id, _ = open_case(rpc)
    with pytest.raises(Forbidden):
        rpc[SOCIAL].assign_case(case_id, {"assign_to": SOCIAL_2.user_id, "reason": "Mine."})
    case = rpc[SUPERVISOR].assign_case(case_id, {"assign_to": SOCIAL_2.user_id})
    assert case["assigned_to"] == SOCIAL_2.user_id
    with pytest.raises(BadInput) as refused:
        rpc[SUPERVISOR].assign_case(case_id, {"assign_to": SOCIAL.user_id})
    assert "reason" in refused.value.errors
    assert rpc[SOCIAL_2].get_case(case_id)["case_id"] == case_id
    with pytest.raises(Forbidden):
        rpc[SOCIAL].get_case(case_id)
    case = rpc[SUPERVISOR].assign_case(
        case_id, {"assign_to": SOCIAL.user_id, "reason": "Back from leave."}
    )
    assert [a["reason"] for a in case["assignments"]] == [None, None, "Back from leave."]


# --- the list -----------------------------------------------------------------------------


def test_my_cases_due_and_overdue_first_page_by_page(rpc, monkeypatch):
    social = rpc[SOCIAL_2]
    today = dt.date.today()
    opened = []
    for days in (20, 5, None, 12):
        _, case_id, _ = open_case(rpc, by=SOCIAL_2)
        if days is not None:
            social.record_assessment(case_id, make_assessment(days))
            social.save_plan(case_id, make_plan(days, due_in_days=days, services=1))
        opened.append((case_id, days))
    # Another worker's case is never in this list.
    open_case(rpc, by=SOCIAL)

    def page_through(limit, **query):
        items, cursor = [], None
        while True:
            page = social.list_cases({**query, "limit": limit, "cursor": cursor})
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items

    mine = page_through(2)
    assert {i["case_id"] for i in mine} == {c for c, _ in opened}
    assert [i["next_due_on"] for i in mine] == [
        (today + dt.timedelta(days=d)).isoformat() for d in (5, 12, 20)
    ] + [None]
    assert not any(i["overdue"] for i in mine)
    # Each item carries the case's version, to write to it without reading it first.
    versions = {i["case_id"]: i["version"] for i in mine}
    assert versions == {c: social.get_case(c)["version"] for c, _ in opened}
    assert len(set(versions.values())) > 1  # an assessment and a plan moved three of them on

    # Two weeks on, two are overdue and come first, counted.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=14)
    monkeypatch.setattr(CaseManagementService, "clock", staticmethod(lambda: later))
    overdue = social.list_cases({"overdue": True})["items"]
    assert [i["overdue_count"] for i in overdue] == [1, 1]
    assert {i["next_due_on"] for i in overdue} == {
        (today + dt.timedelta(days=d)).isoformat() for d in (5, 12)
    }
    first = social.get_case(overdue[0]["case_id"])
    assert first["due"]["overdue"] and first["services"][0]["overdue"]

    with pytest.raises(Forbidden):
        social.list_cases({"assigned_to": SOCIAL.user_id})
    everyone = rpc[SUPERVISOR].list_cases({"assigned_to": SOCIAL_2.user_id, "limit": 100})
    assert {i["case_id"] for i in everyone["items"]} >= {c for c, _ in opened}
    with pytest.raises(BadInput) as refused:
        social.list_cases({"cursor": "bm90IGEgY3Vyc29y"})
    assert "cursor" in refused.value.errors


# --- writes that must not happen ----------------------------------------------------------


def test_a_write_on_a_stale_version_is_refused_and_nothing_changes(rpc):
    _, case_id, _ = open_case(rpc)
    social = rpc[SOCIAL]
    seen = social.get_case(case_id)["version"]
    social.update_section(case_id, "contact", {"address": "Pelgu street"}, expected_version=seen)
    with pytest.raises(Conflict):
        social.update_section(case_id, "contact", {"address": "Old view"}, expected_version=seen)
    assert social.get_case(case_id)["contact"]["address"] == "Pelgu street"

    # Two writers at once: each commits whole, one after the other.
    version = social.get_case(case_id)["version"]
    calls = [
        social.update_section.call_async(case_id, "people", {"members": []}),
        rpc[SUPERVISOR].record_assessment.call_async(case_id, make_assessment(3)),
    ]
    for call in calls:
        call.result()
    assert social.get_case(case_id)["version"] == version + 2


@pytest.mark.parametrize(
    ("method", "arguments", "field"),
    [
        ("update_section", ("child", {**make_case_child(1), "sex": "robot"}), "sex"),
        ("update_section", ("child", {**make_case_child(1), "nickname": "x"}), "nickname"),
        ("update_section", ("school", {}), "section"),
        ("update_section", ("contact", {"email": "not-an-address"}), "email"),
        ("update_section", ("family", {"members": [{"relation": "mother"}]}), "members"),
        ("update_section", ("safety", {"concerns": [{"concern": "other"}]}), "concerns"),
        ("record_assessment", (make_assessment(1, risk_level="extreme"),), "risk_level"),
        ("record_assessment", ({**make_assessment(1), "child_views": None},), "child_views"),
        ("record_assessment", (make_assessment(1, assessed_on="2990-01-01"),), "assessed_on"),
        ("save_plan", ({"goals": []},), "goals"),
        ("request_closure", ({"reason": "other"},), "reason_text"),
        ("request_closure", ({"reason": "bored"},), "reason"),
        ("schedule_follow_up", ({"kind": "visit", "due_on": "2001-01-01"},), "due_on"),
        ("schedule_follow_up", ({"kind": "visit", "due_on": "tomorrow"},), "due_on"),
        ("add_note", ({"text": ""},), "text"),
        ("add_note", ({"text": "a\x00b"},), "text"),
        ("assign_case", ({"assign_to": "bad id with spaces"},), "assign_to"),
        ("update_section", ("contact", {}, "7"), "expected_version"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(rpc, engine, method, arguments, field):
    _, case_id, _ = open_case(rpc, by=SUPERVISOR)
    before = rpc[SUPERVISOR].get_case(case_id)
    with pytest.raises(BadInput) as refused:
        getattr(rpc[SUPERVISOR], method)(case_id, *arguments)
    errors = json.dumps(refused.value.errors)
    assert f'"{field}"' in errors, errors
    after = rpc[SUPERVISOR].get_case(case_id)
    assert after["version"] == before["version"] and after["notes_count"] == 0
    with pytest.raises(BadInput) as refused:
        getattr(rpc[SUPERVISOR], method)("not-a-case", *arguments)
    assert "case_id" in refused.value.errors


# --- what stays here ----------------------------------------------------------------------


def test_notes_and_texts_are_sealed_at_rest_and_never_published(rpc, engine, bus_tap):
    cid, case_id, referral = open_case(rpc)
    secret = "Qelsorhin dorvek talomen"
    rpc[SOCIAL].add_note(case_id, {"text": secret})
    rpc[SOCIAL].record_assessment(case_id, make_assessment(2, summary=secret))
    page = rpc[SOCIAL].list_notes(case_id)
    assert [n["text"] for n in page["items"]] == [secret]
    with engine.connect() as conn:
        dumped = json.dumps(
            [
                [str(v) for v in row]
                for table in ("cases", "case_notes", "case_assessments", "case_assignments")
                for row in conn.execute(sa.text(f"SELECT * FROM {table}"))  # noqa: S608
            ]
        )
    assert secret not in dumped and referral["child"]["given_name"] not in dumped
    wait_for(lambda: bus_tap(cid, "case.status_changed"))
    assert secret not in json.dumps(bus_tap(cid))


def test_notes_page_newest_first(rpc):
    _, case_id, _ = open_case(rpc)
    for n in range(5):
        rpc[SOCIAL].add_note(case_id, {"text": f"Note number {n}."})
    first = rpc[SOCIAL].list_notes(case_id, {"limit": 3})
    second = rpc[SOCIAL].list_notes(case_id, {"limit": 3, "before": first["next_cursor"]})
    texts = [n["text"] for n in first["items"] + second["items"]]
    assert texts == [f"Note number {n}." for n in (4, 3, 2, 1, 0)]
    assert second["next_cursor"] is None
    assert rpc[SOCIAL].get_case(case_id)["notes_count"] == 5


# --- partners on the case -----------------------------------------------------------------


def test_partners_statuses_and_every_request_abroad_on_the_case(rpc, engine):
    cid, case_id, _ = open_case(rpc)
    wait_for(lambda: rpc[SOCIAL].get_case(case_id)["partners"].get("justice"))
    now = dt.datetime.now(dt.UTC)
    late, on_time = str(uuid.uuid4()), str(uuid.uuid4())
    events = [
        publish_event(
            "investigation.opened",
            "justice_liaison",
            cid,
            1,
            {
                "investigation_id": str(uuid.uuid4()),
                "status": "opened",
                "opened_at": now.isoformat(),
            },
        ),
        # The status change of the late request overtakes its filing on the way.
        publish_event(
            "request.status_changed",
            "cross_border",
            cid,
            3,
            {
                "request_id": late,
                "status": "acknowledged",
                "due_at": (now - dt.timedelta(hours=2)).isoformat(),
                "changed_at": now.isoformat(),
            },
        ),
        publish_event(
            "request.filed",
            "cross_border",
            cid,
            1,
            {
                "request_id": late,
                "instrument": "european_production_order",
                "executing_country": "DE",
                "status": "sent",
                "due_at": (now - dt.timedelta(hours=4)).isoformat(),
                "filed_at": (now - dt.timedelta(days=11)).isoformat(),
            },
        ),
        publish_event(
            "request.filed",
            "cross_border",
            cid,
            2,
            {
                "request_id": on_time,
                "instrument": "mutual_legal_assistance",
                "executing_country": "IE",
                "status": "sent",
                "due_at": None,
                "filed_at": now.isoformat(),
            },
        ),
    ]
    for body in events:
        wait_for(lambda body=body: in_inbox(engine, body["event_id"]))
    partners = rpc[SOCIAL].get_case(case_id)["partners"]
    assert partners["justice"]["status"] == "opened" and not partners["justice"]["overdue"]
    requests = {r["request_id"]: r for r in partners["cross_border"]["requests"]}
    assert requests[late]["status"] == "acknowledged"  # the newer word stands
    assert requests[late]["executing_country"] == "DE"  # the filing's facts are kept
    assert requests[late]["overdue"] and not requests[on_time]["overdue"]
    assert partners["cross_border"]["overdue"]
    assert "social_services" not in partners

    case = rpc[SOCIAL].request_closure(case_id, {"reason": "moved_away"})
    assert {"investigation_active", "request_abroad_active"} <= set(case["closure"]["warnings"])
    [waiting] = [i for i in rpc[SUPERVISOR].approvals_queue() if i["case_id"] == case_id]
    assert waiting["kind"] == "closure" and "investigation_active" in waiting["warnings"]


# --- the hub takes the referral back -------------------------------------------------------


def hub_takes_back(cid, kind, sequence, agency="social_services", reason=None) -> dict:
    """The hub's `referral.revoked` or `referral.declined`, newer (by its sequence) than
    anything the hub said of this referral in the test."""
    at = dt.datetime.now(dt.UTC).isoformat()
    if kind == "revoked":
        payload = {"agency": agency, "reason": reason or "consent_withdrawn", "revoked_at": at}
    else:
        payload = {
            "agency": agency,
            "reason": reason or "already_known",
            "suggested_agency": None,
            "declined_at": at,
        }
    return publish_event(f"referral.{kind}", "referral", cid, sequence, payload)


def routing(cid, sequence, agencies) -> dict:
    return publish_event(
        "referral.routed",
        "referral",
        cid,
        sequence,
        {
            "agencies": agencies,
            "urgency": "high",
            "categories": ["sextortion"],
            "channel": "helpline",
            "rule": "intake_officer_decision",
            "routed_at": dt.datetime.now(dt.UTC).isoformat(),
        },
    )


def test_a_revoked_referral_closes_the_case_nobody_worked_on_and_the_hub_sees_it(
    rpc, bus_tap, engine
):
    cid, case_id, _ = open_case(rpc)
    revoked = hub_takes_back(cid, "revoked", 100)
    wait_for(lambda: in_inbox(engine, revoked["event_id"]))
    case = rpc[SUPERVISOR].get_case(case_id)
    assert case["status"] == "closed" and case["closure"] is None
    withdrawal = case["withdrawal"]
    assert (withdrawal["kind"], withdrawal["reason"], withdrawal["case_closed"]) == (
        "revoked",
        "consent_withdrawn",
        True,
    )
    assert audit_rows(engine, case_id, "case.referral_withdrawn") == [
        ("system", "case.referral_withdrawn", "allowed")
    ]
    [closed] = wait_for(lambda: bus_tap(cid, "case.status_changed"))
    assert closed["payload"]["status"] == "closed" and closed["sequence"] == 2
    # The hub's pipeline follows the case's own word.
    wait_for(
        lambda: rpc["hub"].pipeline_row(cid)["agencies"]["social_services"]["status"] == "closed"
    )

    # Delivered again, or an older decision arriving late: nothing changes.
    send(revoked)
    late = hub_takes_back(cid, "declined", 99)
    wait_for(lambda: in_inbox(engine, late["event_id"]))
    again = rpc[SUPERVISOR].get_case(case_id)
    assert again["version"] == case["version"] and again["withdrawal"] == withdrawal
    assert len(bus_tap(cid, "case.status_changed")) == 1
    assert len(audit_rows(engine, case_id, "case.referral_withdrawn")) == 1


@contextlib.contextmanager
def closed_by_the_hubs_revocation(rpc, bus_tap, engine) -> Iterator[tuple[str, str]]:
    """A case nobody worked on, closed by the hub's revocation of its routing: (coordination
    id, case id). While inside, the hub does not hear of the case (its events held back), so
    social services stay pending there and the hub may route, revoke and route again."""
    referral = make_referral(channel="helpline", categories=["sextortion"], urgency="high")
    cid = rpc["hub"].submit_referral(referral)["coordination_id"]
    [first_routing] = wait_for(lambda: bus_tap(cid, "referral.routed"))
    wait_for(lambda: in_inbox(engine, first_routing["event_id"]))
    with held_back("referral", "case.opened", "case.status_changed"):
        case_id = rpc[SOCIAL].accept_referral(cid)["case_id"]
        rpc["hub"].revoke(cid, {"agency": "social_services", "reason": "routed_in_error"})
        [revoked] = wait_for(lambda: bus_tap(cid, "referral.revoked"))
        wait_for(lambda: in_inbox(engine, revoked["event_id"]))
        assert rpc[SUPERVISOR].get_case(case_id)["status"] == "closed"
        yield cid, case_id


def test_accepted_again_after_a_withdrawal_closed_it_the_same_case_opens_again(
    rpc, bus_tap, engine
):
    with closed_by_the_hubs_revocation(rpc, bus_tap, engine) as (cid, case_id):
        # The hub routes it to social services again.
        rpc["hub"].reroute(cid, {"agencies": ["social_services"]})
        [routed_again] = wait_for(lambda: bus_tap(cid, "referral.routed")[1:])
        wait_for(lambda: in_inbox(engine, routed_again["event_id"]))

    receipt = rpc[SOCIAL_2].accept_referral(cid)
    assert receipt["case_id"] == case_id and receipt["status"] == "new"
    case = rpc[SUPERVISOR].get_case(case_id)
    assert case["status"] == "new" and case["withdrawal"] is None
    assert audit_rows(engine, case_id, "case.reopened") == [
        (SOCIAL_2.user_id, "case.reopened", "allowed")
    ]
    statuses = wait_for(
        lambda: [e["payload"]["status"] for e in bus_tap(cid, "case.status_changed")][1:] or None
    )
    assert statuses == ["new"]
    # The hub's pipeline follows: the case is open again.
    wait_for(
        lambda: (
            rpc["hub"].pipeline_row(cid)["agencies"]["social_services"]["status"] == "case_opened"
        )
    )
    # Accepting once more changes nothing.
    assert rpc[SOCIAL].accept_referral(cid)["case_id"] == case_id
    assert rpc[SUPERVISOR].get_case(case_id)["version"] == case["version"]


def test_a_case_already_worked_on_stays_open_flagged_until_routed_again(rpc, bus_tap, engine):
    cid, case_id, _ = open_case(rpc)
    case = rpc[SOCIAL].record_assessment(case_id, make_assessment(5))
    declined = hub_takes_back(cid, "declined", 100)
    wait_for(lambda: in_inbox(engine, declined["event_id"]))
    flagged = rpc[SOCIAL].get_case(case_id)
    assert flagged["status"] == "assessed" and flagged["version"] == case["version"] + 1
    assert flagged["withdrawal"]["kind"] == "declined"
    assert flagged["withdrawal"]["reason"] == "already_known"
    assert not flagged["withdrawal"]["case_closed"]
    # An older routing arriving late (newer only for justice) lifts nothing.
    late = routing(cid, 99, ["social_services", "justice"])
    wait_for(lambda: in_inbox(engine, late["event_id"]))
    assert rpc[SOCIAL].get_case(case_id)["withdrawal"] == flagged["withdrawal"]
    # Another agency's decision is only its partner status.
    justice = hub_takes_back(cid, "revoked", 101, agency="justice", reason="routed_in_error")
    wait_for(lambda: in_inbox(engine, justice["event_id"]))
    case = rpc[SOCIAL].get_case(case_id)
    assert case["partners"]["justice"]["status"] == "revoked"
    assert case["version"] == flagged["version"]

    routed = routing(cid, 102, ["social_services"])
    wait_for(lambda: in_inbox(engine, routed["event_id"]))
    case = rpc[SOCIAL].get_case(case_id)
    assert case["withdrawal"] is None and case["status"] == "assessed"
    assert not [
        e for e in bus_tap(cid, "case.status_changed") if e["payload"]["status"] == "closed"
    ]


def hub_word_kept(engine, cid: str) -> tuple[str, int]:
    """The hub's last word on social services that case_management keeps: status, sequence."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(partner_status.c.status, partner_status.c.last_sequence).where(
                partner_status.c.coordination_id == cid,
                partner_status.c.agency == "social_services",
                partner_status.c.producer == "referral",
            )
        ).one()
    return row.status, row.last_sequence


def test_a_hub_decision_older_than_the_acceptance_arriving_late_leaves_the_case_alone(
    rpc, bus_tap, engine
):
    """The hub revokes the routing to social services, then routes it there again; both
    events are late at case_management, and a worker accepts in between (the pull passes:
    the hub routes it there now). The late revocation is older than the acceptance: the
    case stays as it is. A decision newer than the acceptance still closes it."""
    referral = make_referral(channel="helpline", categories=["sextortion"], urgency="high")
    cid = rpc["hub"].submit_referral(referral)["coordination_id"]
    [first_routing] = wait_for(lambda: bus_tap(cid, "referral.routed"))
    wait_for(lambda: in_inbox(engine, first_routing["event_id"]))

    with held_back("case_management", "referral.revoked", "referral.routed"):
        rpc["hub"].revoke(cid, {"agency": "social_services", "reason": "routed_in_error"})
        rpc["hub"].reroute(cid, {"agencies": ["social_services"]})
        [revoked] = wait_for(lambda: bus_tap(cid, "referral.revoked"))
        [routed_again] = wait_for(lambda: bus_tap(cid, "referral.routed")[1:])
    assert first_routing["sequence"] < revoked["sequence"] < routed_again["sequence"]
    assert not in_inbox(engine, revoked["event_id"])

    case_id = rpc[SOCIAL].accept_referral(cid)["case_id"]
    # The pull's word, kept with the case: routed here, as of the hub's last event.
    status, as_of = hub_word_kept(engine, cid)
    assert status == "pending_acceptance" and as_of >= routed_again["sequence"]

    send(revoked)
    send(routed_again)
    wait_for(lambda: in_inbox(engine, revoked["event_id"]))
    wait_for(lambda: in_inbox(engine, routed_again["event_id"]))
    case = rpc[SUPERVISOR].get_case(case_id)
    assert case["status"] == "new" and case["version"] == 1 and case["withdrawal"] is None
    assert audit_rows(engine, case_id, "case.referral_withdrawn") == []

    newer = hub_takes_back(cid, "revoked", as_of + 100)
    wait_for(lambda: in_inbox(engine, newer["event_id"]))
    case = rpc[SUPERVISOR].get_case(case_id)
    assert case["status"] == "closed" and case["withdrawal"]["case_closed"]
    assert len(audit_rows(engine, case_id, "case.referral_withdrawn")) == 1


def test_a_hub_decision_older_than_the_acceptance_again_leaves_the_reopened_case_alone(
    rpc, bus_tap, engine
):
    """A revocation closes the case nobody worked on; the hub routes it here again, revokes,
    routes again, all late at case_management, and a worker accepts in between: the case
    opens again, and the late revocation, older than that acceptance, leaves it alone."""
    with closed_by_the_hubs_revocation(rpc, bus_tap, engine) as (cid, case_id):
        with held_back("case_management", "referral.revoked", "referral.routed"):
            rpc["hub"].reroute(cid, {"agencies": ["social_services"]})
            rpc["hub"].revoke(cid, {"agency": "social_services", "reason": "consent_withdrawn"})
            rpc["hub"].reroute(cid, {"agencies": ["social_services"]})
            wait_for(
                lambda: (
                    len(bus_tap(cid, "referral.routed")) == 3
                    and len(bus_tap(cid, "referral.revoked")) == 2
                )
            )
        assert rpc[SOCIAL_2].accept_referral(cid)["case_id"] == case_id
    reopened = rpc[SUPERVISOR].get_case(case_id)
    assert reopened["status"] == "new" and reopened["withdrawal"] is None

    # Late, the revocation first (out of order), then both routings.
    [_, routed_again, routed_last] = bus_tap(cid, "referral.routed")
    [_, revoked_again] = bus_tap(cid, "referral.revoked")
    assert routed_again["sequence"] < revoked_again["sequence"] < routed_last["sequence"]
    for event in (revoked_again, routed_again, routed_last):
        send(event)
        wait_for(lambda event=event: in_inbox(engine, event["event_id"]))
        case = rpc[SUPERVISOR].get_case(case_id)
        assert case["version"] == reopened["version"] and case["withdrawal"] is None
    assert len(audit_rows(engine, case_id, "case.referral_withdrawn")) == 1


def test_an_acceptance_the_hub_withdrew_meanwhile_opens_no_case(rpc, bus_tap, engine):
    """The worker's pull passes (the hub routes the referral here), then the hub revokes the
    routing and case_management hears of it before the case is committed: its handler found
    no case to close. The acceptance is refused, as a pull after the revocation would be,
    and the refusal audited; no case opens. (The moment between the pull and the commit is
    made wide here by keeping the newer revocation first.)"""
    referral = make_referral(channel="helpline", categories=["sextortion"], urgency="high")
    cid = rpc["hub"].submit_referral(referral)["coordination_id"]
    [routed] = wait_for(lambda: bus_tap(cid, "referral.routed"))
    wait_for(lambda: in_inbox(engine, routed["event_id"]))
    newer = hub_takes_back(cid, "revoked", routed["sequence"] + 100)
    wait_for(lambda: in_inbox(engine, newer["event_id"]))

    with pytest.raises(Forbidden):
        rpc[SOCIAL].accept_referral(cid)
    with engine.connect() as conn:
        opened = conn.execute(
            sa.select(sa.func.count())
            .select_from(cases_table)
            .where(cases_table.c.coordination_id == cid)
        ).scalar()
    assert opened == 0
    assert [row[1:] for row in audit_rows(engine, cid, "case.accept")] == [
        ("case.accept", "refused")
    ]
    assert hub_word_kept(engine, cid) == ("revoked", routed["sequence"] + 100)


# --- a child's own report ---------------------------------------------------------------------


def test_a_self_report_without_a_name_is_accepted_and_read(rpc):
    report = make_self_report(3)
    report.pop("child", None)  # a child reporting may give no name at all
    cid = rpc["hub"].submit_referral(report)["coordination_id"]
    # No consent on record: the intake officer routes it under a legal basis.
    rpc["hub"].reroute(cid, {"agencies": ["social_services"], "legal_basis": "child_safety"})
    receipt = rpc[SOCIAL].accept_referral(cid)
    case = rpc[SOCIAL].get_case(receipt["case_id"])
    assert case["status"] == "new" and case["child"]["given_name"] is None
    [item] = [
        i for i in rpc[SOCIAL].list_cases({"limit": 100})["items"] if i["coordination_id"] == cid
    ]
    assert item["child"] == {"given_name": None, "family_name": None, "age_years": None}


# --- the migration of old rows ------------------------------------------------------------


def test_cases_opened_before_the_case_work_revision_still_load(tmp_path):
    from alembic import command

    from concord_kit import crypto

    url = f"sqlite:///{tmp_path}/case_management.db"
    config = alembic_config("case_management", url)
    command.upgrade(config, "0001")
    engine = sa.create_engine(url)
    case_id, cid = str(uuid.uuid4()), str(uuid.uuid4())
    opened = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO cases (case_id, coordination_id, status, opened_at, opened_by, "
                "assigned_to, sealed_child) VALUES (:c, :k, 'new', :o, 'sw-old', 'sw-old', :s)"
            ),
            {
                "c": case_id,
                "k": cid,
                "o": opened,
                "s": crypto.seal({"given_name": "Lorin", "age_years": 9, "sex": "male"}),
            },
        )
    command.upgrade(config, "head")
    with sa.orm.Session(engine) as session:
        case = CaseRepository(session).get(uuid.UUID(case_id))
    assert case is not None and case.version == 1 and case.assigned_at == opened
    assert [a.assigned_to for a in case.assignments] == ["sw-old"]
    command.downgrade(config, "0001")
    command.upgrade(config, "head")
    engine.dispose()


# --- a case registered directly -----------------------------------------------------------


def test_a_case_registered_directly_gets_its_coordination_id_from_codes_alone(rpc, engine):
    registration = make_registration(9, registration_id=str(uuid.uuid4()))
    case = rpc[SOCIAL].register_case(registration)
    # The form sent twice: one case.
    assert rpc[SOCIAL].register_case(registration)["case_id"] == case["case_id"]
    assert case["case_id"] == registration["registration_id"]
    assert case["origin"] == "direct" and case["assigned_to"] == SOCIAL.user_id
    assert case["child"]["given_name"] == registration["child"]["given_name"]
    assert len(case["family"]) == len(registration["family"]["members"])
    cid = case["coordination_id"]
    row = wait_for(
        lambda: (
            (r := rpc["hub"].pipeline_row(cid))["agencies"]["social_services"]["status"]
            == "case_opened"
            and r
        )
    )
    assert row["channel"] == "social_services" and set(row["agencies"]) == {"social_services"}
    # The hub holds no details of it: nothing about the child travelled there.
    assert registration["child"]["given_name"] not in json.dumps(row)
    with pytest.raises((Forbidden, NotFound)):
        rpc["hub_as_police"].pull_details(cid)

    # The hub answers the same registration once; only social services register.
    codes = {"registration_id": str(uuid.uuid4()), "categories": ["grooming"], "urgency": "normal"}
    first = rpc["hub_as_social"].register_direct(codes)
    assert (
        rpc["hub_as_social"].register_direct(codes)["coordination_id"] == first["coordination_id"]
    )
    with pytest.raises(Forbidden):
        rpc["hub_as_police"].register_direct(codes)

    for stranger in (POLICE, COORDINATOR, OUTSIDER):
        with pytest.raises(Forbidden):
            rpc[stranger].register_case(registration)
    with pytest.raises(BadInput) as refused:
        rpc[SOCIAL].register_case({**registration, "urgency": "whenever"})
    assert "urgency" in refused.value.errors
