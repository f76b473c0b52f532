"""The agency services on the real broker and PostgreSQL, with the real referral hub:
accepting a referral (once), who may, what crosses the bus, partner statuses applied once
and in order, and requests abroad with their legal deadline."""

import datetime as dt
import json
import time
import uuid

import pytest
import sqlalchemy as sa

from case_management.models import cases
from case_management.service import CaseManagementService
from concord_contracts.codes import Organisation, Role
from concord_contracts.events import read_event
from concord_kit.db import make_engine
from concord_kit.errors import BadInput, Forbidden
from concord_kit.identity import Caller
from concord_kit.migrations import upgrade
from concord_kit.partners import PartnerStatuses, PartnerUpdate
from concord_kit.tables import audit_trail, inbox
from cross_border.service import CrossBorderService
from justice_liaison.models import investigations
from justice_liaison.service import JusticeLiaisonService
from tests.conftest import database_url
from tests.integration.support import held_back, in_inbox, publish_event, send
from tests.observe import wait_for
from tests.synthetic import make_referral

pytestmark = pytest.mark.integration

INTAKE = Caller("it-intake-1", Role.intake_officer, Organisation.referral_hub)
SOCIAL = Caller("it-social-1", Role.social_worker, Organisation.social_services)
OTHER_SOCIAL = Caller("it-social-2", Role.social_worker, Organisation.social_services)
SUPERVISOR = Caller("it-supervisor-1", Role.supervisor, Organisation.social_services)
POLICE = Caller("it-police-1", Role.police_liaison_officer, Organisation.justice)
CENTRAL = Caller("it-central-1", Role.central_authority_officer, Organisation.cross_border)


@pytest.fixture
def agencies(cluster):
    """The hub and the three agency services, and an RPC client per person."""
    from referral.service import ReferralService

    return cluster(
        ReferralService,
        CaseManagementService,
        JusticeLiaisonService,
        CrossBorderService,
        callers=(INTAKE, SOCIAL, OTHER_SOCIAL, SUPERVISOR, POLICE, CENTRAL),
    )


def submit(rpc, **overrides) -> tuple[str, dict]:
    referral = make_referral(categories=["sextortion", "grooming"], **overrides)
    receipt = rpc[INTAKE].referral.submit_referral(referral)
    return receipt["coordination_id"], referral


def investigation_event(cid, sequence, status, event_type="investigation.status_changed"):
    time_field = "opened_at" if event_type == "investigation.opened" else "changed_at"
    return publish_event(
        event_type,
        "justice_liaison",
        cid,
        sequence,
        {
            "investigation_id": str(uuid.UUID(int=7)),
            "status": status,
            time_field: dt.datetime(2026, 11, 23, 8, sequence, tzinfo=dt.UTC).isoformat(),
        },
    )


def partner_rows(engine, cid: str, agency: str) -> list[dict]:
    table = sa.table(
        "partner_status",
        sa.column("coordination_id"),
        sa.column("agency"),
        sa.column("producer"),
        sa.column("status"),
        sa.column("since"),
        sa.column("last_sequence"),
    )
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(table).where(table.c.coordination_id == cid, table.c.agency == agency)
        ).mappings()
        return [dict(r) for r in rows]


def settle(engine, cid) -> None:
    """Let what was queued before now be handled: a marker queued behind it (a request
    abroad's status: it leaves the investigation's status alone), applied, and a moment."""
    marker = publish_event(
        "request.status_changed",
        "cross_border",
        cid,
        1,
        {
            "request_id": str(uuid.uuid4()),
            "status": "acknowledged",
            "due_at": None,
            "changed_at": dt.datetime.now(dt.UTC).isoformat(),
        },
    )
    wait_for(lambda: in_inbox(engine, marker["event_id"]))
    time.sleep(0.3)


# --- accepting ------------------------------------------------------------------------


