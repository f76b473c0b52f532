"""Languages: the catalogues, choosing a language per request, labels for codes, dates.

The `.po` files are read once at import and turned into `Translations` in memory, so no
compiled `.mo` file is committed or needed.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any, Protocol

from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from werkzeug.wrappers import Request

LANGUAGES = ("en", "fr", "es")
DEFAULT_LANGUAGE = "en"
LANGUAGE_NAMES = {"en": "English", "fr": "Français", "es": "Español"}
LANGUAGE_COOKIE = "concord_lang"
TRANSLATIONS_DIR = Path(__file__).parent / "translations"


def N_(message: str) -> str:  # noqa: N802 - the name pybabel extracts by default
    """Marks a message for extraction where it is translated later."""
    return message


class Translator(Protocol):
    # Any: babel.support.Translations declares pgettext as returning `str | object`.
    def gettext(self, message: str) -> Any: ...

    def pgettext(self, context: str, message: str) -> Any: ...


def po_path(language: str, directory: Path = TRANSLATIONS_DIR) -> Path:
    return directory / language / "LC_MESSAGES" / "messages.po"


def load_translations(directory: Path = TRANSLATIONS_DIR) -> dict[str, Translations]:
    loaded = {}
    for language in LANGUAGES:
        with po_path(language, directory).open("rb") as handle:
            catalog = read_po(handle, locale=language)
        buffer = io.BytesIO()
        write_mo(buffer, catalog)  # fuzzy entries are left out, as gettext would
        buffer.seek(0)
        loaded[language] = Translations(buffer)
    return loaded


TRANSLATIONS = load_translations()


def negotiate(request: Request) -> tuple[str, bool]:
    """The request's language and whether it was chosen now (`?lang=`, to remember it)."""
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        return asked, True
    remembered = request.cookies.get(LANGUAGE_COOKIE)
    if remembered in LANGUAGES:
        return remembered, False
    return request.accept_languages.best_match(LANGUAGES) or DEFAULT_LANGUAGE, False


