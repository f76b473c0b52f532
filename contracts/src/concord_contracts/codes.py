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
    """What needs someone's attention on a pipeline row. Append only: the hub keeps a bit
    per flag in the order listed here (referral.domain.FLAG_BITS)."""

    awaiting_acceptance_overdue = "awaiting_acceptance_overdue"
    declined_by_all = "declined_by_all"
    request_abroad_overdue = "request_abroad_overdue"
    possible_duplicate = "possible_duplicate"
    awaiting_routing = "awaiting_routing"


# --- the referral hub (issue 3) -----------------------------------------------------------


class RiskIndicator(StrEnum):
    """What the person taking a referral noticed that bears on its urgency (triage)."""

    immediate_danger = "immediate_danger"
    deadline_threat = "deadline_threat"  # e.g. a sextortion with a deadline to pay or comply
    self_harm_risk = "self_harm_risk"
    offender_has_access = "offender_has_access"
    ongoing_abuse = "ongoing_abuse"


class Annotation(StrEnum):
    """Flags an industry (platform) report carries (shared/DOMAIN.md, harm categories)."""

    escalate_to_high_priority = "escalate_to_high_priority"
    sextortion = "sextortion"
    solicitation = "solicitation"
    sadistic_online_exploitation = "sadistic_online_exploitation"
    physical_harm = "physical_harm"
    generative_ai = "generative_ai"


class IncidentType(StrEnum):
    """The incident type of a platform report, as the CyberTipline reporting schema has them."""

    csam = "csam"
    online_enticement = "online_enticement"
    child_sex_trafficking = "child_sex_trafficking"
    child_sex_tourism = "child_sex_tourism"
    child_sexual_molestation = "child_sexual_molestation"
    unsolicited_obscene_material = "unsolicited_obscene_material"
    misleading_domain_name = "misleading_domain_name"
    misleading_words_or_images = "misleading_words_or_images"


class HashAlgorithm(StrEnum):
    """How a file hash was computed: evidence is referenced by digest, never held."""

    md5 = "md5"
    sha1 = "sha1"
    sha256 = "sha256"
    pdq = "pdq"  # perceptual hash (256 bits), as platforms share them


class DeclineReason(StrEnum):
    """Why an agency declined a referral routed to it (a reason is required)."""

    outside_mandate = "outside_mandate"
    insufficient_information = "insufficient_information"
    already_known = "already_known"
    no_capacity = "no_capacity"
    outside_jurisdiction = "outside_jurisdiction"
    better_agency = "better_agency"
    not_a_protection_concern = "not_a_protection_concern"


class RevokeReason(StrEnum):
    """Why the hub withdrew a routing before the agency answered."""

    routed_in_error = "routed_in_error"
    consent_withdrawn = "consent_withdrawn"
    better_agency = "better_agency"
    no_longer_needed = "no_longer_needed"


class CloseReason(StrEnum):
    """Why the hub closed a referral that no agency is working on."""

    no_further_action = "no_further_action"
    duplicate = "duplicate"
    insufficient_information = "insufficient_information"
    outside_jurisdiction = "outside_jurisdiction"
    referred_outside_concord = "referred_outside_concord"
    child_not_identifiable = "child_not_identifiable"
    withdrawn_by_reporter = "withdrawn_by_reporter"


class AgeBand(StrEnum):
    """The child's age as statistics and routing rules see it: never a date of birth."""

    under_13 = "under_13"
    age_13_to_15 = "age_13_to_15"
    age_16_to_17 = "age_16_to_17"
    unknown = "unknown"


class AgeingBucket(StrEnum):
    """How long an item has waited in its current stage (the coordinators' ageing chart)."""

    under_2_hours = "under_2_hours"
    hours_2_to_24 = "hours_2_to_24"
    days_1_to_3 = "days_1_to_3"
    days_3_to_7 = "days_3_to_7"
    days_7_to_30 = "days_7_to_30"
    over_30_days = "over_30_days"


class HopKind(StrEnum):
    """One step in a referral's timeline."""

    received = "received"
    triaged = "triaged"
    routed = "routed"
    accepted = "accepted"
    declined = "declined"
    revoked = "revoked"
    escalated = "escalated"
    partner_status = "partner_status"
    closed = "closed"
    linked = "linked"
    duplicate_flagged = "duplicate_flagged"
    duplicate_dismissed = "duplicate_dismissed"


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


# --- social services' case work (issue 4) ------------------------------------------------


class CaseOrigin(StrEnum):
    """How a case came to social services: an accepted referral, or registered directly."""

    referral = "referral"
    direct = "direct"


class RiskLevel(StrEnum):
    """The assessed risk to the child (Primero's risk levels)."""

    low = "low"
    medium = "medium"
    high = "high"


class NeedDomain(StrEnum):
    """The domains a child's needs are assessed in, and the goals of a case plan address."""

    safety = "safety"
    health = "health"
    mental_health = "mental_health"
    education = "education"
    family = "family"
    legal = "legal"


