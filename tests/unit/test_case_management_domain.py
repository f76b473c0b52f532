"""Social services' rules: who accepts and reads a case, what a new case is, the partner
statuses it keeps (applied once, and only when newer), and the case work: the workflow
derived from what was done, assessments signed, plans approved by another supervisor,
services moving forward only, follow-ups overdue by the clock, closure and reopening."""

import dataclasses
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
    ClosureReason,
    ClosureWarning,
    FollowUpKind,
    FollowUpStatus,
    InvestigationStatus,
    NeedDomain,
    Organisation,
    PlanState,
    Role,
    ServiceStatus,
    Urgency,
)
from concord_contracts.envelope import new_envelope
from concord_contracts.hub_decisions import HubDecision
from concord_contracts.topology import CONSUMERS
from concord_kit import partners
from concord_kit.identity import Caller

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
TODAY = NOW.date()
SOCIAL = Caller("sw-1", Role.social_worker, Organisation.social_services)
OTHER_SOCIAL = Caller("sw-2", Role.social_worker, Organisation.social_services)
SUPERVISOR = Caller("sup-1", Role.supervisor, Organisation.social_services)
SUPERVISOR_2 = Caller("sup-2", Role.supervisor, Organisation.social_services)
POLICE = Caller("po-1", Role.police_liaison_officer, Organisation.justice)
CHILD = {"given_name": "Talomen", "family_name": None, "age_years": 12, "sex": "female"}


def later(**delta) -> dt.datetime:
    return NOW + dt.timedelta(**delta)


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


def assessment(**overrides):
    need = {"level": "medium", "notes": None}
    return {
        "assessed_on": None,
        "risk_level": "high",
        "needs": {d.value: dict(need) for d in NeedDomain},
        "summary": "Vekdorsu talomen rikazu.",
        "child_views": "Wants to stay at school.",
        "child_views_not_recorded": None,
        **overrides,
    }


def goals(*services, due_on=None):
    """One goal with the given services (kind names), due in two weeks by default."""
    due_on = due_on or TODAY + dt.timedelta(days=14)
    return [
        {
            "goal_id": None,
            "domain": NeedDomain.mental_health,
            "description": "Recover from the harm.",
            "services": [
                {"service_id": None, "kind": kind, "provider": "Qeltor centre", "due_on": due_on}
                for kind in services
            ],
        }
    ]


def assessed_case() -> Case:
    case = Case.open(uuid.uuid4(), CHILD, SOCIAL, NOW)
    case.record_assessment(assessment(), SOCIAL, NOW)
    return case


def approved_case(*services: str) -> Case:
    case = assessed_case()
    case.save_plan(goals(*(services or ("mental_health",))), SOCIAL, later(hours=1))
    case.submit_plan(SOCIAL, later(hours=1))
    case.approve_plan(SUPERVISOR, later(hours=2))
    return case


# --- who may -----------------------------------------------------------------------------


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
def test_who_may_accept_and_register_for_social_services(caller, allowed):
    for decision in (domain.may_accept(caller), domain.may_register(caller)):
        assert decision.allowed is allowed
        assert decision.reason


def test_only_supervisors_of_social_services_supervise():
    assert domain.may_supervise(SUPERVISOR).allowed
    for caller in (
        SOCIAL,
        POLICE,
        Caller("s", Role.supervisor, Organisation.justice),
        Caller("a", Role.administrator, Organisation.system),
    ):
        assert not domain.may_supervise(caller).allowed


def test_a_social_worker_lists_only_their_own_cases():
    assert domain.may_list(SOCIAL, None).allowed
    assert domain.may_list(SOCIAL, SOCIAL.user_id).allowed
    assert not domain.may_list(SOCIAL, OTHER_SOCIAL.user_id).allowed
    assert domain.scoped_assignee(SOCIAL, None) == SOCIAL.user_id
    assert domain.may_list(SUPERVISOR, OTHER_SOCIAL.user_id).allowed
    assert domain.scoped_assignee(SUPERVISOR, None) is None
    assert domain.scoped_assignee(SUPERVISOR, "sw-2") == "sw-2"
    assert not domain.may_list(POLICE, None).allowed


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
    assert not domain.may_read_cases(
        Caller("c", Role.coordinator, Organisation.coordination_body)
    ).allowed


