"""The referral hub's rules: routing, who may see what, the stage, stale events. No I/O."""

import datetime as dt
import uuid

import pytest

from concord_contracts.codes import (
    SEXUAL_EXPLOITATION_CATEGORIES,
    Agency,
    AgencyStatus,
    CaseStatus,
    Category,
    Channel,
    InvestigationStatus,
    Organisation,
    RequestStatus,
    Role,
    Stage,
    Urgency,
)
from concord_contracts.fields import CODE_PATTERN
from referral import domain
from referral.domain import (
    Condition,
    NoRoutingRule,
    Pipeline,
    ReferralFacts,
    RoutingRule,
    derive_stage,
    is_newer,
    may_pull_details,
    may_see_pipeline_row,
    read_partner_report,
    route,
    staff_agency,
)

pytestmark = pytest.mark.unit

T0 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


def facts(*categories, urgency=Urgency.normal, channel=Channel.helpline) -> ReferralFacts:
    return ReferralFacts(channel=channel, categories=tuple(categories), urgency=urgency)


def pipeline_for(*categories) -> Pipeline:
    referral = facts(*categories)
    return Pipeline.open(uuid.uuid4(), referral, route(referral), T0)


# --- routing ------------------------------------------------------------------------


@pytest.mark.parametrize("category", sorted(SEXUAL_EXPLOITATION_CATEGORIES))
def test_sexual_exploitation_goes_to_social_services_and_justice(category):
    decision = route(facts(category))
    assert decision.agencies == (Agency.social_services, Agency.justice)
    assert decision.rule == "sexual_exploitation"


def test_cyberstalking_alone_goes_to_social_services_alone():
    decision = route(facts(Category.cyberstalking))
    assert decision.agencies == (Agency.social_services,)
    assert decision.rule == "child_protection"


def test_every_category_is_routed_to_social_services():
    for category in Category:
        assert Agency.social_services in route(facts(category)).agencies


def test_one_sexual_category_among_others_brings_in_justice():
    decision = route(facts(Category.cyberstalking, Category.grooming))
    assert decision.agencies == (Agency.social_services, Agency.justice)


def test_rule_codes_are_codes():
    for rule in domain.DEFAULT_ROUTING_RULES:
        assert CODE_PATTERN.match(rule.code)
    assert len({r.code for r in domain.DEFAULT_ROUTING_RULES}) == len(domain.DEFAULT_ROUTING_RULES)


def test_rules_are_data_read_in_order_first_match_decides():
    rules = (
        RoutingRule(
            "urgent_platform_report",
            Condition(urgencies=frozenset({Urgency.immediate_danger})),
            (Agency.justice, Agency.social_services),
        ),
        *domain.DEFAULT_ROUTING_RULES,
    )
    urgent = route(facts(Category.cyberstalking, urgency=Urgency.immediate_danger), rules)
    assert urgent.rule == "urgent_platform_report"
    assert urgent.agencies == (Agency.social_services, Agency.justice)  # in agency order
    assert route(facts(Category.cyberstalking), rules).rule == "child_protection"


def test_a_condition_must_hold_in_every_part_given():
    condition = Condition(
        any_category=frozenset({Category.grooming}), channels=frozenset({Channel.school})
    )
    assert condition.holds_for(facts(Category.grooming, channel=Channel.school))
    assert not condition.holds_for(facts(Category.grooming, channel=Channel.helpline))
    assert not condition.holds_for(facts(Category.sextortion, channel=Channel.school))
    assert Condition().holds_for(facts(Category.sextortion))


def test_a_table_without_a_catch_all_can_fail_to_route():
    only_grooming = (
        RoutingRule(
            "grooming_only",
            Condition(any_category=frozenset({Category.grooming})),
            (Agency.justice,),
        ),
    )
    with pytest.raises(NoRoutingRule):
        route(facts(Category.cyberstalking), only_grooming)


