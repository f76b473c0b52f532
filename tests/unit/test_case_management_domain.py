"""Social services' rules: who accepts and reads a case, what a new case is, and the
partner statuses it keeps (applied once, and only when newer)."""

import datetime as dt
import uuid

import pytest

from case_management import domain
from case_management.domain import Case
from case_management.service import CaseManagementService
from concord_contracts.codes import (
    Agency,
    AgencyStatus,
    CaseStatus,
    Category,
    Channel,
    InvestigationStatus,
    Organisation,
    Role,
    Urgency,
)
from concord_contracts.envelope import new_envelope
from concord_contracts.topology import CONSUMERS
from concord_kit import partners
from concord_kit.identity import Caller

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
SOCIAL = Caller("sw-1", Role.social_worker, Organisation.social_services)
OTHER_SOCIAL = Caller("sw-2", Role.social_worker, Organisation.social_services)
SUPERVISOR = Caller("sup-1", Role.supervisor, Organisation.social_services)
POLICE = Caller("po-1", Role.police_liaison_officer, Organisation.justice)
CHILD = {"given_name": "Talomen", "family_name": None, "age_years": 12, "sex": "female"}


def event(event_type, producer, payload, sequence=1, cid=None):
    return new_envelope(
        event_type=event_type,
        schema_version=1,
        producer=producer,
        coordination_id=cid or uuid.uuid4(),
        sequence=sequence,
        correlation_id="test",
        payload=payload,
    )


def routed(agencies, sequence=2, cid=None):
    return event(
        "referral.routed",
        "referral",
        {
            "agencies": list(agencies),
            "urgency": Urgency.high,
            "categories": [Category.grooming],
            "channel": Channel.helpline,
            "rule": "sexual_exploitation",
            "routed_at": NOW,
        },
        sequence=sequence,
        cid=cid,
    )


@pytest.mark.parametrize(
    ("caller", "allowed"),
    [
        (SOCIAL, True),
        (SUPERVISOR, True),
        (POLICE, False),
        # A social-services role claimed from another organisation is not social services.
        (Caller("x", Role.social_worker, Organisation.justice), False),
        (Caller("i", Role.intake_officer, Organisation.referral_hub), False),
        (Caller("c", Role.coordinator, Organisation.coordination_body), False),
    ],
)
def test_who_may_accept_for_social_services(caller, allowed):
    decision = domain.may_accept(caller)
    assert decision.allowed is allowed
    assert decision.reason


def test_a_new_case_is_new_and_assigned_to_who_accepted_it():
    cid = uuid.uuid4()
    case = Case.open(cid, CHILD, SOCIAL, NOW)
    assert case.status == CaseStatus.new
    assert case.assigned_to == SOCIAL.user_id == case.opened_by
    assert case.coordination_id == cid and case.opened_at == NOW
    assert case.child == CHILD and case.child is not CHILD


def test_the_workflow_status_follows_from_what_was_done():
    case = Case.open(uuid.uuid4(), CHILD, SOCIAL, NOW)
    case.assessed_at = NOW
    assert case.status == CaseStatus.assessed
    case.plan_approved_at = NOW
    case.services_started_at = NOW
    assert case.status == CaseStatus.services_under_way
    case.closed_at = NOW
    assert case.status == CaseStatus.closed


def test_only_the_assigned_worker_and_supervisors_read_a_case():
    case = Case.open(uuid.uuid4(), CHILD, SOCIAL, NOW)
    assert domain.may_read(SOCIAL, case).allowed
    assert domain.may_read(SUPERVISOR, case).allowed
    assert not domain.may_read(OTHER_SOCIAL, case).allowed
    assert not domain.may_read(POLICE, case).allowed
    assert not domain.may_read(
        Caller("sw-1", Role.social_worker, Organisation.justice), case
    ).allowed
    # The first gate, before a case is even looked up.
    assert domain.may_read_cases(OTHER_SOCIAL).allowed
    assert not domain.may_read_cases(POLICE).allowed


def test_the_child_record_comes_from_the_details_of_that_referral():
    cid = uuid.uuid4()
    details = {"coordination_id": str(cid), "child": CHILD, "summary": "Qelvek suritor."}
    assert domain.child_record(cid, details) == CHILD
    with pytest.raises(domain.IncompleteDetails):
        domain.child_record(uuid.uuid4(), details)
    with pytest.raises(domain.IncompleteDetails):
        domain.child_record(cid, {"coordination_id": str(cid)})


def test_a_routing_to_us_makes_every_routed_agency_pending():
    updates = partners.updates_from(routed([Agency.social_services, Agency.justice]), domain.AGENCY)
    assert {(u.agency, u.status) for u in updates} == {
        (Agency.social_services, AgencyStatus.pending_acceptance),
        (Agency.justice, AgencyStatus.pending_acceptance),
    }
    assert partners.updates_from(routed([Agency.justice]), domain.AGENCY) == []


def test_partner_events_carry_the_partners_own_status():
    opened = event(
        "investigation.opened",
        "justice_liaison",
        {"investigation_id": uuid.uuid4(), "status": InvestigationStatus.opened, "opened_at": NOW},
    )
    [update] = partners.updates_from(opened, domain.AGENCY)
    assert (update.agency, update.status, update.since) == (Agency.justice, "opened", NOW)


def test_only_a_newer_sequence_is_applied():
    assert partners.is_newer(1, None)
    assert partners.is_newer(3, 2)
    assert not partners.is_newer(2, 2)  # the same event again
    assert not partners.is_newer(1, 2)  # a late, older one


def test_an_agencys_own_word_outranks_the_hubs_and_our_own_is_left_out():
    hub = partners.PartnerStatus(Agency.justice, "referral", "accepted", NOW, None, 5)
    own = partners.PartnerStatus(Agency.justice, "justice_liaison", "charged", NOW, None, 2)
    us = partners.PartnerStatus(Agency.social_services, "referral", "accepted", NOW, None, 4)
    for order in ([hub, own, us], [own, hub, us]):
        shown = partners.view(order, exclude=domain.AGENCY)
        assert shown == {Agency.justice: own}
    assert partners.view([hub]) == {Agency.justice: hub}


def test_the_service_follows_exactly_the_events_the_topology_routes_to_it():
    handled = {e.event_type for e in CaseManagementService.track_partner.nameko_entrypoints}
    assert handled == set(CONSUMERS["case_management"])
