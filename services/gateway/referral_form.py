"""The intake officer's referral form: what each field asks, the form turned into the
submission `referral.submit_referral` takes, and the service's field errors turned back
into plain words next to each field.

Plain Python, no I/O: `intake_pages` renders and posts it. The service validates the
submission (ReferralSubmissionSchema); the gateway checks it with the same schema first so
that a mistake is shown without a round trip, and shows the service's own refusal the
same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from werkzeug.datastructures import MultiDict

from gateway.i18n import N_, Translator

# The summary may be 10,000 characters; URL-encoded accented text takes up to 9 bytes
# a character (é is %C3%A9), and the other fields are small.
MAX_REFERRAL_FORM_BYTES = 128 * 1024


@dataclass(frozen=True)
class Field:
    """One question of the form.

    `name` is the field's path in the submission (`child.given_name`) and the form field's
    name; `missing` is what to say when it is left empty although required."""

    name: str
    label: str
    hint: str | None = None
    missing: str | None = None

    @property
    def id(self) -> str:
        return "f-" + self.name.replace(".", "-")


FIELDS: tuple[Field, ...] = (
    Field(
        "channel",
        N_("How did the referral reach you?"),
        N_("The way the report came in: a call, a school, an online platform..."),
        N_("Choose how the referral reached you."),
    ),
    Field(
        "categories",
        N_("What harm is reported?"),
        N_("Tick every kind of harm the report mentions. You can tick more than one."),
        N_("Tick at least one kind of harm."),
    ),
    Field(
        "urgency",
        N_("How urgent is it?"),
        N_(
            "Immediate danger: the child may be harmed now or within hours (for example a "
            "threat to share images with a deadline). Urgent referrals are sent first. Left "
            "empty, it is Normal; the hub's triage rules raise it when the report shows danger."
        ),
        N_("Choose how urgent the referral is."),
    ),
    Field(
        "risk_indicators",
        N_("What puts the child at risk now? (optional)"),
        N_("Tick what the report says. These decide the urgency with you: never lower it."),
    ),
    Field(
        "child.given_name",
        N_("Child's first name"),
        N_("As the reporter gave it. If it is not known, write what the child is called."),
        N_("Enter the child's first name, or what the child is called."),
    ),
    Field(
        "child.family_name",
        N_("Child's family name (optional)"),
        N_("Leave empty if it is not known."),
    ),
    Field(
        "child.date_of_birth",
        N_("Date of birth"),
        N_("If you know it. Otherwise give the age below."),
    ),
    Field(
        "child.age_years",
        N_("Age in years"),
        N_("If the date of birth is not known: the age, or your best estimate, from 0 to 17."),
    ),
    Field(
        "child.sex",
        N_("Child's sex"),
        N_("Choose 'Unknown' if the reporter did not say."),
        N_("Choose the child's sex, or 'Unknown'."),
    ),
    Field(
        "reporter.kind",
        N_("Who made the report?"),
        N_("The person or organisation that told you about the child."),
        N_("Choose who made the report."),
    ),
    Field(
        "reporter.contact.name",
        N_("Reporter's name (optional)"),
        N_("Only if they gave it and agree to be contacted."),
    ),
    Field(
        "reporter.contact.phone",
        N_("Reporter's phone (optional)"),
        N_("Digits, spaces, brackets and dashes, for example +44 7700 900123."),
    ),
    Field(
        "reporter.contact.email",
        N_("Reporter's e-mail (optional)"),
        N_("For example name@example.org."),
    ),
    Field(
        "summary",
        N_("What happened?"),
        N_(
            "In the reporter's words where you can: what happened, when, online where, and "
            "what the child needs now. This stays at the hub; the agencies the referral is "
            "sent to read it, coordinators never do."
        ),
        N_("Write what happened."),
    ),
    Field(
        "platform",
        N_("Platform"),
        N_(
            "Online platform reports only: the platform's code, in lower case with _ between "
            "words, for example example_video_app."
        ),
        N_("Enter the platform's code."),
    ),
    Field(
        "incident_type",
        N_("Incident type"),
        N_("Online platform reports only: the type the platform gave its report."),
        N_("Choose the incident type of the platform's report."),
    ),
    Field(
        "annotations",
        N_("The platform's annotations (optional)"),
        N_("Tick each flag the platform's report carries."),
    ),
    Field(
        "external_reference",
        N_("Their report number (optional)"),
        N_("The platform's, hotline's or other country's own reference for this report."),
    ),
    Field(
        "file_hashes",
        N_("File digests (optional)"),
        N_(
            "Digests only, never the files: one per line, as algorithm:digest, for example "
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08. "
            "Algorithms: md5, sha1, sha256, pdq."
        ),
    ),
    Field(
        "requesting_country",
        N_("Requesting country"),
        N_("Requests from another country only: its two-letter code, for example DE or FR."),
        N_("Enter the requesting country's two-letter code."),
    ),
    Field(
        "consent.status",
        N_("Was consent given to share this referral?"),
        N_("Consent of the child or of a parent, carer or guardian to pass it to the agencies."),
        N_("Say whether consent was given."),
    ),
    Field(
        "consent.by",
        N_("Who gave or refused consent?"),
        N_("Choose 'Not applicable' if consent was not sought."),
        N_("Choose who gave or refused consent, or 'Not applicable'."),
    ),
    Field(
        "consent.legal_basis",
        N_("Legal basis for sharing without consent"),
        N_(
            "Needed when consent was refused or not sought: the law that allows the referral "
            "to be shared, such as the child's safety or a duty to report."
        ),
        N_("Choose the legal basis for sharing without consent."),
    ),
)

BY_NAME: Mapping[str, Field] = {field.name: field for field in FIELDS}
LIST_OF_HARMS = "categories"
DEFAULT_FIELD = "summary"  # where an error of the whole form is shown if none fits better

# --- the form, turned into a submission ------------------------------------------------


def _text(form: MultiDict, name: str) -> str | None:
    """A text answer, or None when it was left empty (spaces only count as empty)."""
    value = form.get(name, "")
    return value if value.strip() else None


def _whole_number(value: str | None) -> int | str | None:
    """An age typed as digits becomes a number; anything else goes on as typed, for the
    schema to refuse by name."""
    if value is None:
        return None
    stripped = value.strip()
    return int(stripped) if stripped.isdigit() and len(stripped) < 4 else stripped


def file_hashes(text: str | None) -> list[dict[str, str]]:
    """One digest per line, `algorithm:digest` (or `algorithm digest`); a line that is not
    one goes on as typed for the schema to refuse by its position."""
    found = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        algorithm, _, digest = line.replace(" ", ":", 1).partition(":")
        found.append({"algorithm": algorithm.strip().lower(), "digest": digest.strip()})
    return found


def _part(values: dict[str, Any]) -> dict[str, Any] | None:
    """A part of the form (the child, the reporter, the consent) left wholly empty is not
    sent: the channel decides whether it was needed, and the service says so."""
    return values if any(v not in (None, [], {}) for v in values.values()) else None


def submission_from_form(form: MultiDict) -> dict[str, Any]:
    """The JSON body `POST /api/v1/referrals` would carry, from the posted form. An empty
    answer is left out (so the service names it if the channel needs it)."""
    submission: dict[str, Any] = {}
    for key in (
        "channel",
        "urgency",
        "summary",
        "platform",
        "incident_type",
        "external_reference",
        "idempotency_key",
    ):
        value = _text(form, key)
        if value is not None:
            submission[key] = value.strip() if key != "summary" else value
    country = _text(form, "requesting_country")
    if country is not None:
        submission["requesting_country"] = country.strip().upper()
    submission["categories"] = [code for code in form.getlist("categories") if code]
    for key in ("risk_indicators", "annotations"):
        chosen = [code for code in form.getlist(key) if code]
        if chosen:
            submission[key] = chosen
    hashes = file_hashes(_text(form, "file_hashes"))
    if hashes:
        submission["file_hashes"] = hashes

    child = _part(
        {
            "given_name": _text(form, "child.given_name"),
            "family_name": _text(form, "child.family_name"),
            "date_of_birth": _text(form, "child.date_of_birth"),
            "age_years": _whole_number(_text(form, "child.age_years")),
            "sex": _text(form, "child.sex"),
        }
    )
    if child is not None:
        submission["child"] = {key: value for key, value in child.items() if value is not None}

    contact = _part(
        {key: _text(form, f"reporter.contact.{key}") for key in ("name", "phone", "email")}
    )
    kind = _text(form, "reporter.kind")
    if kind is not None or contact is not None:
        reporter: dict[str, Any] = {"contact": contact}
        if kind is not None:
            reporter["kind"] = kind
        submission["reporter"] = reporter

    consent = _part({key: _text(form, f"consent.{key}") for key in ("status", "by", "legal_basis")})
    if consent is not None:
        submission["consent"] = {k: v for k, v in consent.items() if v is not None}
    return submission


def form_values(form: MultiDict) -> dict[str, Any]:
    """What to put back in the form when it is shown again: every answer as typed."""
    values: dict[str, Any] = {field.name: form.get(field.name, "") for field in FIELDS}
    for key in MULTIPLE:
        values[key] = form.getlist(key)
    values["idempotency_key"] = form.get("idempotency_key", "")
    return values


MULTIPLE = ("categories", "risk_indicators", "annotations")  # ticked boxes: lists


# --- field errors, in plain words ------------------------------------------------------


def flatten_errors(messages: Any, path: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as {dotted field name: [messages]}.

    A position in a list (`categories.1`) is shown on the list itself; an error of a whole
    object (`_schema`) on the object's name."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            key_text = str(key)
            if key_text.isdigit() or key_text == "_schema":
                child_path = path
            else:
                child_path = f"{path}.{key_text}" if path else key_text
            for name, found in flatten_errors(value, child_path).items():
                flat.setdefault(name, []).extend(found)
    elif isinstance(messages, list | tuple):
        for value in messages:
            for name, found in flatten_errors(value, path).items():
                flat.setdefault(name, []).extend(found)
    else:
        flat.setdefault(path, []).append(str(messages))
    return flat


MISSING = (
    "Missing data for required field.",
    "Field may not be null.",
    "Shorter than minimum length 1.",
)
# What the referral service says of a part the channel needs, or does not take.
_REQUIRED_FOR_CHANNEL = re.compile(r"Required for an? \w+ referral\.")
_NOT_FOR_CHANNEL: Mapping[str, str] = {
    "Only a platform report carries this.": N_(
        "Leave this empty: only an online platform report carries it."
    ),
    "Only a request from another country carries this.": N_(
        "Leave this empty: only a request from another country carries it."
    ),
}
_LONGER = re.compile(r"Longer than maximum length (\d+)\.")
_RANGE = re.compile(r"greater than or equal to (\d+) and less than or equal to (\d+)")

# A schema's own words, as the person filling the form is told them.
_KNOWN: Mapping[str, str] = {
    "Not a valid integer.": N_("Enter a whole number, for example 14."),
    "Not a valid date.": N_("Enter a real date, for example 2012-03-31 (year, month, day)."),
    "Not a valid email address.": N_("Enter an e-mail address such as name@example.org."),
    "Not a hex digest.": N_("Write each digest in hexadecimal: digits 0-9 and letters a-f."),
    "An ISO 3166-1 alpha-2 code.": N_("Enter the country's two-letter code, for example DE."),
    "1 to 128 of A-Za-z0-9._:/-": N_("Use at most 128 letters, digits and . _ : / - (no spaces)."),
    "Contains control characters.": N_(
        "Remove the invisible control characters (they often come with pasted text)."
    ),
    "Give date_of_birth or age_years.": N_(
        "Give the child's date of birth or, if it is not known, their age in years."
    ),
    "Give date_of_birth or age_years, not both.": N_(
        "Give the date of birth or the age, not both."
    ),
    "Date of birth is in the future.": N_("The date of birth cannot be in the future."),
    "A child is under 18.": N_("This date of birth is of someone 18 or older."),
    "A legal basis is required when consent is not given.": N_(
        "Choose the legal basis for sharing without consent."
    ),
    "Each category once.": N_("Tick each kind of harm once."),
    "Each code once.": N_("Tick each option once."),
    "Not a valid string.": N_("This answer is not valid: check it and try again."),
    "Not a valid list.": N_("This answer is not valid: check it and try again."),
}
# A pattern's refusal, said for the field it is about.
_PATTERN = "String does not match expected pattern."
_PATTERN_BY_FIELD: Mapping[str, str] = {
    "reporter.contact.phone": N_("Use only digits, spaces, brackets, dashes and a leading +."),
    "platform": N_("Use lower-case letters, digits and _ only, starting with a letter."),
}
_DIGEST_LENGTH = re.compile(r"A (\w+) digest has (\d+) hex digits\.")
_INVALID_CHOICE = N_("Choose one of the options given.")
_UNKNOWN = N_("This answer is not valid: check it and try again.")


def field_for(name: str) -> str:
    """The form field an error is shown next to: the named field, or its nearest
    ancestor on the form (an error of the whole contact goes on its first field)."""
    if name in BY_NAME:
        return name
    prefix = name + "."
    for field in FIELDS:
        if field.name.startswith(prefix):
            return field.name
    parent = name.rpartition(".")[0]
    return field_for(parent) if parent else DEFAULT_FIELD


def plain_message(t: Translator, name: str, message: str) -> str:
    """One schema message in the person's language, about field `name`."""
    field = BY_NAME.get(name) or BY_NAME[field_for(name)]
    missing = field.missing or _UNKNOWN
    if message in MISSING or _REQUIRED_FOR_CHANNEL.fullmatch(message):
        return t.gettext(missing)
    if message in _NOT_FOR_CHANNEL:
        return t.gettext(_NOT_FOR_CHANNEL[message])
    if name.startswith("file_hashes") and message.startswith("Must be one of"):
        return t.gettext(N_("Name the algorithm of each digest: md5, sha1, sha256 or pdq."))
    if message.startswith("Must be one of") or message.startswith("Length must be between"):
        # An empty list of harms is refused by its length: say what to do about it.
        chosen = missing if name == LIST_OF_HARMS else _INVALID_CHOICE
        return t.gettext(chosen)
    longer = _LONGER.fullmatch(message)
    if longer:
        return t.gettext(N_("Use at most %(count)s characters.")) % {"count": longer.group(1)}
    digest = _DIGEST_LENGTH.fullmatch(message)
    if digest:
        return t.gettext(N_("A %(algorithm)s digest has %(count)s hexadecimal digits.")) % {
            "algorithm": digest.group(1),
            "count": digest.group(2),
        }
    if message == _PATTERN:
        return t.gettext(_PATTERN_BY_FIELD.get(name, _UNKNOWN))
    within = _RANGE.search(message)
    if within:
        return t.gettext(N_("Enter a number from %(low)s to %(high)s.")) % {
            "low": within.group(1),
            "high": within.group(2),
        }
    return t.gettext(_KNOWN.get(message, _UNKNOWN))


def form_errors(t: Translator, messages: Any) -> dict[str, list[str]]:
    """The service's (or the schema's) field errors as {form field: [plain messages]},
    in the order of the form, each message once."""
    shown: dict[str, list[str]] = {}
    for name, found in flatten_errors(messages).items():
        target = field_for(name)
        for message in found:
            text = plain_message(t, name, message)
            if text not in shown.setdefault(target, []):
                shown[target].append(text)
    order = [field.name for field in FIELDS]
    return {name: shown[name] for name in order if name in shown}


def error_summary(errors: Mapping[str, Iterable[str]]) -> list[dict[str, str]]:
    """The error summary at the top of the form: one link per message, to its field."""
    return [
        {"href": "#" + BY_NAME[name].id, "field": name, "message": message}
        for name, messages in errors.items()
        for message in messages
    ]