def test_accepting_opens_exactly_one_case_and_announces_it(agencies, bus_tap, database):
    rpc = agencies
    cid, referral = submit(rpc)

    # Twice at the same moment, then once more: one case.
    first = rpc[SOCIAL].case_management.accept_referral.call_async(cid)
    second = rpc[SUPERVISOR].case_management.accept_referral.call_async(cid)
    receipts = [first.result(), second.result(), rpc[SOCIAL].case_management.accept_referral(cid)]
    assert len({r["case_id"] for r in receipts}) == 1
    receipt = receipts[0]
    assert receipt["coordination_id"] == cid and receipt["status"] == "new"
    with database("case_management").connect() as conn:
        count = conn.execute(
            sa.select(sa.func.count()).select_from(cases).where(cases.c.coordination_id == cid)
        ).scalar()
        sealed = conn.execute(
            sa.select(cases.c.sealed_child).where(cases.c.coordination_id == cid)
        ).scalar()
    assert count == 1
    assert referral["child"]["given_name"] not in sealed  # encrypted at rest

    # case.opened really crossed the bus, once, valid, with nothing personal in it.
    published = wait_for(lambda: bus_tap(cid, "case.opened"))
    time.sleep(0.5)
    published = bus_tap(cid, "case.opened")
    assert len(published) == 1
    event = read_event(published[0])
    assert str(event.payload["case_id"]) == receipt["case_id"]
    assert event.producer == "case_management" and event.sequence == 1
    assert referral["child"]["given_name"] not in json.dumps(published)

    # The hub saw it: social services' status in the pipeline is case_opened.
    wait_for(
        lambda: (
            rpc[INTAKE].referral.pipeline_row(cid)["agencies"]["social_services"]["status"]
            == "case_opened"
        )
    )


def test_justice_follows_the_hub_taking_a_referral_back(agencies, bus_tap, database):
    rpc = agencies
    cid, _ = submit(rpc)
    receipt = rpc[POLICE].justice_liaison.accept_referral(cid)
    engine = database("justice_liaison")
    at = dt.datetime.now(dt.UTC).isoformat()
    payload = {"agency": "justice", "reason": "routed_in_error", "revoked_at": at}
    revoked = publish_event("referral.revoked", "referral", cid, 100, payload)
    wait_for(lambda: in_inbox(engine, revoked["event_id"]))
    send(revoked)  # delivered twice
    # A record only opened closes with it, says so on the bus, and the hub follows.
    [closed] = wait_for(lambda: bus_tap(cid, "investigation.status_changed"))
    assert closed["payload"]["status"] == "closed"
    assert closed["payload"]["investigation_id"] == receipt["investigation_id"]
    with engine.connect() as conn:
        status = conn.execute(
            sa.select(investigations.c.status).where(investigations.c.coordination_id == cid)
        ).scalar()
        audited = conn.execute(
            sa.select(audit_trail.c.user_id, audit_trail.c.reason).where(
                audit_trail.c.action == "investigation.referral_withdrawn",
                audit_trail.c.subject == receipt["investigation_id"],
            )
        ).all()
    assert status == "closed"
    assert [(user, reason.endswith("record closed")) for user, reason in audited] == [
        ("system", True)
    ]
    wait_for(
        lambda: rpc[INTAKE].referral.pipeline_row(cid)["agencies"]["justice"]["status"] == "closed"
    )
    time.sleep(0.5)
    assert len(bus_tap(cid, "investigation.status_changed")) == 1


def investigation_status(engine, cid: str) -> str:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(investigations.c.status).where(investigations.c.coordination_id == cid)
        ).scalar_one()


def test_a_hub_decision_older_than_the_acceptance_arriving_late_leaves_the_record_alone(
    agencies, bus_tap, database
):
    """The hub revokes the routing to justice, then routes it there again; both events are
    late at justice_liaison, and an officer accepts in between (the pull passes: the hub
    routes it there now). The late revocation is older than the acceptance: the record
    stays open. A decision newer than the acceptance still closes it."""
    rpc = agencies
    engine = database("justice_liaison")
    cid, _ = submit(rpc)
    [first_routing] = wait_for(lambda: bus_tap(cid, "referral.routed"))
    assert "justice" in first_routing["payload"]["agencies"]
    wait_for(lambda: in_inbox(engine, first_routing["event_id"]))

    with held_back("justice_liaison", "referral.revoked", "referral.routed"):
        rpc[INTAKE].referral.revoke(cid, {"agency": "justice", "reason": "routed_in_error"})
        rpc[INTAKE].referral.reroute(cid, {"agencies": ["justice"]})
        [revoked] = wait_for(lambda: bus_tap(cid, "referral.revoked"))
        [routed_again] = wait_for(lambda: bus_tap(cid, "referral.routed")[1:])
    assert first_routing["sequence"] < revoked["sequence"] < routed_again["sequence"]

    receipt = rpc[POLICE].justice_liaison.accept_referral(cid)
    [word] = [r for r in partner_rows(engine, cid, "justice") if r["producer"] == "referral"]
    assert word["last_sequence"] >= routed_again["sequence"]

    send(revoked)
    send(routed_again)
    wait_for(lambda: in_inbox(engine, revoked["event_id"]))
    wait_for(lambda: in_inbox(engine, routed_again["event_id"]))
    assert investigation_status(engine, cid) == "opened"
    with engine.connect() as conn:
        withdrawn = conn.execute(
            sa.select(sa.func.count())
            .select_from(audit_trail)
            .where(
                audit_trail.c.action == "investigation.referral_withdrawn",
                audit_trail.c.subject == receipt["investigation_id"],
            )
        ).scalar()
    assert withdrawn == 0

    at = dt.datetime.now(dt.UTC).isoformat()
    payload = {"agency": "justice", "reason": "consent_withdrawn", "revoked_at": at}
    newer = publish_event("referral.revoked", "referral", cid, word["last_sequence"] + 100, payload)
    wait_for(lambda: in_inbox(engine, newer["event_id"]))
    assert investigation_status(engine, cid) == "closed"


