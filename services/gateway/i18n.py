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