# --- opening ----------------------------------------------------------------------------


def test_a_new_case_is_new_and_assigned_to_who_accepted_it():
    cid = uuid.uuid4()
    case = Case.open(cid, CHILD, SOCIAL, NOW)
    assert case.status == CaseStatus.new
    assert case.assigned_to == SOCIAL.user_id == case.opened_by
    assert case.assigned_at == NOW and case.version == 1
    assert case.coordination_id == cid and case.opened_at == NOW
    assert case.child == CHILD and case.child is not CHILD
    [first] = case.assignments
    assert (first.assigned_to, first.by_supervisor, first.reason) == (SOCIAL.user_id, False, None)


def test_a_direct_registration_keeps_its_sections_with_person_ids():
    case = Case.open(
        uuid.uuid4(),
        CHILD,
        SOCIAL,
        NOW,
        origin="direct",
        sections={"family": {"members": [{"given_name": "Rita", "relation": "mother"}]}},
    )
    [mother] = case.family
    assert uuid.UUID(mother["person_id"]) and mother["relation"] == "mother"
    kept = mother["person_id"]
    case.update_section("family", {"members": [mother]}, SOCIAL)
    assert case.family[0]["person_id"] == kept  # sent back, kept


def test_the_child_record_comes_from_the_details_of_that_referral():
    cid = uuid.uuid4()
    details = {"coordination_id": str(cid), "child": CHILD, "summary": "Qelvek suritor."}
    record = domain.child_record(cid, details)
    assert {k: record[k] for k in CHILD} == CHILD
    assert "summary" not in record
    with pytest.raises(domain.IncompleteDetails):
        domain.child_record(uuid.uuid4(), details)
    # A child's own report may carry no name: the record starts partial.
    partial = domain.child_record(cid, {"coordination_id": str(cid), "child": None})
    assert partial["given_name"] is None and partial["languages"] == []


def test_age_from_the_date_of_birth_or_as_recorded():
    assert domain.age_on({"date_of_birth": "2012-11-24"}, TODAY) == 13
    assert domain.age_on({"date_of_birth": "2012-11-23"}, TODAY) == 14
    assert domain.age_on({"age_years": 9}, TODAY) == 9
    assert domain.age_on({}, TODAY) is None


# --- the workflow ------------------------------------------------------------------------


def test_the_workflow_status_follows_from_what_was_done():
    case = Case.open(uuid.uuid4(), CHILD, SOCIAL, NOW)
    case.assessed_at = NOW
    assert case.status == CaseStatus.assessed
    case.plan_approved_at = NOW
    case.services_started_at = NOW
    assert case.status == CaseStatus.services_under_way
    case.closed_at = NOW
    assert case.status == CaseStatus.closed


def test_a_case_walks_the_whole_workflow_and_the_bar_shows_when_each_step_was_reached():
    case = approved_case("mental_health", "legal_aid")
    assert case.status == CaseStatus.plan_approved
    first = case.services[0]
    case.update_service(first.service_id, {"status": "in_progress"}, SOCIAL, later(days=1))
    assert case.status == CaseStatus.services_under_way
    case.request_closure(ClosureReason.goals_met, None, SOCIAL, later(days=30))
    assert case.status == CaseStatus.closure_requested
    case.approve_closure(SUPERVISOR, later(days=31))
    assert case.status == CaseStatus.closed
    bar = case.workflow()
    assert [step for step, _ in bar] == list(domain.WORKFLOW)
    assert all(at is not None for _, at in bar)
    assert [at for _, at in bar] == sorted(at for _, at in bar)


def test_every_change_moves_the_version_on():
    case = Case.open(uuid.uuid4(), CHILD, SOCIAL, NOW)
    case.update_section("contact", {"address": "Sorhin street"}, SOCIAL)
    case.record_assessment(assessment(), SOCIAL, NOW)
    assert case.version == 3


# --- assessment --------------------------------------------------------------------------