def test_an_acceptance_the_hub_withdrew_meanwhile_opens_no_record(agencies, bus_tap, database):
    """The officer's pull passes, then the hub revokes the routing to justice and
    justice_liaison hears of it before the record is committed (kept first here, to make
    that moment wide): the acceptance is refused and audited, and no record opens."""
    rpc = agencies
    engine = database("justice_liaison")
    cid, _ = submit(rpc)
    [routed] = wait_for(lambda: bus_tap(cid, "referral.routed"))
    wait_for(lambda: in_inbox(engine, routed["event_id"]))
    at = dt.datetime.now(dt.UTC).isoformat()
    payload = {"agency": "justice", "reason": "consent_withdrawn", "revoked_at": at}
    newer = publish_event("referral.revoked", "referral", cid, routed["sequence"] + 100, payload)
    wait_for(lambda: in_inbox(engine, newer["event_id"]))

    with pytest.raises(Forbidden):
        rpc[POLICE].justice_liaison.accept_referral(cid)
    with engine.connect() as conn:
        opened = conn.execute(
            sa.select(sa.func.count())
            .select_from(investigations)
            .where(investigations.c.coordination_id == cid)
        ).scalar()
        refusals = conn.execute(
            sa.select(audit_trail.c.outcome, audit_trail.c.user_id).where(
                audit_trail.c.subject == cid, audit_trail.c.action == "investigation.accept"
            )
        ).all()
    assert opened == 0
    assert [tuple(r) for r in refusals] == [("refused", POLICE.user_id)]


def test_a_police_officer_cannot_accept_for_social_services(agencies, database):
    rpc = agencies
    cid, _ = submit(rpc)
    with pytest.raises(Forbidden):
        rpc[POLICE].case_management.accept_referral(cid)
    with pytest.raises(Forbidden):
        rpc[SOCIAL].justice_liaison.accept_referral(cid)
    with database("case_management").connect() as conn:
        assert not conn.execute(sa.select(cases).where(cases.c.coordination_id == cid)).first()
        refusal = conn.execute(
            sa.select(audit_trail.c.outcome, audit_trail.c.user_id).where(
                audit_trail.c.subject == cid, audit_trail.c.action == "case.accept"
            )
        ).one()
    assert tuple(refusal) == ("refused", POLICE.user_id)

    # The police open their own record instead, once.
    opened = rpc[POLICE].justice_liaison.accept_referral(cid)
    again = rpc[POLICE].justice_liaison.accept_referral(cid)
    assert opened == again and opened["status"] == "opened"
    with database("justice_liaison").connect() as conn:
        count = conn.execute(
            sa.select(sa.func.count())
            .select_from(investigations)
            .where(investigations.c.coordination_id == cid)
        ).scalar()
    assert count == 1


def test_a_referral_not_routed_to_justice_cannot_be_accepted_there(agencies):
    rpc = agencies
    # Normal urgency from a school: no rule sends it to the police (immediate danger would).
    referral = make_referral(categories=["cyberstalking"], channel="school", urgency="normal")
    receipt = rpc[INTAKE].referral.submit_referral(referral)
    assert receipt["routed_to"] == ["social_services"]
    with pytest.raises(Forbidden):  # refused by the hub: the details are not justice's
        rpc[POLICE].justice_liaison.accept_referral(receipt["coordination_id"])
    with pytest.raises(BadInput):
        rpc[SOCIAL].case_management.accept_referral("not-an-id")


