"""Justice's rules: who accepts, what an investigation record starts as, and the partner
statuses it keeps."""

import datetime as dt
import uuid

import pytest

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
from concord_contracts.hub_decisions import HubDecision
from concord_contracts.topology import CONSUMERS
from concord_kit import partners
from concord_kit.identity import Caller
from justice_liaison import domain
from justice_liaison.domain import Investigation
from justice_liaison.service import JusticeLiaisonService

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
POLICE = Caller("po-1", Role.police_liaison_officer, Organisation.justice)


def envelope(event_type, producer, payload, sequence=1):
    return new_envelope(
        event_type=event_type,
        schema_version=1,
        producer=producer,
        coordination_id=uuid.uuid4(),
        sequence=sequence,
        correlation_id="test",
        payload=payload,
    )


@pytest.mark.parametrize(
    ("caller", "allowed"),
    [
        (POLICE, True),
        (Caller("sw", Role.social_worker, Organisation.social_services), False),
        (Caller("sup", Role.supervisor, Organisation.social_services), False),
        (Caller("ca", Role.central_authority_officer, Organisation.cross_border), False),
        (Caller("x", Role.police_liaison_officer, Organisation.social_services), False),
        (Caller("a", Role.administrator, Organisation.system), False),
    ],
)
def test_only_a_police_liaison_officer_of_justice_accepts(caller, allowed):
    assert domain.may_accept(caller).allowed is allowed


def test_an_investigation_opens_with_the_details_of_that_referral():
    cid = uuid.uuid4()
    details = {"coordination_id": str(cid), "child": {"given_name": "Vekri"}}
    record = Investigation.open(cid, details, POLICE, NOW)
    assert record.status == InvestigationStatus.opened
    assert record.opened_by == POLICE.user_id and record.opened_at == NOW
    assert record.details == details
    with pytest.raises(domain.IncompleteDetails):
        Investigation.open(uuid.uuid4(), details, POLICE, NOW)


def test_a_routing_that_does_not_name_justice_is_none_of_its_business():
    routed = envelope(
        "referral.routed",
        "referral",
        {
            "agencies": [Agency.social_services],
            "urgency": Urgency.normal,
            "categories": [Category.cyberstalking],
            "channel": Channel.school,
            "rule": "child_protection",
            "routed_at": NOW,
        },
    )
    assert partners.updates_from(routed, domain.AGENCY) == []


def test_the_hub_announces_acceptance_and_social_services_their_case():
    accepted = envelope(
        "referral.accepted",
        "referral",
        {"agency": Agency.social_services, "accepted_at": NOW},
        sequence=3,
    )
    [update] = partners.updates_from(accepted, domain.AGENCY)
    assert (update.agency, update.status) == (Agency.social_services, AgencyStatus.accepted)
    changed = envelope(
        "case.status_changed",
        "case_management",
        {"case_id": uuid.uuid4(), "status": CaseStatus.assessed, "changed_at": NOW},
        sequence=2,
    )
    [update] = partners.updates_from(changed, domain.AGENCY)
    assert (update.agency, update.status, update.since) == (
        Agency.social_services,
        "assessed",
        NOW,
    )


def test_an_older_or_repeated_sequence_is_not_applied():
    assert not partners.is_newer(4, 4)
    assert not partners.is_newer(3, 4)
    assert partners.is_newer(5, 4)


def test_the_hub_s_word_on_justice_comes_with_the_pulled_details():
    details = {
        "coordination_id": str(uuid.uuid4()),
        "hub_status": {
            "agency": "justice",
            "status": "pending_acceptance",
            "since": NOW.isoformat(),
            "sequence": 6,
        },
    }
    word = partners.hub_word(details, domain.AGENCY)
    assert word.sequence == 6
    assert word.update == partners.PartnerUpdate(
        Agency.justice, str(AgencyStatus.pending_acceptance), NOW
    )
    # Another agency's word, or none, is no acceptance's ground.
    with pytest.raises(ValueError):
        partners.hub_word(details, Agency.social_services)
    with pytest.raises(ValueError):
        partners.hub_word({"coordination_id": details["coordination_id"]}, domain.AGENCY)


def test_the_service_follows_exactly_the_events_the_topology_routes_to_it():
    handled = {
        e.event_type
        for handler in (
            JusticeLiaisonService.track_partner,
            JusticeLiaisonService.follow_hub_decision,
        )
        for e in handler.nameko_entrypoints
    }
    assert handled == set(CONSUMERS["justice_liaison"])


@pytest.mark.parametrize("event_type", ["referral.revoked", "referral.declined"])
def test_a_withdrawn_referral_closes_a_record_only_opened_never_one_under_way(event_type):
    at = "revoked_at" if event_type == "referral.revoked" else "declined_at"
    decision = HubDecision.from_event(
        event_type, {"agency": Agency.justice, "reason": "better_agency", at: NOW}
    )
    details = {"coordination_id": str(uuid.uuid4())}
    opened = Investigation.open(uuid.UUID(details["coordination_id"]), details, POLICE, NOW)
    assert opened.referral_withdrawn(decision)
    assert opened.status == InvestigationStatus.closed
    assert not opened.referral_withdrawn(decision)  # closed already: nothing more
    under_way = Investigation.open(uuid.UUID(details["coordination_id"]), details, POLICE, NOW)
    under_way.status = InvestigationStatus.under_investigation
    assert not under_way.referral_withdrawn(decision)
    assert under_way.status == InvestigationStatus.under_investigation
    social = HubDecision.from_event(
        event_type, {"agency": Agency.social_services, "reason": None, at: NOW}
    )
    with pytest.raises(ValueError):
        opened.referral_withdrawn(social)