def test_an_assessment_is_signed_and_its_digest_shows_any_edit():
    case = Case.open(uuid.uuid4(), CHILD, SOCIAL, NOW)
    signed = case.record_assessment(assessment(), SOCIAL, NOW)
    assert case.status == CaseStatus.assessed and case.assessed_at == NOW
    assert signed.recorded_by == SOCIAL.user_id and signed.assessed_on == TODAY
    assert signed.verify()
    assert not dataclasses.replace(signed, summary="Edited afterwards.").verify()
    assert not dataclasses.replace(signed, recorded_by="someone-else").verify()
    # A second assessment is the latest; the case was assessed with the first.
    again = case.record_assessment(assessment(risk_level="low"), SUPERVISOR, later(days=10))
    assert case.assessment == again and case.assessments_count == 2
    assert case.assessed_at == NOW


def test_an_assessment_is_not_dated_in_the_future_nor_made_on_a_closing_case():
    case = Case.open(uuid.uuid4(), CHILD, SOCIAL, NOW)
    with pytest.raises(domain.InvalidField) as refused:
        case.record_assessment(assessment(assessed_on=TODAY + dt.timedelta(days=1)), SOCIAL, NOW)
    assert refused.value.field == "assessed_on"
    assert case.status == CaseStatus.new and case.version == 1
    case.request_closure(ClosureReason.moved_away, None, SOCIAL, NOW)
    with pytest.raises(domain.WrongState):
        case.record_assessment(assessment(), SOCIAL, NOW)


# --- the plan and its approval -----------------------------------------------------------


def test_a_plan_follows_an_assessment_and_needs_a_service_to_be_submitted():
    case = Case.open(uuid.uuid4(), CHILD, SOCIAL, NOW)
    with pytest.raises(domain.WrongState):
        case.save_plan(goals("mental_health"), SOCIAL, NOW)
    case.record_assessment(assessment(), SOCIAL, NOW)
    case.save_plan(goals(), SOCIAL, NOW)
    assert case.plan.state == PlanState.draft and case.plan.version == 1
    with pytest.raises(domain.InvalidField) as refused:
        case.submit_plan(SOCIAL, NOW)
    assert refused.value.field == "goals"
    case.save_plan(goals("mental_health"), SOCIAL, NOW)
    case.submit_plan(SOCIAL, NOW)
    assert case.pending_approval == "plan" and case.pending_since == NOW
    with pytest.raises(domain.WrongState):
        case.submit_plan(SOCIAL, NOW)  # already waiting


def test_a_supervisor_never_approves_their_own_plan():
    case = assessed_case()
    case.save_plan(goals("legal_aid"), SUPERVISOR, NOW)
    case.submit_plan(SUPERVISOR, NOW)
    for decide in (
        lambda: case.approve_plan(SUPERVISOR, NOW),
        lambda: case.return_plan(SUPERVISOR, NOW, "Not enough."),
    ):
        with pytest.raises(domain.WrongState, match="another supervisor"):
            decide()
    # Written by a social worker, submitted by the supervisor: still theirs.
    case.save_plan(goals("legal_aid"), SOCIAL, NOW)
    case.submit_plan(SUPERVISOR, NOW)
    with pytest.raises(domain.WrongState):
        case.approve_plan(SUPERVISOR, NOW)
    case.approve_plan(SUPERVISOR_2, later(hours=1), "Fine.")
    assert case.plan.state == PlanState.approved and case.plan.decided_by == SUPERVISOR_2.user_id
    assert case.status == CaseStatus.plan_approved and case.pending_approval is None


def test_a_returned_plan_says_why_and_is_written_again():
    case = assessed_case()
    case.save_plan(goals("education"), SOCIAL, NOW)
    case.submit_plan(SOCIAL, NOW)
    case.return_plan(SUPERVISOR, later(hours=1), "Add family support.")
    assert case.plan.state == PlanState.returned and case.plan.return_reason
    assert case.status == CaseStatus.assessed and case.pending_approval is None
    with pytest.raises(domain.WrongState):
        case.approve_plan(SUPERVISOR, NOW)  # nothing is waiting
    case.submit_plan(SOCIAL, later(hours=2))  # resubmitted as it is
    case.approve_plan(SUPERVISOR, later(hours=3))
    assert case.plan.return_reason is None and case.plan.approved_version == 1