# --- reading a case -------------------------------------------------------------------


def test_a_case_is_shown_to_its_worker_and_supervisors_only(agencies, database):
    rpc = agencies
    cid, referral = submit(rpc)
    case_id = rpc[SOCIAL].case_management.accept_referral(cid)["case_id"]

    case = rpc[SOCIAL].case_management.get_case(case_id)
    assert case["child"]["given_name"] == referral["child"]["given_name"]
    assert case["assigned_to"] == SOCIAL.user_id and case["status"] == "new"
    assert rpc[SUPERVISOR].case_management.get_case(case_id)["case_id"] == case_id
    for stranger in (OTHER_SOCIAL, POLICE):
        with pytest.raises(Forbidden):
            rpc[stranger].case_management.get_case(case_id)

    # The partners as the hub and the police tell them; our own status is not a partner's.
    engine = database("case_management")
    wait_for(lambda: partner_rows(engine, cid, "justice"))
    investigation_event(cid, 3, "charged")
    partners = wait_for(
        lambda: (
            (p := rpc[SOCIAL].case_management.get_case(case_id)["partners"])
            and p.get("justice", {}).get("status") == "charged"
            and p
        )
    )
    assert "social_services" not in partners

    with engine.connect() as conn:
        reads = conn.execute(
            sa.select(audit_trail.c.user_id, audit_trail.c.outcome).where(
                audit_trail.c.subject == case_id, audit_trail.c.action == "case.read"
            )
        ).all()
    outcomes = {(user, outcome) for user, outcome in reads}
    assert (SOCIAL.user_id, "allowed") in outcomes
    assert (SUPERVISOR.user_id, "allowed") in outcomes
    assert (OTHER_SOCIAL.user_id, "refused") in outcomes
    assert (POLICE.user_id, "refused") in outcomes


# --- partner statuses: once, and only when newer ---------------------------------------


def test_a_duplicated_event_changes_nothing(agencies, database):
    rpc = agencies
    cid, _ = submit(rpc)
    engine = database("case_management")
    opened = investigation_event(cid, 1, "opened", event_type="investigation.opened")
    send(opened)  # the same event, delivered twice
    wait_for(lambda: in_inbox(engine, opened["event_id"]))
    settle(engine, cid)
    [row] = [r for r in partner_rows(engine, cid, "justice") if r["producer"] == "justice_liaison"]
    assert (row["status"], row["last_sequence"]) == ("opened", 1)

    # Newer news, then the old event once more: the newer status stands.
    newer = investigation_event(cid, 2, "under_investigation")
    wait_for(lambda: in_inbox(engine, newer["event_id"]))
    send(opened)
    settle(engine, cid)
    [row] = [r for r in partner_rows(engine, cid, "justice") if r["producer"] == "justice_liaison"]
    assert (row["status"], row["last_sequence"]) == ("under_investigation", 2)
    with engine.connect() as conn:
        assert (
            conn.execute(
                sa.select(sa.func.count())
                .select_from(inbox)
                .where(inbox.c.event_id == opened["event_id"])
            ).scalar()
            == 1
        )


def test_an_older_event_arriving_late_is_ignored(agencies, database):
    rpc = agencies
    cid, _ = submit(rpc)
    engine = database("case_management")
    later = investigation_event(cid, 3, "charged")
    wait_for(lambda: in_inbox(engine, later["event_id"]))
    earlier = investigation_event(cid, 2, "under_investigation")
    wait_for(lambda: in_inbox(engine, earlier["event_id"]))  # received, recorded...
    [row] = [r for r in partner_rows(engine, cid, "justice") if r["producer"] == "justice_liaison"]
    assert (row["status"], row["last_sequence"]) == ("charged", 3)  # ...and not applied


# --- requests abroad ------------------------------------------------------------------