# --- who may do what ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "organisation", "agency"),
    [
        (Role.social_worker, Organisation.social_services, Agency.social_services),
        (Role.supervisor, Organisation.social_services, Agency.social_services),
        (Role.police_liaison_officer, Organisation.justice, Agency.justice),
        (Role.central_authority_officer, Organisation.cross_border, Agency.cross_border),
        (Role.social_worker, Organisation.justice, None),  # a role of another agency
        (Role.intake_officer, Organisation.referral_hub, None),
        (Role.coordinator, Organisation.coordination_body, None),
        (Role.administrator, Organisation.system, None),
        (Role.administrator, Organisation.social_services, None),
    ],
)
def test_staff_agency(role, organisation, agency):
    assert staff_agency(role, organisation) == agency


def test_a_routed_agency_s_staff_may_pull_details():
    row = pipeline_for(Category.sextortion)
    assert may_pull_details(Role.social_worker, Organisation.social_services, row).allowed
    assert may_pull_details(Role.supervisor, Organisation.social_services, row).allowed
    assert may_pull_details(Role.police_liaison_officer, Organisation.justice, row).allowed


def test_an_agency_it_was_not_routed_to_may_not_pull_details():
    row = pipeline_for(Category.cyberstalking)
    refused = may_pull_details(Role.police_liaison_officer, Organisation.justice, row)
    assert not refused.allowed
    assert "justice" in refused.reason
    for role, organisation in [
        (Role.coordinator, Organisation.coordination_body),
        (Role.intake_officer, Organisation.referral_hub),
        (Role.administrator, Organisation.system),
        (Role.central_authority_officer, Organisation.cross_border),
        (Role.police_liaison_officer, Organisation.social_services),  # role and agency differ
    ]:
        assert not may_pull_details(role, organisation, row).allowed


@pytest.mark.parametrize("status", [AgencyStatus.declined, AgencyStatus.revoked])
def test_a_declined_or_revoked_routing_gives_no_details(status):
    row = pipeline_for(Category.grooming)
    row.agencies[Agency.justice].status = status
    assert not may_pull_details(Role.police_liaison_officer, Organisation.justice, row).allowed
    assert may_pull_details(Role.social_worker, Organisation.social_services, row).allowed


def test_an_agency_that_joined_without_routing_may_not_pull_details():
    row = pipeline_for(Category.grooming)
    row.apply(request_filed(), sequence=1)
    assert Agency.cross_border in row.agencies
    assert not may_pull_details(
        Role.central_authority_officer, Organisation.cross_border, row
    ).allowed
    assert not may_see_pipeline_row(Role.central_authority_officer, Organisation.cross_border, row)


def test_who_may_see_a_pipeline_row():
    row = pipeline_for(Category.cyberstalking)
    assert may_see_pipeline_row(Role.coordinator, Organisation.coordination_body, row)
    assert may_see_pipeline_row(Role.intake_officer, Organisation.referral_hub, row)
    assert may_see_pipeline_row(Role.administrator, Organisation.system, row)
    assert may_see_pipeline_row(Role.social_worker, Organisation.social_services, row)
    assert not may_see_pipeline_row(Role.police_liaison_officer, Organisation.justice, row)
    assert not may_see_pipeline_row(Role.central_authority_officer, Organisation.cross_border, row)


# --- the stage ------------------------------------------------------------------------

S = AgencyStatus


@pytest.mark.parametrize(
    ("statuses", "stage"),
    [
        ([S.pending_acceptance], Stage.routed),
        ([S.pending_acceptance, S.pending_acceptance], Stage.routed),
        ([S.case_opened, S.pending_acceptance], Stage.in_care),
        ([S.pending_acceptance, S.investigation_opened], Stage.in_care),
        ([S.accepted], Stage.in_care),
        ([S.closed, S.pending_acceptance], Stage.in_care),
        ([S.closed, S.investigation_opened], Stage.in_care),
        ([S.closed, S.closed], Stage.closed),
        ([S.closed, S.closed, S.request_filed], Stage.in_care),
        ([S.closed, S.declined], Stage.closed),
        ([S.declined, S.pending_acceptance], Stage.routed),
        ([S.declined, S.declined], Stage.triaged),  # back with the hub's intake officer
        ([S.declined, S.revoked], Stage.triaged),
        ([], Stage.triaged),
    ],
)
def test_stage_derivation(statuses, stage):
    assert derive_stage(statuses) == stage