def test_revising_an_approved_plan_keeps_the_approved_version_in_force():
    case = approved_case("mental_health")
    kept = case.services[0]
    revision = goals("mental_health", "family_support")
    revision[0]["services"][0]["service_id"] = kept.service_id
    case.save_plan(revision, SOCIAL, later(days=1))
    assert (case.plan.version, case.plan.state, case.plan.approved_version) == (2, "draft", 1)
    assert case.status == CaseStatus.plan_approved
    new = next(s for s in case.services if s.service_id != kept.service_id)
    # The approved service moves on; the one added by the revision waits for its approval.
    case.update_service(kept.service_id, {"status": "referred"}, SOCIAL, later(days=1))
    with pytest.raises(domain.WrongState, match="not approved"):
        case.update_service(new.service_id, {"status": "in_progress"}, SOCIAL, later(days=1))
    case.submit_plan(SOCIAL, later(days=1))
    case.approve_plan(SUPERVISOR, later(days=2))
    assert case.plan.approved_version == 2 and new.approved


def test_services_left_out_of_a_plan():
    case = approved_case("mental_health", "legal_aid")
    started, planned = case.services
    case.update_service(started.service_id, {"status": "in_progress"}, SOCIAL, NOW)
    # A planned service left out is cancelled; one under way cannot be left out.
    keep_started = goals("education")
    keep_started[0]["services"].append(
        {
            "service_id": started.service_id,
            "kind": "mental_health",
            "provider": "Qeltor centre",
            "due_on": started.due_on,
        }
    )
    case.save_plan(keep_started, SOCIAL, NOW)
    assert planned.status == ServiceStatus.cancelled and planned.status_note
    with pytest.raises(domain.WrongState, match="under way"):
        case.save_plan(goals("education"), SOCIAL, NOW)
    unknown = goals("education")
    unknown[0]["services"][0]["service_id"] = uuid.uuid4()
    with pytest.raises(domain.InvalidField) as refused:
        case.save_plan(unknown, SOCIAL, NOW)
    assert refused.value.as_errors() == {
        "goals": {"0": {"services": {"0": {"service_id": ["No such service on this case."]}}}}
    }
    past = goals("education", due_on=TODAY - dt.timedelta(days=1))
    with pytest.raises(domain.InvalidField, match="past"):
        case.save_plan(past, SOCIAL, NOW)


# --- services ----------------------------------------------------------------------------


def test_a_service_only_moves_forward_and_stops_when_delivered():
    case = approved_case("medical")
    service = case.services[0]
    sid = service.service_id
    case.update_service(sid, {"status": "referred"}, SOCIAL, NOW)
    assert case.status == CaseStatus.plan_approved  # referred is not yet delivering
    case.update_service(sid, {"status": "in_progress"}, SOCIAL, later(days=1))
    assert case.status == CaseStatus.services_under_way
    assert case.services_started_at == later(days=1)
    with pytest.raises(domain.WrongState):
        case.update_service(sid, {"status": "planned"}, SOCIAL, NOW)
    with pytest.raises(domain.InvalidField) as refused:
        case.update_service(
            sid, {"status": "delivered", "delivered_on": TODAY + dt.timedelta(days=3)}, SOCIAL, NOW
        )
    assert refused.value.field == "delivered_on"
    case.update_service(sid, {"status": "delivered", "delivered_on": TODAY}, SOCIAL, NOW)
    for status in ("cancelled", "delivered"):
        with pytest.raises(domain.WrongState):
            case.update_service(sid, {"status": status, "status_note": "x"}, SOCIAL, NOW)
    with pytest.raises(domain.Missing):
        case.update_service(uuid.uuid4(), {"status": "referred"}, SOCIAL, NOW)


def test_a_service_of_a_plan_not_yet_approved_does_not_move():
    case = assessed_case()
    case.save_plan(goals("medical"), SOCIAL, NOW)
    with pytest.raises(domain.WrongState, match="not approved"):
        case.update_service(case.services[0].service_id, {"status": "in_progress"}, SOCIAL, NOW)


# --- follow-ups, reviews and what is overdue -----------------------------------------------


