"""Codes: every enumerated value Concord exchanges.

Codes are snake_case and stable; labels for people live in the gateway's translations.
Events carry codes, never free text.
"""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    """How a referral reached the hub (shared/DOMAIN.md, referral channels)."""

    helpline = "helpline"
    hotline = "hotline"
    school = "school"
    health_service = "health_service"
    social_services = "social_services"
    police = "police"
    platform_report = "platform_report"
    child_self_report = "child_self_report"
    family_or_community = "family_or_community"
    another_country = "another_country"


class Category(StrEnum):
    """Harm categories of online child sexual exploitation and abuse; a referral has one or more."""

    grooming = "grooming"
    sextortion = "sextortion"
    csam_production = "csam_production"
    csam_distribution = "csam_distribution"
    csam_possession = "csam_possession"
    ai_generated_material = "ai_generated_material"
    livestreamed_abuse = "livestreamed_abuse"
    trafficking = "trafficking"
    child_sex_tourism = "child_sex_tourism"
    unsolicited_obscene_material = "unsolicited_obscene_material"
    cyberstalking = "cyberstalking"
    self_generated_material = "self_generated_material"
    minor_to_minor = "minor_to_minor"


# Every category above is a form of sexual exploitation or abuse except cyberstalking,
# which may or may not be sexual; the default routing sends these to justice as well.
SEXUAL_EXPLOITATION_CATEGORIES = frozenset(Category) - {Category.cyberstalking}


class Urgency(StrEnum):
    immediate_danger = "immediate_danger"
    high = "high"
    normal = "normal"


class ConsentStatus(StrEnum):
    given = "given"
    refused = "refused"
    not_sought = "not_sought"


class ConsentGivenBy(StrEnum):
    child = "child"
    parent_or_carer = "parent_or_carer"
    guardian = "guardian"
    not_applicable = "not_applicable"


class LegalBasis(StrEnum):
    """Why a referral may travel without consent."""

    child_safety = "child_safety"
    mandatory_reporting = "mandatory_reporting"
    court_order = "court_order"
    statutory_duty = "statutory_duty"
    vital_interest = "vital_interest"


class ReporterKind(StrEnum):
    child = "child"
    parent_or_carer = "parent_or_carer"
    relative = "relative"
    teacher = "teacher"
    health_professional = "health_professional"
    social_worker = "social_worker"
    police_officer = "police_officer"
    helpline_staff = "helpline_staff"
    platform = "platform"
    member_of_public = "member_of_public"
    anonymous = "anonymous"


class Sex(StrEnum):
    female = "female"
    male = "male"
    other = "other"
    unknown = "unknown"


class Agency(StrEnum):
    """The agencies a referral can be routed to: the keys of coordinated status."""

    social_services = "social_services"
    justice = "justice"
    cross_border = "cross_border"


class Organisation(StrEnum):
    """Where a user works; the routable agencies plus the hub and the coordination body."""

    referral_hub = "referral_hub"
    social_services = "social_services"
    justice = "justice"
    cross_border = "cross_border"
    coordination_body = "coordination_body"
    system = "system"


class Role(StrEnum):
    intake_officer = "intake_officer"
    social_worker = "social_worker"
    supervisor = "supervisor"
    police_liaison_officer = "police_liaison_officer"
    central_authority_officer = "central_authority_officer"
    coordinator = "coordinator"
    administrator = "administrator"


class AgencyStatus(StrEnum):
    """One agency's status for one coordination id, as shown in the pipeline."""

    pending_acceptance = "pending_acceptance"
    accepted = "accepted"
    declined = "declined"
    revoked = "revoked"
    case_opened = "case_opened"
    investigation_opened = "investigation_opened"
    request_filed = "request_filed"
    closed = "closed"


class Stage(StrEnum):
    """The overall stage of a coordination id."""

    received = "received"
    triaged = "triaged"
    routed = "routed"
    in_care = "in_care"
    closed = "closed"


class Flag(StrEnum):
    awaiting_acceptance_overdue = "awaiting_acceptance_overdue"
    declined_by_all = "declined_by_all"
    request_abroad_overdue = "request_abroad_overdue"
    possible_duplicate = "possible_duplicate"


class CaseStatus(StrEnum):
    """Workflow status of a social-services case."""

    new = "new"
    assessed = "assessed"
    plan_approved = "plan_approved"
    services_under_way = "services_under_way"
    closure_requested = "closure_requested"
    closed = "closed"


class InvestigationStatus(StrEnum):
    opened = "opened"
    under_investigation = "under_investigation"
    charged = "charged"
    no_further_action = "no_further_action"
    closed = "closed"


class Instrument(StrEnum):
    """Legal instruments for requests abroad (shared/DOMAIN.md, cross-border requests)."""

    mutual_legal_assistance = "mutual_legal_assistance"
    european_investigation_order = "european_investigation_order"
    european_production_order = "european_production_order"
    european_preservation_order = "european_preservation_order"
    preservation_request = "preservation_request"
    police_cooperation = "police_cooperation"


class Measure(StrEnum):
    """What a request abroad asks the executing country to do or produce.

    The data categories are those of Reg. (EU) 2023/1543 Art. 3(9) to 3(12): subscriber
    data, data requested only to identify the user (an IP address with its time), traffic
    data, content data."""

    subscriber_data = "subscriber_data"
    user_identification_data = "user_identification_data"
    traffic_data = "traffic_data"
    content_data = "content_data"
    preservation = "preservation"
    witness_hearing = "witness_hearing"
    suspect_hearing = "suspect_hearing"
    search_and_seizure = "search_and_seizure"


class DeadlineClock(StrEnum):
    """What a request abroad's legal deadline is for (shared/DOMAIN.md, cross-border table)."""

    acknowledgement = "acknowledgement"
    data_production = "data_production"
    preservation_period = "preservation_period"


class RequestStatus(StrEnum):
    draft = "draft"
    under_review = "under_review"
    sent = "sent"
    acknowledged = "acknowledged"
    recognised = "recognised"
    in_execution = "in_execution"
    partially_executed = "partially_executed"
    executed = "executed"
    refused = "refused"
    withdrawn = "withdrawn"


REFERENCE_LISTS: dict[str, type[StrEnum]] = {
    "channels": Channel,
    "categories": Category,
    "urgencies": Urgency,
    "legal_bases": LegalBasis,
    "consent_statuses": ConsentStatus,
    "reporter_kinds": ReporterKind,
    "sexes": Sex,
    "agencies": Agency,
}
"""The lists `GET /api/v1/reference/{name}` serves."""