def test_a_new_pipeline_row_is_routed_and_pending_everywhere_it_went():
    row = pipeline_for(Category.grooming)
    assert row.stage == Stage.routed
    assert set(row.agencies) == {Agency.social_services, Agency.justice}
    for state in row.agencies.values():
        assert state.status == AgencyStatus.pending_acceptance
        assert state.since == T0
        assert state.routed and state.rule == "sexual_exploitation"


# --- partner events -------------------------------------------------------------------


def case_event(event_type, status, at):
    time_field = "opened_at" if event_type == "case.opened" else "changed_at"
    return read_partner_report(
        event_type, {"case_id": uuid.uuid4(), "status": status, time_field: at}
    )


def request_filed(status=RequestStatus.sent):
    return read_partner_report(
        "request.filed",
        {
            "request_id": uuid.uuid4(),
            "instrument": "european_investigation_order",
            "executing_country": "DE",
            "status": status,
            "due_at": None,
            "filed_at": T0 + dt.timedelta(days=3),
        },
    )


def test_partner_status_mapping():
    at = T0
    assert case_event("case.opened", CaseStatus.new, at).status == S.case_opened
    assert case_event("case.status_changed", CaseStatus.assessed, at).status == S.case_opened
    assert case_event("case.status_changed", CaseStatus.closed, at).status == S.closed
    report = case_event("case.status_changed", CaseStatus.plan_approved, at)
    assert report.detail == "plan_approved" and report.at == at
    investigation = read_partner_report(
        "investigation.status_changed",
        {"investigation_id": uuid.uuid4(), "status": InvestigationStatus.charged, "changed_at": at},
    )
    assert investigation.agency == Agency.justice
    assert investigation.status == S.investigation_opened
    assert request_filed().status == S.request_filed
    assert request_filed(RequestStatus.executed).status == S.closed


def test_a_case_opened_is_an_acceptance_and_moves_the_stage():
    row = pipeline_for(Category.grooming)
    opened_at = T0 + dt.timedelta(hours=2)
    applied = row.apply(case_event("case.opened", CaseStatus.new, opened_at), sequence=1)
    assert applied.status_changed and applied.accepted
    state = row.agencies[Agency.social_services]
    assert state.status == S.case_opened and state.since == opened_at
    assert state.accepted_at == opened_at
    assert row.stage == Stage.in_care


def test_a_stale_event_is_ignored():
    row = pipeline_for(Category.cyberstalking)
    row.apply(case_event("case.opened", CaseStatus.new, T0), sequence=1)
    closed_at = T0 + dt.timedelta(days=30)
    row.apply(case_event("case.status_changed", CaseStatus.closed, closed_at), sequence=3)
    assert row.stage == Stage.closed
    late = row.apply(
        case_event("case.status_changed", CaseStatus.assessed, T0 + dt.timedelta(days=2)),
        sequence=2,
    )
    assert not late.status_changed and not late.accepted
    state = row.agencies[Agency.social_services]
    assert state.status == S.closed and state.since == closed_at and state.last_sequence == 3
    assert row.stage == Stage.closed


def test_an_opening_that_arrives_late_still_counts_as_the_acceptance_once():
    row = pipeline_for(Category.cyberstalking)
    row.apply(case_event("case.status_changed", CaseStatus.assessed, T0), sequence=2)
    late = row.apply(case_event("case.opened", CaseStatus.new, T0), sequence=1)
    assert late.accepted and not late.status_changed
    assert row.agencies[Agency.social_services].detail == "assessed"
    again = row.apply(case_event("case.opened", CaseStatus.new, T0), sequence=4)
    assert not again.accepted


def test_sequence_check():
    assert is_newer(1, 0)
    assert is_newer(5, 4)
    assert not is_newer(4, 4)
    assert not is_newer(3, 4)