def test_follow_ups_are_overdue_by_the_clock_and_the_earliest_is_due_next():
    case = approved_case("medical")  # the service is due in 14 days
    visit = case.schedule_follow_up(FollowUpKind.visit, TODAY + dt.timedelta(days=3), SOCIAL, NOW)
    due = case.due(TODAY)
    assert (due.next_due_on, due.next_due_kind, due.overdue) == (visit.due_on, "visit", False)
    # Four days on, the visit is overdue; twenty days on, the service too.
    assert case.due(TODAY + dt.timedelta(days=4)).overdue_count == 1
    assert visit.overdue(TODAY + dt.timedelta(days=4))
    assert case.due(TODAY + dt.timedelta(days=20)).overdue_count == 2
    with pytest.raises(domain.InvalidField, match="past"):
        case.schedule_follow_up(FollowUpKind.visit, TODAY - dt.timedelta(days=1), SOCIAL, NOW)


def test_a_review_records_the_childs_views_and_schedules_the_next():
    case = assessed_case()
    review = case.schedule_follow_up(FollowUpKind.review, TODAY, SOCIAL, NOW)
    outcome = {"done_on": TODAY, "summary": "Talovek sorin.", "next_due_on": None}
    with pytest.raises(domain.InvalidField) as refused:
        case.record_follow_up(review.follow_up_id, outcome, SOCIAL, NOW)
    assert refused.value.field == "child_views"
    next_on = TODAY + dt.timedelta(days=30)
    case.record_follow_up(
        review.follow_up_id,
        {**outcome, "child_views_not_recorded": "too_young", "next_due_on": next_on},
        SOCIAL,
        NOW,
    )
    assert review.status == FollowUpStatus.done and review.recorded_by == SOCIAL.user_id
    [following] = [f for f in case.follow_ups if f.status == FollowUpStatus.scheduled]
    assert (following.kind, following.due_on) == (FollowUpKind.review, next_on)
    with pytest.raises(domain.WrongState):
        case.record_follow_up(review.follow_up_id, outcome, SOCIAL, NOW)
    with pytest.raises(domain.InvalidField, match="before it happens"):
        case.record_follow_up(
            following.follow_up_id,
            {**outcome, "done_on": TODAY + dt.timedelta(days=1), "child_views": "Fine."},
            SOCIAL,
            NOW,
        )
    case.cancel_follow_up(following.follow_up_id, "Moved.", SOCIAL, NOW)
    assert case.due(TODAY).next_due_on is None


# --- closure -----------------------------------------------------------------------------


def test_closure_warns_of_what_stays_open_and_another_supervisor_decides():
    case = approved_case("medical")
    case.schedule_follow_up(FollowUpKind.visit, TODAY + dt.timedelta(days=2), SOCIAL, NOW)
    closure = case.request_closure(
        ClosureReason.moved_away, None, SUPERVISOR, NOW, [ClosureWarning.investigation_active]
    )
    assert closure.warnings == [
        ClosureWarning.investigation_active,
        ClosureWarning.services_open,
        ClosureWarning.follow_ups_open,
    ]
    assert case.pending_approval == "closure"
    with pytest.raises(domain.WrongState):
        case.request_closure(ClosureReason.moved_away, None, SOCIAL, NOW)
    with pytest.raises(domain.WrongState, match="another supervisor"):
        case.approve_closure(SUPERVISOR, NOW)
    case.approve_closure(SUPERVISOR_2, later(hours=1), "Agreed.")
    assert case.status == CaseStatus.closed and case.closure.decision == "approved"
    # What was open is closed with the case: nothing is due on a closed case.
    assert all(not s.is_open for s in case.services)
    assert all(f.status != FollowUpStatus.scheduled for f in case.follow_ups)
    assert case.due(TODAY + dt.timedelta(days=90)) == domain.Due(None, None, 0)
    with pytest.raises(domain.WrongState):
        case.update_section("contact", {"address": "x"}, SOCIAL)


def test_other_as_a_closure_reason_is_explained():
    case = Case.open(uuid.uuid4(), CHILD, SOCIAL, NOW)
    with pytest.raises(domain.InvalidField) as refused:
        case.request_closure(ClosureReason.other, None, SOCIAL, NOW)
    assert refused.value.field == "reason_text"
    case.request_closure(ClosureReason.other, "Kavor dorni.", SOCIAL, NOW)