def test_filing_a_request_computes_its_deadline_and_announces_it(agencies, bus_tap, database):
    rpc = agencies
    cid, _ = submit(rpc)
    request = {
        "instrument": "european_production_order",
        "executing_country": "DE",
        "emergency": True,
        "measures": ["subscriber_data", "traffic_data"],
    }
    receipt = rpc[POLICE].cross_border.file_request(cid, request)
    filed_at = dt.datetime.fromisoformat(receipt["filed_at"])
    assert dt.datetime.fromisoformat(receipt["due_at"]) == filed_at + dt.timedelta(hours=8)
    assert receipt["clock"] == "data_production" and receipt["status"] == "sent"

    mla = rpc[CENTRAL].cross_border.file_request(
        cid, {**request, "instrument": "mutual_legal_assistance", "emergency": False}
    )
    assert mla["due_at"] is None and mla["clock"] is None
    silence = dt.datetime.fromisoformat(mla["silence_warning_at"])
    assert silence == dt.datetime.fromisoformat(mla["filed_at"]) + dt.timedelta(days=30)

    [event] = wait_for(
        lambda: [
            e
            for e in bus_tap(cid, "request.filed")
            if e["payload"]["request_id"] == receipt["request_id"]
        ]
    )
    payload = read_event(event).payload
    assert payload["due_at"] == dt.datetime.fromisoformat(receipt["due_at"])
    assert payload["executing_country"] == "DE"

    # Social services see it among the partners of that referral.
    engine = database("case_management")
    wait_for(lambda: partner_rows(engine, cid, "cross_border"))


def test_a_bad_request_is_refused_naming_the_field_and_nothing_is_filed(agencies, bus_tap):
    rpc = agencies
    cid, _ = submit(rpc)
    good = {
        "instrument": "european_production_order",
        "executing_country": "DE",
        "emergency": False,
        "measures": ["subscriber_data"],
    }
    for bad, field in (
        ({**good, "executing_country": "Germany"}, "executing_country"),
        ({**good, "instrument": "carrier_pigeon"}, "instrument"),
        ({**good, "measures": []}, "measures"),
        ({**good, "measures": ["witness_hearing"]}, "measures"),  # not under an EPO
        ({**good, "emergency": "yes"}, "emergency"),
        ({**good, "suspect_name": "Talo"}, "suspect_name"),
    ):
        with pytest.raises(BadInput) as refused:
            rpc[POLICE].cross_border.file_request(cid, bad)
        assert field in refused.value.errors
    with pytest.raises(Forbidden):
        rpc[SOCIAL].cross_border.file_request(cid, good)
    time.sleep(0.5)
    assert bus_tap(cid, "request.filed") == []


# --- the partner-status table itself, on both databases -----------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_and_the_sequence_checked_upsert(backend, tmp_path, clean_environment):
    for service in ("case_management", "justice_liaison", "cross_border"):
        url = f"sqlite:///{tmp_path}/{service}.db" if backend == "sqlite" else database_url(service)
        upgrade(service, url)
    engine = make_engine(url)  # cross_border's
    from cross_border.models import partner_status

    cid = str(uuid.uuid4())
    at = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)

    def record(sequence, status, producer="justice_liaison"):
        with sa.orm.Session(engine) as session, session.begin():
            return PartnerStatuses(session, partner_status).record(
                cid, producer, sequence, PartnerUpdate("justice", status, at)
            )

    def current():
        with sa.orm.Session(engine) as session:
            return {
                s.producer: (s.status, s.last_sequence)
                for s in PartnerStatuses(session, partner_status).of(cid)
            }

    assert record(2, "opened")
    assert not record(2, "opened")  # the same again
    assert not record(1, "closed")  # older
    assert record(4, "charged")
    assert record(1, "accepted", producer="referral")  # another producer's own count
    assert current() == {"justice_liaison": ("charged", 4), "referral": ("accepted", 1)}
    engine.dispose()


def test_an_accept_that_loses_the_race_returns_the_case_already_opened(
    agencies, database, monkeypatch
):
    """Two workers both find no case, both pull, both insert: the UNIQUE constraint refuses
    the second, which answers with the first's case and publishes nothing."""
    rpc = agencies
    cid, _ = submit(rpc)
    opened = rpc[SOCIAL].case_management.accept_referral(cid)

    original = CaseManagementService._case_for
    calls = []

    def blind_first_look(self, coordination_id):
        calls.append(coordination_id)
        return None if len(calls) == 1 else original(self, coordination_id)

    monkeypatch.setattr(CaseManagementService, "_case_for", blind_first_look)
    assert rpc[SUPERVISOR].case_management.accept_referral(cid) == opened
    assert len(calls) == 2  # the blind look, then the look after the refused insert
    with database("case_management").connect() as conn:
        count = conn.execute(
            sa.select(sa.func.count()).select_from(cases).where(cases.c.coordination_id == cid)
        ).scalar()
    assert count == 1