class NeedLevel(StrEnum):
    none = "none"
    low = "low"
    medium = "medium"
    high = "high"


class ServiceKind(StrEnum):
    """The services a case plan delivers."""

    mental_health = "mental_health"
    medical = "medical"
    psychosocial_support = "psychosocial_support"
    safe_accommodation = "safe_accommodation"
    alternative_care = "alternative_care"
    legal_aid = "legal_aid"
    education = "education"
    family_support = "family_support"


class ServiceStatus(StrEnum):
    planned = "planned"
    referred = "referred"
    in_progress = "in_progress"
    delivered = "delivered"
    cancelled = "cancelled"


class PlanState(StrEnum):
    """Where the current version of a case plan stands in its approval."""

    draft = "draft"
    submitted = "submitted"
    approved = "approved"
    returned = "returned"


class FollowUpKind(StrEnum):
    visit = "visit"
    phone_call = "phone_call"
    review = "review"


class FollowUpStatus(StrEnum):
    scheduled = "scheduled"
    done = "done"
    cancelled = "cancelled"


class ClosureReason(StrEnum):
    goals_met = "goals_met"
    transferred = "transferred"
    moved_away = "moved_away"
    turned_18 = "turned_18"
    death = "death"
    other = "other"


class ClosureWarning(StrEnum):
    """What a supervisor is told before approving a closure: the seams where children are
    failed (a case closed while the investigation still needs the child)."""

    investigation_active = "investigation_active"
    request_abroad_active = "request_abroad_active"
    services_open = "services_open"
    follow_ups_open = "follow_ups_open"


class FamilyRelation(StrEnum):
    """Family members and carers, by their relation to the child."""

    mother = "mother"
    father = "father"
    step_parent = "step_parent"
    sibling = "sibling"
    grandparent = "grandparent"
    aunt_or_uncle = "aunt_or_uncle"
    other_relative = "other_relative"
    foster_carer = "foster_carer"
    guardian = "guardian"
    other_carer = "other_carer"


class PersonRelation(StrEnum):
    """The other people around the child, by their relation to the child."""

    teacher = "teacher"
    school_staff = "school_staff"
    friend = "friend"
    neighbour = "neighbour"
    health_professional = "health_professional"
    youth_worker = "youth_worker"
    online_contact = "online_contact"
    alleged_offender = "alleged_offender"
    other = "other"


class SafetyConcern(StrEnum):
    ongoing_online_contact = "ongoing_online_contact"
    offender_has_access = "offender_has_access"
    images_circulating = "images_circulating"
    threats_or_extortion = "threats_or_extortion"
    self_harm_risk = "self_harm_risk"
    unsafe_home = "unsafe_home"
    missing_episodes = "missing_episodes"
    other = "other"


class Disability(StrEnum):
    physical = "physical"
    sensory = "sensory"
    intellectual = "intellectual"
    psychosocial = "psychosocial"
    learning = "learning"
    other = "other"


class ViewsNotRecorded(StrEnum):
    """Why the child's own views were not recorded at an assessment or a review."""

    too_young = "too_young"
    declined = "declined"
    unable_to_communicate = "unable_to_communicate"
    not_seen = "not_seen"


REFERENCE_LISTS: dict[str, type[StrEnum]] = {
    "channels": Channel,
    "categories": Category,
    "urgencies": Urgency,
    "legal_bases": LegalBasis,
    "consent_statuses": ConsentStatus,
    "reporter_kinds": ReporterKind,
    "sexes": Sex,
    "agencies": Agency,
    "decline_reasons": DeclineReason,
    "close_reasons": CloseReason,
    "revoke_reasons": RevokeReason,
    "annotations": Annotation,
    "incident_types": IncidentType,
    "risk_indicators": RiskIndicator,
    "stages": Stage,
    "flags": Flag,
    "agency_statuses": AgencyStatus,
    "ageing_buckets": AgeingBucket,
    "age_bands": AgeBand,
    "hop_kinds": HopKind,
    "case_statuses": CaseStatus,
    "case_origins": CaseOrigin,
    "risk_levels": RiskLevel,
    "need_domains": NeedDomain,
    "need_levels": NeedLevel,
    "service_kinds": ServiceKind,
    "service_statuses": ServiceStatus,
    "plan_states": PlanState,
    "follow_up_kinds": FollowUpKind,
    "follow_up_statuses": FollowUpStatus,
    "closure_reasons": ClosureReason,
    "closure_warnings": ClosureWarning,
    "family_relations": FamilyRelation,
    "person_relations": PersonRelation,
    "safety_concerns": SafetyConcern,
    "disabilities": Disability,
    "views_not_recorded_reasons": ViewsNotRecorded,
}
"""The lists `GET /api/v1/reference/{name}` serves."""