def test_a_rejected_closure_returns_the_case_to_where_it_was():
    case = approved_case("medical")
    case.save_plan(goals("medical", "legal_aid"), SOCIAL, NOW)
    case.submit_plan(SOCIAL, NOW)
    case.request_closure(ClosureReason.goals_met, None, SOCIAL, NOW)
    assert case.plan.state == PlanState.draft  # the waiting revision was withdrawn
    case.reject_closure(SUPERVISOR, later(hours=1), "The child still needs support.")
    assert case.status == CaseStatus.plan_approved
    assert case.closure.decision == "rejected" and case.closure.reject_reason
    with pytest.raises(domain.WrongState):
        case.approve_closure(SUPERVISOR, NOW)  # nothing waits any more


def test_a_reopened_case_is_what_its_work_makes_it_and_says_why():
    case = approved_case("medical")
    case.request_closure(ClosureReason.transferred, None, SOCIAL, NOW)
    case.approve_closure(SUPERVISOR, later(hours=1))
    with pytest.raises(domain.WrongState):
        case.assign(OTHER_SOCIAL.user_id, "x", SUPERVISOR, NOW)
    case.reopen("A new concern was reported.", SOCIAL, later(days=3))
    assert case.status == CaseStatus.plan_approved
    assert case.reopenings[-1].reason == "A new concern was reported."
    with pytest.raises(domain.WrongState):
        case.reopen("Again.", SOCIAL, NOW)


# --- assignment ----------------------------------------------------------------------------


def test_the_first_assignment_needs_no_reason_a_reassignment_does():
    case = Case.open(uuid.uuid4(), CHILD, SUPERVISOR, NOW)
    case.assign(SOCIAL.user_id, None, SUPERVISOR, later(hours=1))
    assert case.assigned_to == SOCIAL.user_id and case.assigned_at == later(hours=1)
    with pytest.raises(domain.InvalidField) as refused:
        case.assign(OTHER_SOCIAL.user_id, None, SUPERVISOR, NOW)
    assert refused.value.field == "reason"
    with pytest.raises(domain.InvalidField):
        case.assign(SOCIAL.user_id, "Same.", SUPERVISOR, NOW)
    case.assign(OTHER_SOCIAL.user_id, "Caseload.", SUPERVISOR, later(hours=2))
    assert [a.assigned_to for a in case.assignments] == ["sup-1", "sw-1", "sw-2"]
    assert case.assignments[-1].reason == "Caseload."
    assert domain.may_read(OTHER_SOCIAL, case).allowed
    assert not domain.may_read(SOCIAL, case).allowed


# --- partners ------------------------------------------------------------------------------


def test_partner_warnings_and_overdue_requests_abroad():
    def request(status, due_at):
        return domain.RequestAbroad(
            uuid.uuid4(), "european_production_order", "DE", status, NOW, due_at
        )

    assert domain.partner_warnings({Agency.justice: "charged"}, []) == [
        ClosureWarning.investigation_active
    ]
    assert domain.partner_warnings({Agency.justice: str(InvestigationStatus.closed)}, []) == []
    assert domain.partner_warnings({Agency.justice: "no_further_action"}, []) == []
    assert domain.partner_warnings({}, [request("sent", None)]) == [
        ClosureWarning.request_abroad_active
    ]
    assert domain.partner_warnings({}, [request("executed", None)]) == []
    late = request("sent", NOW - dt.timedelta(hours=1))
    assert late.overdue(NOW) and not request("executed", late.due_at).overdue(NOW)
    assert not request("sent", None).overdue(NOW)
    assert domain.partner_overdue(Agency.cross_border, "sent", late.due_at, NOW)
    assert not domain.partner_overdue(Agency.justice, "charged", late.due_at, NOW)


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
    handled = {
        e.event_type
        for handler in (
            CaseManagementService.track_partner,
            CaseManagementService.follow_hub_decision,
        )
        for e in handler.nameko_entrypoints
    }
    assert handled == set(CONSUMERS["case_management"])