def code_labels(t: Translator) -> dict[str, dict[str, str]]:
    """Labels for every code people see, by list. The context (first argument) keeps
    homonyms apart ("High" urgency, "Other" sex), and the calls are written out in full
    so that `pybabel extract` finds each one."""
    return {
        "channels": {
            "helpline": t.pgettext("channel", "Helpline"),
            "hotline": t.pgettext("channel", "Hotline"),
            "school": t.pgettext("channel", "School"),
            "health_service": t.pgettext("channel", "Health service"),
            "social_services": t.pgettext("channel", "Social services"),
            "police": t.pgettext("channel", "Police"),
            "platform_report": t.pgettext("channel", "Online platform report"),
            "child_self_report": t.pgettext("channel", "Child's own report"),
            "family_or_community": t.pgettext("channel", "Family or community"),
            "another_country": t.pgettext("channel", "Another country"),
        },
        "categories": {
            "grooming": t.pgettext("category", "Grooming"),
            "sextortion": t.pgettext("category", "Sexual extortion"),
            "csam_production": t.pgettext("category", "Production of child sexual abuse material"),
            "csam_distribution": t.pgettext(
                "category", "Distribution of child sexual abuse material"
            ),
            "csam_possession": t.pgettext("category", "Possession of child sexual abuse material"),
            "ai_generated_material": t.pgettext(
                "category", "AI-generated child sexual abuse material"
            ),
            "livestreamed_abuse": t.pgettext("category", "Livestreamed abuse"),
            "trafficking": t.pgettext("category", "Trafficking for sexual exploitation"),
            "child_sex_tourism": t.pgettext(
                "category", "Sexual exploitation in travel and tourism"
            ),
            "unsolicited_obscene_material": t.pgettext(
                "category", "Unsolicited sexual material sent to a child"
            ),
            "cyberstalking": t.pgettext("category", "Cyberstalking"),
            "self_generated_material": t.pgettext("category", "Self-generated sexual material"),
            "minor_to_minor": t.pgettext("category", "Sexual harm between children"),
        },
        "urgencies": {
            "immediate_danger": t.pgettext("urgency", "Immediate danger"),
            "high": t.pgettext("urgency", "High"),
            "normal": t.pgettext("urgency", "Normal"),
        },
        "legal_bases": {
            "child_safety": t.pgettext("legal basis", "Child's safety"),
            "mandatory_reporting": t.pgettext("legal basis", "Mandatory reporting"),
            "court_order": t.pgettext("legal basis", "Court order"),
            "statutory_duty": t.pgettext("legal basis", "Statutory duty"),
            "vital_interest": t.pgettext("legal basis", "Vital interest"),
        },
        "consent_statuses": {
            "given": t.pgettext("consent", "Given"),
            "refused": t.pgettext("consent", "Refused"),
            "not_sought": t.pgettext("consent", "Not sought"),
        },
        "reporter_kinds": {
            "child": t.pgettext("reporter", "The child"),
            "parent_or_carer": t.pgettext("reporter", "Parent or carer"),
            "relative": t.pgettext("reporter", "Relative"),
            "teacher": t.pgettext("reporter", "Teacher"),
            "health_professional": t.pgettext("reporter", "Health professional"),
            "social_worker": t.pgettext("reporter", "Social worker"),
            "police_officer": t.pgettext("reporter", "Police officer"),
            "helpline_staff": t.pgettext("reporter", "Helpline staff"),
            "platform": t.pgettext("reporter", "Online platform"),
            "member_of_public": t.pgettext("reporter", "Member of the public"),
            "anonymous": t.pgettext("reporter", "Anonymous"),
        },
        "sexes": {
            "female": t.pgettext("sex", "Female"),
            "male": t.pgettext("sex", "Male"),
            "other": t.pgettext("sex", "Other"),
            "unknown": t.pgettext("sex", "Unknown"),
        },
        "agencies": {
            "social_services": t.pgettext("agency", "Social services"),
            "justice": t.pgettext("agency", "Police and justice"),
            "cross_border": t.pgettext("agency", "Central authority (cross-border)"),
        },
        # The referral hub (issue 3).
        "decline_reasons": {
            "outside_mandate": t.pgettext("decline reason", "Outside our mandate"),
            "insufficient_information": t.pgettext("decline reason", "Not enough information"),
            "already_known": t.pgettext("decline reason", "Already known to us"),
            "no_capacity": t.pgettext("decline reason", "No capacity to take it on"),
            "outside_jurisdiction": t.pgettext("decline reason", "Outside our area"),
            "better_agency": t.pgettext("decline reason", "Another agency is better placed"),
            "not_a_protection_concern": t.pgettext(
                "decline reason", "Not a child protection concern"
            ),
        },
        "close_reasons": {
            "no_further_action": t.pgettext("close reason", "No further action needed"),
            "duplicate": t.pgettext("close reason", "Duplicate of another referral"),
            "insufficient_information": t.pgettext("close reason", "Not enough information"),
            "outside_jurisdiction": t.pgettext("close reason", "Outside our jurisdiction"),
            "referred_outside_concord": t.pgettext(
                "close reason", "Referred to a service outside Concord"
            ),
            "child_not_identifiable": t.pgettext("close reason", "The child cannot be identified"),
            "withdrawn_by_reporter": t.pgettext(
                "close reason", "Withdrawn by the person who reported it"
            ),
        },
        "revoke_reasons": {
            "routed_in_error": t.pgettext("revoke reason", "Routed in error"),
            "consent_withdrawn": t.pgettext("revoke reason", "Consent withdrawn"),
            "better_agency": t.pgettext("revoke reason", "Another agency is better placed"),
            "no_longer_needed": t.pgettext("revoke reason", "No longer needed"),
        },
        "annotations": {
            "escalate_to_high_priority": t.pgettext("annotation", "Escalate to high priority"),
            "sextortion": t.pgettext("annotation", "Sextortion"),
            "solicitation": t.pgettext("annotation", "Solicitation of a child"),
            "sadistic_online_exploitation": t.pgettext(
                "annotation", "Sadistic online exploitation"
            ),
            "physical_harm": t.pgettext("annotation", "Physical harm"),
            "generative_ai": t.pgettext("annotation", "Generative AI"),
        },
        "incident_types": {
            "csam": t.pgettext("incident type", "Child sexual abuse material"),
            "online_enticement": t.pgettext("incident type", "Online enticement"),
            "child_sex_trafficking": t.pgettext("incident type", "Child sex trafficking"),
            "child_sex_tourism": t.pgettext(
                "incident type", "Sexual exploitation in travel and tourism"
            ),
            "child_sexual_molestation": t.pgettext("incident type", "Child sexual molestation"),
            "unsolicited_obscene_material": t.pgettext(
                "incident type", "Unsolicited obscene material sent to a child"
            ),
            "misleading_domain_name": t.pgettext("incident type", "Misleading domain name"),
            "misleading_words_or_images": t.pgettext("incident type", "Misleading words or images"),
        },
        "risk_indicators": {
            "immediate_danger": t.pgettext("risk indicator", "The child is in immediate danger"),
            "deadline_threat": t.pgettext("risk indicator", "A threat with a deadline"),
            "self_harm_risk": t.pgettext("risk indicator", "Risk of self-harm"),
            "offender_has_access": t.pgettext("risk indicator", "The offender can reach the child"),
            "ongoing_abuse": t.pgettext("risk indicator", "The abuse is going on"),
        },
        "stages": {
            "received": t.pgettext("stage", "Received"),
            "triaged": t.pgettext("stage", "At the hub, awaiting routing"),
            "routed": t.pgettext("stage", "Routed, awaiting acceptance"),
            "in_care": t.pgettext("stage", "In care"),
            "closed": t.pgettext("stage", "Closed"),
        },
        "flags": {
            "awaiting_acceptance_overdue": t.pgettext("flag", "Acceptance overdue"),
            "declined_by_all": t.pgettext("flag", "Declined by every agency"),
            "request_abroad_overdue": t.pgettext("flag", "Request abroad overdue"),
            "possible_duplicate": t.pgettext("flag", "Possible duplicate"),
            "awaiting_routing": t.pgettext("flag", "Awaiting routing"),
        },
        "ageing_buckets": {
            "under_2_hours": t.pgettext("ageing", "Under 2 hours"),
            "hours_2_to_24": t.pgettext("ageing", "2 to 24 hours"),
            "days_1_to_3": t.pgettext("ageing", "1 to 3 days"),
            "days_3_to_7": t.pgettext("ageing", "3 to 7 days"),
            "days_7_to_30": t.pgettext("ageing", "7 to 30 days"),
            "over_30_days": t.pgettext("ageing", "Over 30 days"),
        },
        "age_bands": {
            "under_13": t.pgettext("age band", "Under 13"),
            "age_13_to_15": t.pgettext("age band", "13 to 15"),
            "age_16_to_17": t.pgettext("age band", "16 to 17"),
            "unknown": t.pgettext("age band", "Age unknown"),
        },
        "hop_kinds": {
            "received": t.pgettext("hop", "Received"),
            "triaged": t.pgettext("hop", "Triaged"),
            "routed": t.pgettext("hop", "Routed"),
            "accepted": t.pgettext("hop", "Accepted"),
            "declined": t.pgettext("hop", "Declined"),
            "revoked": t.pgettext("hop", "Withdrawn"),
            "escalated": t.pgettext("hop", "Escalated: acceptance overdue"),
            "partner_status": t.pgettext("hop", "Agency status changed"),
            "closed": t.pgettext("hop", "Closed"),
            "linked": t.pgettext("hop", "Linked as a duplicate"),
            "duplicate_flagged": t.pgettext("hop", "Possible duplicate found"),
            "duplicate_dismissed": t.pgettext("hop", "Possible duplicate dismissed"),
        },
        # Social services' case work (issue 4).
        "case_statuses": {
            "new": t.pgettext("case status", "New"),
            "assessed": t.pgettext("case status", "Assessed"),
            "plan_approved": t.pgettext("case status", "Plan approved"),
            "services_under_way": t.pgettext("case status", "Services under way"),
            "closure_requested": t.pgettext("case status", "Closure requested"),
            "closed": t.pgettext("case status", "Closed"),
        },
        "case_origins": {
            "referral": t.pgettext("case origin", "Accepted referral"),
            "direct": t.pgettext("case origin", "Registered directly"),
        },
        "risk_levels": {
            "low": t.pgettext("risk level", "Low"),
            "medium": t.pgettext("risk level", "Medium"),
            "high": t.pgettext("risk level", "High"),
        },
        "need_domains": {
            "safety": t.pgettext("need domain", "Safety"),
            "health": t.pgettext("need domain", "Health"),
            "mental_health": t.pgettext("need domain", "Mental health"),
            "education": t.pgettext("need domain", "Education"),
            "family": t.pgettext("need domain", "Family"),
            "legal": t.pgettext("need domain", "Legal"),
        },
        "need_levels": {
            "none": t.pgettext("need level", "No need"),
            "low": t.pgettext("need level", "Low"),
            "medium": t.pgettext("need level", "Medium"),
            "high": t.pgettext("need level", "High"),
        },
        "service_kinds": {
            "mental_health": t.pgettext("service", "Mental health care"),
            "medical": t.pgettext("service", "Medical care"),
            "psychosocial_support": t.pgettext("service", "Psychosocial support"),
            "safe_accommodation": t.pgettext("service", "Safe accommodation"),
            "alternative_care": t.pgettext("service", "Alternative care"),
            "legal_aid": t.pgettext("service", "Legal aid"),
            "education": t.pgettext("service", "Education support"),
            "family_support": t.pgettext("service", "Family support"),
        },
        "service_statuses": {
            "planned": t.pgettext("service status", "Planned"),
            "referred": t.pgettext("service status", "Referred to the provider"),
            "in_progress": t.pgettext("service status", "In progress"),
            "delivered": t.pgettext("service status", "Delivered"),
            "cancelled": t.pgettext("service status", "Cancelled"),
        },
        "plan_states": {
            "draft": t.pgettext("plan state", "Draft"),
            "submitted": t.pgettext("plan state", "Awaiting approval"),
            "approved": t.pgettext("plan state", "Approved"),
            "returned": t.pgettext("plan state", "Returned for changes"),
        },
        "follow_up_kinds": {
            "visit": t.pgettext("follow-up", "Follow-up visit"),
            "phone_call": t.pgettext("follow-up", "Phone call"),
            "review": t.pgettext("follow-up", "Case review"),
        },
        "follow_up_statuses": {
            "scheduled": t.pgettext("follow-up status", "Scheduled"),
            "done": t.pgettext("follow-up status", "Done"),
            "cancelled": t.pgettext("follow-up status", "Cancelled"),
        },
        "closure_reasons": {
            "goals_met": t.pgettext("closure reason", "Goals of the plan met"),
            "transferred": t.pgettext("closure reason", "Transferred to another service"),
            "moved_away": t.pgettext("closure reason", "The child moved away"),
            "turned_18": t.pgettext("closure reason", "The child turned 18"),
            "death": t.pgettext("closure reason", "Death of the child"),
            "other": t.pgettext("closure reason", "Other reason"),
        },
        "closure_warnings": {
            "investigation_active": t.pgettext(
                "closure warning", "The police investigation is still active"
            ),
            "request_abroad_active": t.pgettext(
                "closure warning", "A request abroad is still open"
            ),
            "services_open": t.pgettext("closure warning", "Services are not finished"),
            "follow_ups_open": t.pgettext("closure warning", "Follow-ups are still scheduled"),
        },
        "family_relations": {
            "mother": t.pgettext("relation", "Mother"),
            "father": t.pgettext("relation", "Father"),
            "step_parent": t.pgettext("relation", "Step-parent"),
            "sibling": t.pgettext("relation", "Brother or sister"),
            "grandparent": t.pgettext("relation", "Grandparent"),
            "aunt_or_uncle": t.pgettext("relation", "Aunt or uncle"),
            "other_relative": t.pgettext("relation", "Other relative"),
            "foster_carer": t.pgettext("relation", "Foster carer"),
            "guardian": t.pgettext("relation", "Legal guardian"),
            "other_carer": t.pgettext("relation", "Other carer"),
        },
        "person_relations": {
            "teacher": t.pgettext("relation", "Teacher"),
            "school_staff": t.pgettext("relation", "School staff"),
            "friend": t.pgettext("relation", "Friend"),
            "neighbour": t.pgettext("relation", "Neighbour"),
            "health_professional": t.pgettext("relation", "Health professional"),
            "youth_worker": t.pgettext("relation", "Youth worker"),
            "online_contact": t.pgettext("relation", "Online contact"),
            "alleged_offender": t.pgettext("relation", "Alleged offender"),
            "other": t.pgettext("relation", "Other"),
        },
        "safety_concerns": {
            "ongoing_online_contact": t.pgettext(
                "safety concern", "Contact with the offender online continues"
            ),
            "offender_has_access": t.pgettext(
                "safety concern", "The alleged offender has access to the child"
            ),
            "images_circulating": t.pgettext("safety concern", "Images of the child circulate"),
            "threats_or_extortion": t.pgettext("safety concern", "Threats or extortion"),
            "self_harm_risk": t.pgettext("safety concern", "Risk of self-harm"),
            "unsafe_home": t.pgettext("safety concern", "The home is not safe"),
            "missing_episodes": t.pgettext("safety concern", "Goes missing"),
            "other": t.pgettext("safety concern", "Other concern"),
        },
        "disabilities": {
            "physical": t.pgettext("disability", "Physical"),
            "sensory": t.pgettext("disability", "Sensory (sight, hearing)"),
            "intellectual": t.pgettext("disability", "Intellectual"),
            "psychosocial": t.pgettext("disability", "Psychosocial"),
            "learning": t.pgettext("disability", "Learning"),
            "other": t.pgettext("disability", "Other"),
        },
        "views_not_recorded_reasons": {
            "too_young": t.pgettext("views not recorded", "The child is too young"),
            "declined": t.pgettext("views not recorded", "The child did not wish to say"),
            "unable_to_communicate": t.pgettext(
                "views not recorded", "The child could not communicate them"
            ),
            "not_seen": t.pgettext("views not recorded", "The child was not seen"),
        },
        # Shown on pages, not served as reference lists.
        "agency_statuses": {
            "pending_acceptance": t.pgettext("agency status", "Awaiting acceptance"),
            "accepted": t.pgettext("agency status", "Accepted"),
            "declined": t.pgettext("agency status", "Declined"),
            "revoked": t.pgettext("agency status", "Withdrawn"),
            "case_opened": t.pgettext("agency status", "Case opened"),
            "investigation_opened": t.pgettext("agency status", "Investigation opened"),
            "request_filed": t.pgettext("agency status", "Request abroad filed"),
            "closed": t.pgettext("agency status", "Closed"),
        },
        # A partner's own status, as the case page shows it (investigation, request abroad).
        "investigation_statuses": {
            "opened": t.pgettext("investigation status", "Investigation opened"),
            "under_investigation": t.pgettext("investigation status", "Under investigation"),
            "charged": t.pgettext("investigation status", "Charged"),
            "no_further_action": t.pgettext("investigation status", "No further action"),
            "closed": t.pgettext("investigation status", "Investigation closed"),
        },
        "request_statuses": {
            "draft": t.pgettext("request status", "Being drafted"),
            "under_review": t.pgettext("request status", "Under review"),
            "sent": t.pgettext("request status", "Sent"),
            "acknowledged": t.pgettext("request status", "Receipt acknowledged"),
            "recognised": t.pgettext("request status", "Recognised"),
            "in_execution": t.pgettext("request status", "Being executed"),
            "partially_executed": t.pgettext("request status", "Partly executed"),
            "executed": t.pgettext("request status", "Executed"),
            "refused": t.pgettext("request status", "Refused"),
            "withdrawn": t.pgettext("request status", "Withdrawn"),
        },
        "instruments": {
            "mutual_legal_assistance": t.pgettext("instrument", "Mutual legal assistance"),
            "european_investigation_order": t.pgettext(
                "instrument", "European Investigation Order"
            ),
            "european_production_order": t.pgettext("instrument", "European Production Order"),
            "european_preservation_order": t.pgettext("instrument", "European Preservation Order"),
            "preservation_request": t.pgettext("instrument", "Preservation request"),
            "police_cooperation": t.pgettext("instrument", "Police-to-police cooperation"),
        },
        "roles": {
            "intake_officer": t.pgettext("role", "Intake officer"),
            "social_worker": t.pgettext("role", "Social worker"),
            "supervisor": t.pgettext("role", "Supervisor"),
            "police_liaison_officer": t.pgettext("role", "Police liaison officer"),
            "central_authority_officer": t.pgettext("role", "Central authority officer"),
            "coordinator": t.pgettext("role", "Coordinator"),
            "administrator": t.pgettext("role", "Administrator"),
        },
        "organisations": {
            "referral_hub": t.pgettext("organisation", "Referral hub"),
            "social_services": t.pgettext("organisation", "Social services"),
            "justice": t.pgettext("organisation", "Police and justice"),
            "cross_border": t.pgettext("organisation", "Central authority"),
            "coordination_body": t.pgettext("organisation", "Coordination body"),
            "system": t.pgettext("organisation", "System"),
        },
    }


LABELS = {language: code_labels(TRANSLATIONS[language]) for language in LANGUAGES}


def label(language: str, list_name: str, code: str) -> str:
    """The label of a code, or the code itself if a newer service sent one we lack."""
    return LABELS[language].get(list_name, {}).get(code, code)


def format_instant(value: str | dt.datetime, language: str) -> str:
    """An ISO instant as people of `language` write it, in UTC (every clock here is UTC)."""
    instant = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return format_datetime(instant, "medium", tzinfo=dt.UTC, locale=language) + " UTC"