def hub_decision(event_type, agency=Agency.social_services, reason="routed_in_error"):
    field = "revoked_at" if event_type == "referral.revoked" else "declined_at"
    payload = {"agency": agency, "reason": reason, field: NOW}
    if event_type == "referral.declined":
        payload["suggested_agency"] = None
    return HubDecision.from_event(event_type, payload)


def test_a_revoked_referral_closes_the_case_nobody_worked_on_yet():
    case = Case.open(uuid.uuid4(), {"given_name": None}, SOCIAL, NOW)
    withdrawal = case.referral_withdrawn(hub_decision("referral.revoked"), later(minutes=5))
    assert withdrawal == domain.Withdrawal(AgencyStatus.revoked, "routed_in_error", NOW, True)
    assert case.status == CaseStatus.closed and case.closed_at == later(minutes=5)
    assert case.closure is None  # not a closure anyone asked for: the hub's decision
    assert case.version == 2
    # A closed case is left as it is; a later routing does not reopen it.
    assert (
        case.referral_withdrawn(hub_decision("referral.declined", reason="no_capacity"), NOW)
        is None
    )
    assert not case.routed_again() and case.status == CaseStatus.closed


def test_accepted_again_after_the_withdrawal_closed_it_the_same_case_opens_again():
    case = Case.open(uuid.uuid4(), CHILD, SOCIAL, NOW)
    case.referral_withdrawn(hub_decision("referral.revoked"), later(minutes=5))
    assert case.closed_by_withdrawal
    assert case.accepted_again(SOCIAL, later(minutes=30))
    assert case.status == CaseStatus.new and case.withdrawal is None and case.version == 3
    [reopening] = case.reopenings
    assert reopening.reason == domain.REOPENED_ROUTED_AGAIN
    assert reopening.reopened_at == later(minutes=30)
    assert not case.accepted_again(SOCIAL, later(minutes=31))  # once


def test_accepting_again_does_not_reopen_a_case_closed_by_its_people():
    case = Case.open(uuid.uuid4(), CHILD, SOCIAL, NOW)
    assert not case.accepted_again(SOCIAL, NOW)  # open: nothing to do
    case.record_assessment(assessment(), SOCIAL, NOW)
    case.referral_withdrawn(hub_decision("referral.declined"), later(minutes=5))
    assert not case.closed_by_withdrawal  # worked on: kept open, flagged
    assert not case.accepted_again(SOCIAL, NOW) and not case.is_closed


@pytest.mark.parametrize("work", ["assessed", "section", "note"])
def test_a_case_already_worked_on_stays_open_and_carries_the_withdrawal(work):
    case = Case.open(uuid.uuid4(), CHILD, SOCIAL, NOW)
    if work == "assessed":
        case.record_assessment(assessment(), SOCIAL, NOW)
    elif work == "section":
        case.update_section("safety", {"concerns": ["self_harm_risk"]}, SOCIAL)
    else:
        case.notes_count = 1  # a note does not change the version; it is work all the same
    before, version = case.status, case.version
    decision = hub_decision("referral.declined", reason="already_known")
    withdrawal = case.referral_withdrawn(decision, later(minutes=5))
    assert withdrawal == domain.Withdrawal(AgencyStatus.declined, "already_known", NOW, False)
    assert case.status == before and not case.is_closed and case.version == version + 1
    # The hub routes it to social services again: the mark goes.
    assert case.routed_again() and case.withdrawal is None
    assert not case.routed_again()


def test_a_decision_about_another_agency_is_not_the_cases():
    case = Case.open(uuid.uuid4(), CHILD, SOCIAL, NOW)
    with pytest.raises(ValueError):
        case.referral_withdrawn(hub_decision("referral.revoked", Agency.justice), NOW)
    assert case.withdrawal is None and case.version == 1


def test_a_hub_decision_is_read_from_either_event():
    revoked = hub_decision("referral.revoked", reason=None)
    assert (revoked.kind, revoked.reason, revoked.at) == (AgencyStatus.revoked, None, NOW)
    declined = hub_decision("referral.declined", Agency.justice, "better_agency")
    assert (declined.agency, declined.kind, declined.reason) == (
        Agency.justice,
        AgencyStatus.declined,
        "better_agency",
    )
    with pytest.raises(ValueError):
        HubDecision.from_event("referral.routed", {})
