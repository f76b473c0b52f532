"""The forms of the case pages: what each asks, in plain words; a posted form turned into
the body `case_management` takes; the service's field errors turned back into plain words
next to each field. Plain Python, no I/O: `case_pages` renders and posts them.

A form is a tuple of items:

- `Field`: one question. Its path in the body is the form field's name (`needs.safety.level`,
  `members.0.given_name`), so the service's 422 field map (marshmallow's nested shape,
  `{"members": {"0": {"given_name": [...]}}}`) names the form field directly.
- `Group`: a fixed nested object (`needs.safety`) or, with no key, a fieldset only.
- `Repeat`: a list of objects (family members, goals, a goal's services), one numbered
  fieldset each, plus a blank one to add; "Add another" posts the form back without
  saving, so it works without JavaScript.

The service validates every write (its closed schemas); the gateway does not second-guess
it, and shows its refusal next to each field.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from babel import Locale
from werkzeug.datastructures import MultiDict

from gateway.i18n import N_, Translator

# A plan of 20 goals with 20 services each, or an assessment with six long notes: URL-encoded
# accented text takes up to 9 bytes a character.
MAX_CASE_FORM_BYTES = 512 * 1024

LIST_KINDS = frozenset({"checkboxes", "select_list"})
TEXT_KINDS = frozenset({"text", "textarea", "email", "tel"})


@dataclass(frozen=True)
class Field:
    """One question. `options` names a code list of `i18n.LABELS` (or `countries`,
    `languages`, `assignees`, given at render time)."""

    key: str
    label: str
    hint: str | None = None
    kind: str = "text"  # text textarea email tel date number select radio yesno checkbox
    # checkboxes select_list hidden shown (read-only, kept across a re-render, not sent)
    options: str | None = None
    required: bool = False
    maxlength: int | None = None
    autocomplete: str = "off"
    rows: int = 3
    slots: int = 3  # select_list: how many selects
    slot_label: str | None = None  # select_list: "Language %(number)d"
    width: str = ""  # a CSS width class for short answers: "w-short", "w-date"
    empty_label: str | None = None  # an optional select's empty choice ("Not known")

    @property
    def sent(self) -> bool:
        """A `shown` field is read-only context (a service's status): never sent back."""
        return self.kind != "shown"


@dataclass(frozen=True)
class Group:
    key: str | None
    legend: str
    items: tuple[Any, ...]
    hint: str | None = None


@dataclass(frozen=True)
class Repeat:
    key: str
    legend: str  # with %(number)d
    items: tuple[Any, ...]
    add_label: str
    remove_label: str
    max_rows: int
    hint: str | None = None
    # A row that may not be removed (a service already under way): the predicate gets the
    # row's values.
    locked: Callable[[Mapping[str, Any]], bool] | None = None
    locked_hint: str | None = None


Item = Field | Group | Repeat


# --- the forms -------------------------------------------------------------------------

_TEXT_SHORT = 100
_NOTES = 2000

CHILD: tuple[Item, ...] = (
    Group(
        None,
        N_("Name"),
        (
            Field(
                "given_name",
                N_("First name"),
                N_("What the child is called. Write what is known; it can be changed later."),
                required=True,
                maxlength=_TEXT_SHORT,
            ),
            Field(
                "family_name",
                N_("Family name"),
                N_("Leave empty if it is not known."),
                maxlength=_TEXT_SHORT,
            ),
            Field(
                "other_names",
                N_("Other names"),
                N_("Nicknames, or names used online, that help to recognise the child."),
                maxlength=200,
            ),
        ),
    ),
    Group(
        None,
        N_("Age and sex"),
        (
            Field(
                "date_of_birth",
                N_("Date of birth"),
                N_("If you know it. Otherwise leave it empty and give the age below."),
                kind="date",
                width="w-date",
            ),
            Field(
                "age_years",
                N_("Age in years"),
                N_("Only when the date of birth is not known. A child is 17 or younger."),
                kind="number",
                width="w-short",
            ),
            Field("sex", N_("Sex"), kind="radio", options="sexes", required=True),
        ),
    ),
    Group(
        None,
        N_("Language and nationality"),
        (
            Field(
                "nationality",
                N_("Nationality"),
                N_("Leave empty if it is not known."),
                kind="select",
                options="countries",
            ),
            Field(
                "languages",
                N_("Languages the child speaks"),
                N_("The language the child is most at ease in first."),
                kind="select_list",
                options="languages",
                slots=3,
                slot_label=N_("Language %(number)d"),
            ),
            Field(
                "interpreter_needed",
                N_("Does the child need an interpreter?"),
                kind="yesno",
            ),
        ),
    ),
    Group(
        None,
        N_("Disability"),
        (
            Field(
                "disabilities",
                N_("Disabilities"),
                N_("Tick any that apply, so that meetings and services can be adapted."),
                kind="checkboxes",
                options="disabilities",
            ),
            Field(
                "disability_notes",
                N_("What helps the child"),
                N_("For example: sign language, easy-read material, a support person."),
                kind="textarea",
                maxlength=_NOTES,
            ),
        ),
    ),
    Group(
        None,
        N_("School"),
        (
            Field("in_school", N_("Does the child go to school?"), kind="yesno"),
            Field("school_name", N_("School"), maxlength=200),
            Field("school_grade", N_("Class or grade"), maxlength=50, width="w-short"),
        ),
    ),
)

_PHONE = Field("phone", N_("Phone number"), kind="tel", maxlength=40, width="w-medium")
_EMAIL = Field("email", N_("Email address"), kind="email", maxlength=254)

CONTACT: tuple[Item, ...] = (
    Field(
        "address",
        N_("Where the child lives"),
        N_("The address where the child can be found now."),
        kind="textarea",
        maxlength=500,
        autocomplete="off",
    ),
    replace(_PHONE, hint=N_("With the country code if it is abroad.")),
    _EMAIL,
    Field(
        "safe_to_contact",
        N_("Is it safe to contact the child there?"),
        N_("Say no if someone at this address or phone may harm the child or read messages."),
        kind="yesno",
    ),
    Field(
        "contact_notes",
        N_("How to contact safely"),
        N_("For example: only call after school, never leave a message."),
        kind="textarea",
        maxlength=_NOTES,
    ),
)


def _people(
    legend: str,
    relations: str,
    fields: tuple[Field, ...],
    *,
    add_label: str,
    hint: str,
) -> tuple[Item, ...]:
    """A list of people, one numbered row each: who they are and their relation to the
    child (from the code list `relations`) first, then what `fields` ask about them."""
    return (
        Repeat(
            "members",
            legend,
            (
                Field("person_id", "", kind="hidden"),
                Field("given_name", N_("First name"), required=True, maxlength=_TEXT_SHORT),
                Field("family_name", N_("Family name"), maxlength=_TEXT_SHORT),
                Field(
                    "relation",
                    N_("Relation to the child"),
                    kind="select",
                    options=relations,
                    required=True,
                ),
                *fields,
            ),
            add_label=add_label,
            remove_label=N_("Remove this person from the record"),
            max_rows=30,
            hint=hint,
        ),
    )


FAMILY = _people(
    N_("Family member or carer %(number)d"),
    "family_relations",
    (
        Field("is_main_carer", N_("Main carer of the child"), kind="checkbox"),
        Field("lives_with_child", N_("Lives with the child"), kind="checkbox"),
        Field(
            "parental_responsibility",
            N_("Has parental responsibility"),
            N_("May decide for the child in law."),
            kind="checkbox",
        ),
        _PHONE,
        _EMAIL,
        Field(
            "notes",
            N_("Notes"),
            N_("Anything that matters for the child's safety."),
            kind="textarea",
            maxlength=_NOTES,
        ),
    ),
    add_label=N_("Add another family member or carer"),
    hint=N_("Parents, brothers and sisters, and anyone who cares for the child."),
)

PEOPLE = _people(
    N_("Person %(number)d"),
    "person_relations",
    (
        Field(
            "supportive",
            N_("Is this person a support to the child?"),
            N_("Say no for anyone the child should be kept safe from."),
            kind="yesno",
        ),
        _PHONE,
        Field("notes", N_("Notes"), kind="textarea", maxlength=_NOTES),
    ),
    add_label=N_("Add another person"),
    hint=N_(
        "Teachers, friends, professionals, and the people who harmed or threatened the "
        "child, including online contacts."
    ),
)

SAFETY: tuple[Item, ...] = (
    Repeat(
        "concerns",
        N_("Concern %(number)d"),
        (
            Field(
                "concern",
                N_("What is the concern?"),
                kind="select",
                options="safety_concerns",
                required=True,
            ),
            Field("details", N_("What is known"), kind="textarea", maxlength=_NOTES),
        ),
        add_label=N_("Add another concern"),
        remove_label=N_("Remove this concern"),
        max_rows=20,
        hint=N_("What puts the child at risk now."),
    ),
    Field(
        "safety_measures",
        N_("What keeps the child safe now"),
        N_("The measures agreed and who does what, for example blocking accounts."),
        kind="textarea",
        maxlength=_NOTES,
        rows=4,
    ),
)

NEED_DOMAINS = ("safety", "health", "mental_health", "education", "family", "legal")
_DOMAIN_LEGENDS = {
    "safety": N_("Safety"),
    "health": N_("Health"),
    "mental_health": N_("Mental health"),
    "education": N_("Education"),
    "family": N_("Family"),
    "legal": N_("Legal"),
}

_CHILD_VIEWS = (
    Field(
        "child_views",
        N_("The child's own views"),
        N_(
            "What the child said about what happened, what they want and what worries them, "
            "in their words where you can."
        ),
        kind="textarea",
        maxlength=10_000,
        rows=4,
    ),
    Field(
        "child_views_not_recorded",
        N_("If the child's views are not recorded, why not"),
        N_("Only when you could not record the child's views above."),
        kind="select",
        options="views_not_recorded_reasons",
        empty_label=N_("They are recorded above"),
    ),
)

ASSESSMENT: tuple[Item, ...] = (
    Field(
        "assessed_on",
        N_("Date of the assessment"),
        N_("Today if left empty. It cannot be in the future."),
        kind="date",
        width="w-date",
    ),
    Field(
        "risk_level",
        N_("Risk to the child"),
        N_("High: the child may be harmed again soon unless something changes now."),
        kind="radio",
        options="risk_levels",
        required=True,
    ),
    Group(
        "needs",
        N_("Needs by domain"),
        tuple(
            Group(
                domain,
                _DOMAIN_LEGENDS[domain],
                (
                    Field(
                        "level",
                        N_("Level of need"),
                        kind="radio",
                        options="need_levels",
                        required=True,
                    ),
                    Field(
                        "notes",
                        N_("What the child needs"),
                        kind="textarea",
                        maxlength=_NOTES,
                        rows=2,
                    ),
                ),
            )
            for domain in NEED_DOMAINS
        ),
        hint=N_("For each domain, how much help the child needs, and what."),
    ),
    Field(
        "summary",
        N_("Summary of the assessment"),
        N_("What you found, and why you judge the risk as you do."),
        kind="textarea",
        required=True,
        maxlength=10_000,
        rows=6,
    ),
    Group(
        None,
        N_("The child's views"),
        _CHILD_VIEWS,
        hint=N_("Every child has a right to be heard in decisions about them."),
    ),
)


def _service_under_way(row: Mapping[str, Any]) -> bool:
    return row.get("status") not in (None, "", "planned")


PLAN: tuple[Item, ...] = (
    Repeat(
        "goals",
        N_("Goal %(number)d"),
        (
            Field("goal_id", "", kind="hidden"),
            Field(
                "domain",
                N_("Domain"),
                N_("Which need this goal answers."),
                kind="select",
                options="need_domains",
                required=True,
            ),
            Field(
                "description",
                N_("What the goal is"),
                N_("What will be different for the child when it is reached."),
                kind="textarea",
                required=True,
                maxlength=_NOTES,
                rows=2,
            ),
            Repeat(
                "services",
                N_("Service %(number)d"),
                (
                    Field("service_id", "", kind="hidden"),
                    Field("status", N_("Status"), kind="shown", options="service_statuses"),
                    Field(
                        "kind", N_("Service"), kind="select", options="service_kinds", required=True
                    ),
                    Field(
                        "provider",
                        N_("Provider"),
                        N_("Who delivers it: an organisation or a professional."),
                        required=True,
                        maxlength=200,
                    ),
                    Field("due_on", N_("Due by"), kind="date", required=True, width="w-date"),
                ),
                add_label=N_("Add another service to this goal"),
                remove_label=N_("Remove this service from the plan"),
                max_rows=20,
                locked=_service_under_way,
                locked_hint=N_("This service is under way: it stays in the plan."),
            ),
        ),
        add_label=N_("Add another goal"),
        remove_label=N_("Remove this goal"),
        max_rows=20,
        hint=N_("Each goal with the services that will reach it."),
        locked=lambda row: any(
            _service_under_way(service) for service in (row.get("services") or [])
        ),
        locked_hint=N_("A service of this goal is under way: the goal stays in the plan."),
    ),
)

SERVICE_UPDATE: tuple[Item, ...] = (
    Field(
        "status",
        N_("Where the service stands"),
        kind="radio",
        options="service_statuses",
        required=True,
    ),
    Field(
        "delivered_on",
        N_("Delivered on"),
        N_("Needed when the service is delivered."),
        kind="date",
        width="w-date",
    ),
    Field(
        "status_note",
        N_("Note on the status"),
        N_("Needed when the service is cancelled: say why."),
        kind="textarea",
        maxlength=_NOTES,
    ),
    Field("provider", N_("Provider"), maxlength=200),
    Field("due_on", N_("Due by"), kind="date", width="w-date"),
)

FOLLOW_UP_SCHEDULE: tuple[Item, ...] = (
    Field("kind", N_("What is planned"), kind="radio", options="follow_up_kinds", required=True),
    Field(
        "due_on",
        N_("Due by"),
        N_("The latest date it should happen."),
        kind="date",
        required=True,
        width="w-date",
    ),
)

FOLLOW_UP_RECORD: tuple[Item, ...] = (
    Field(
        "done_on",
        N_("Done on"),
        N_("It cannot be in the future."),
        kind="date",
        required=True,
        width="w-date",
    ),
    Field("summary", N_("What happened"), kind="textarea", required=True, maxlength=10_000, rows=5),
    Group(
        None,
        N_("The child's views"),
        _CHILD_VIEWS,
        hint=N_("Required for a case review: the child's views, or why they are missing."),
    ),
    Field(
        "next_due_on",
        N_("Next one due by"),
        N_("Schedules the next one of the same kind. Leave empty if none is needed."),
        kind="date",
        width="w-date",
    ),
)

REASON: tuple[Item, ...] = (
    Field("reason", N_("Reason"), kind="textarea", required=True, maxlength=_NOTES),
)

COMMENT: tuple[Item, ...] = (
    Field("comment", N_("Comment (optional)"), kind="textarea", maxlength=_NOTES),
)

NOTE: tuple[Item, ...] = (
    Field(
        "text",
        N_("Note"),
        N_("Notes stay in social services: they are never shared with other agencies."),
        kind="textarea",
        required=True,
        maxlength=10_000,
        rows=5,
    ),
)

CLOSURE: tuple[Item, ...] = (
    Field(
        "reason",
        N_("Why should the case close?"),
        kind="radio",
        options="closure_reasons",
        required=True,
    ),
    Field(
        "reason_text",
        N_("Say more"),
        N_("Needed when the reason is another one."),
        kind="textarea",
        maxlength=_NOTES,
    ),
)

REOPEN: tuple[Item, ...] = (
    Field(
        "reason", N_("Why is the case reopened?"), kind="textarea", required=True, maxlength=_NOTES
    ),
)

ASSIGNMENT: tuple[Item, ...] = (
    Field(
        "assign_to",
        N_("Social worker"),
        N_("The social workers of your agency."),
        kind="select",
        options="assignees",
        required=True,
    ),
    Field(
        "reason",
        N_("Reason for the change"),
        N_("Needed when the case moves from one social worker to another."),
        kind="textarea",
        maxlength=500,
    ),
)

REGISTRATION: tuple[Item, ...] = (
    Group("child", N_("The child"), CHILD),
    Field(
        "categories",
        N_("What harm is known or feared?"),
        N_("Tick every kind of harm. This is shared with the referral hub as codes only."),
        kind="checkboxes",
        options="categories",
        required=True,
    ),
    Field("urgency", N_("How urgent is it?"), kind="radio", options="urgencies", required=True),
)


# --- walking a form --------------------------------------------------------------------


def _join(prefix: str, key: str | None) -> str:
    if key is None:
        return prefix
    return f"{prefix}.{key}" if prefix else key


def fields_by_pattern(items: Iterable[Item], prefix: str = "") -> dict[str, Field]:
    """Each field by its path with the row numbers left out (`members.given_name`)."""
    found: dict[str, Field] = {}
    for item in items:
        if isinstance(item, Field):
            found[_join(prefix, item.key)] = item
        else:
            found.update(fields_by_pattern(item.items, _join(prefix, item.key)))
    return found


def pattern_of(path: str) -> str:
    return ".".join(part for part in path.split(".") if not part.isdigit())


def form_values(items: tuple[Item, ...], form: MultiDict) -> dict[str, Any]:
    """The posted answers by path: a list for a list kind, stripped text otherwise."""
    patterns = fields_by_pattern(items)
    values: dict[str, Any] = {}
    for name in form:
        known = patterns.get(pattern_of(name))
        if known is None:
            continue
        if known.kind in LIST_KINDS:
            values[name] = [v for v in form.getlist(name) if v.strip()]
        else:
            values[name] = _clean(form.get(name, ""), known.kind)
    return values


def _clean(value: str, kind: str) -> str:
    if kind == "textarea":
        return value.replace("\r\n", "\n").replace("\r", "\n").strip()
    return value.strip()


# --- from answers to a body, and back ----------------------------------------------------


def to_body(items: tuple[Item, ...], values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The body the service takes: empty answers left out (the service's defaults apply),
    numbers and yes/no typed, rows left blank or marked for removal dropped."""
    body: dict[str, Any] = {}
    for item in items:
        if isinstance(item, Field):
            if not item.sent:
                continue
            path = _join(prefix, item.key)
            present, value = _typed(item, values.get(path))
            if present:
                body[item.key] = value
        elif isinstance(item, Group):
            inner = to_body(item.items, values, _join(prefix, item.key))
            if item.key is None:
                body.update(inner)
            else:
                body[item.key] = inner
        else:
            path = _join(prefix, item.key)
            body[item.key] = [
                to_body(item.items, values, f"{path}.{index}")
                for index in row_indices(values, path)
                if not row_removed(values, f"{path}.{index}", item)
                and not row_blank(item.items, values, f"{path}.{index}")
            ]
    return body


def _typed(item: Field, raw: Any) -> tuple[bool, Any]:
    if item.kind in LIST_KINDS:
        return True, list(raw or [])
    if item.kind == "checkbox":
        return True, bool(raw)
    text = (raw or "").strip() if isinstance(raw, str) else raw
    if not text:
        return False, None
    if item.kind == "yesno":
        if text in ("yes", "no"):
            return True, text == "yes"
        return True, text  # the service names it
    if item.kind == "number" and re.fullmatch(r"-?\d{1,6}", text):
        return True, int(text)
    return True, text


def row_indices(values: Mapping[str, Any], path: str) -> list[int]:
    """The row numbers posted (or prefilled) for a repeat at `path`, in order."""
    head = path + "."
    found = set()
    for name in values:
        if name.startswith(head):
            first = name[len(head) :].split(".", 1)[0]
            if first.isdigit():
                found.add(int(first))
    return sorted(found)


def row_removed(values: Mapping[str, Any], row_path: str, repeat: Repeat) -> bool:
    if not values.get(f"{row_path}._remove"):
        return False
    row = unflatten_row(values, row_path)
    return not (repeat.locked and repeat.locked(row))


def row_blank(items: tuple[Item, ...], values: Mapping[str, Any], prefix: str) -> bool:
    """Nobody wrote anything in this row (hidden identifiers and ticks do not count)."""
    for item in items:
        if isinstance(item, Field):
            if item.kind in ("hidden", "checkbox"):
                if (
                    item.kind == "hidden"
                    and item.key.endswith("_id")
                    and values.get(_join(prefix, item.key))
                ):
                    return False  # a known person or goal: never silently dropped
                continue
            value = values.get(_join(prefix, item.key))
            if value:
                return False
        elif isinstance(item, Group):
            if not row_blank(item.items, values, _join(prefix, item.key)):
                return False
        else:
            path = _join(prefix, item.key)
            for index in row_indices(values, path):
                if not row_blank(item.items, values, f"{path}.{index}"):
                    return False
    return True


def unflatten_row(values: Mapping[str, Any], row_path: str) -> dict[str, Any]:
    """A row's own answers as a nested dict (enough for `Repeat.locked`)."""
    head = row_path + "."
    row: dict[str, Any] = {}
    for name, value in values.items():
        if not name.startswith(head):
            continue
        parts = name[len(head) :].split(".")
        node: Any = row
        for position, part in enumerate(parts):
            last = position == len(parts) - 1
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append({})
                if last:
                    node[index] = value
                else:
                    node = node[index]
                continue
            if last:
                node[part] = value
            else:
                nxt = parts[position + 1]
                node = node.setdefault(part, [] if nxt.isdigit() else {})
    return row


def compacted(items: tuple[Item, ...], values: Mapping[str, Any]) -> dict[str, Any]:
    """The answers renumbered as `to_body` sends them (blank and removed rows out), so that
    the service's row numbers in its errors match the rows shown again."""
    return flatten(items, to_body(items, values), keep_empty=True)


def flatten(
    items: tuple[Item, ...],
    data: Mapping[str, Any] | None,
    prefix: str = "",
    keep_empty: bool = False,
) -> dict[str, Any]:
    """A record's section (or a body) as answers by path, for the form to show."""
    values: dict[str, Any] = {}
    data = data or {}
    for item in items:
        if isinstance(item, Field):
            path = _join(prefix, item.key)
            value = data.get(item.key)
            shown = _shown(item, value)
            if shown not in ("", None, []) or keep_empty:
                values[path] = shown
        elif isinstance(item, Group):
            inner = data if item.key is None else (data.get(item.key) or {})
            values.update(flatten(item.items, inner, _join(prefix, item.key), keep_empty))
        else:
            path = _join(prefix, item.key)
            for index, row in enumerate(data.get(item.key) or []):
                row_values = flatten(item.items, row, f"{path}.{index}", keep_empty=True)
                values.update(row_values)
    return values


def _shown(item: Field, value: Any) -> Any:
    if item.kind in LIST_KINDS:
        return [str(v) for v in value or []]
    if item.kind == "yesno":
        if value is True:
            return "yes"
        if value is False:
            return "no"
        return "" if value is None else str(value)
    if item.kind == "checkbox":
        return "on" if value else ""
    return "" if value is None else str(value)


# --- errors ----------------------------------------------------------------------------


def flatten_errors(fields: Any, prefix: str = "") -> dict[str, list[str]]:
    """The service's field map (nested, marshmallow's shape) as messages by path."""
    flat: dict[str, list[str]] = {}
    if isinstance(fields, Mapping):
        for key, value in fields.items():
            path = prefix if key == "_schema" else _join(prefix, str(key))
            for inner, messages in flatten_errors(value, path).items():
                flat.setdefault(inner, []).extend(messages)
    elif isinstance(fields, list | tuple):
        if all(isinstance(item, str) for item in fields):
            flat[prefix] = [str(item) for item in fields]
        else:
            for item in fields:
                for inner, messages in flatten_errors(item, prefix).items():
                    flat.setdefault(inner, []).extend(messages)
    elif fields is not None:
        flat[prefix] = [str(fields)]
    return flat


_BETWEEN = re.compile(r"Length must be between (\d+) and (\d+)\.")
_LONGER = re.compile(r"Longer than maximum length (\d+)\.")
_SHORTER = re.compile(r"Shorter than minimum length (\d+)\.")
_RANGE = re.compile(
    r"Must be greater than or equal to (-?[\d.]+) and less than or equal to (-?[\d.]+)\."
)
_CHOICE = re.compile(r"Must be one of: .*")

# The service's own messages that have a plain-language version here (the English text is
# kept as the service wrote it where it is not listed).
_KNOWN: dict[str, str] = {
    "Missing data for required field.": N_("This is required."),
    "Field may not be null.": N_("This is required."),
    "Not a valid integer.": N_("Enter a whole number, like 12."),
    "Not a valid date.": N_("Enter a real date."),
    "Not a valid email address.": N_("Enter an email address like name@example.org."),
    "Not a valid boolean.": N_("Choose yes or no."),
    "Not a valid string.": N_("Enter text here."),
    "Not a valid list.": N_("Choose from the list."),
    "Invalid input type.": N_("This answer has the wrong form."),
    "String does not match expected pattern.": N_("This is not written in the expected form."),
    "Contains control characters.": N_(
        "Remove the invisible control characters (or line breaks) from this text."
    ),
    "Unknown field.": N_("This answer is not expected here. Reload the page and try again."),
    "Not a valid identifier.": N_("This reference is not valid. Reload the page and try again."),
    "Not a valid UUID.": N_("This reference is not valid. Reload the page and try again."),
    "Give date_of_birth or age_years.": N_("Give the date of birth or the age."),
    "Give date_of_birth or age_years, not both.": N_(
        "Give the date of birth or the age, not both."
    ),
    "Date of birth is in the future.": N_("The date of birth cannot be in the future."),
    "A child is under 18.": N_("A child is under 18: check the date of birth."),
    "Each category once.": N_("Tick each kind of harm once."),
    # The case schemas (concord_contracts.cases) and case_management's rules.
    "Digits, spaces, + ( ) - only.": N_(
        "Write the phone number with digits, spaces and + ( ) - only."
    ),
    "Not a user identifier.": N_("Choose a social worker from the list."),
    "An ISO 3166-1 alpha-2 code.": N_("Choose the country from the list."),
    "An ISO 639-1 code.": N_("Choose the language from the list."),
    "Each value once.": N_("Choose each answer only once."),
    "Each person_id once.": N_("The same person is listed twice. Reload the page and try again."),
    "Each goal_id once.": N_(
        "The same goal or service is listed twice. Reload the page and try again."
    ),
    "Each service_id once.": N_(
        "The same goal or service is listed twice. Reload the page and try again."
    ),
    "No such service on this case.": N_(
        "This service is not on this case. Reload the page and try again."
    ),
    "An assessment is not dated in the future.": N_(
        "The date of an assessment cannot be in the future."
    ),
    "A due date is not in the past.": N_("A due date cannot be in the past."),
    "A plan has at least one service to deliver its goals.": N_(
        "Give the plan at least one service to reach its goals."
    ),
    "A delivery is not dated in the future.": N_("The delivery date cannot be in the future."),
    "A follow-up is not recorded before it happens.": N_(
        "A follow-up cannot be recorded before it happens: check the date."
    ),
    "A positive whole number.": N_("This reference is not valid. Reload the page and try again."),
}

# Messages the service writes that are plain already: said as they are, translated.
_PLAIN_ALREADY = (
    N_("Describe the concern."),
    N_("Record the child's views or why they were not recorded, not both."),
    N_("Record the child's own views, or why they could not be recorded."),
    N_("Say when it was delivered."),
    N_("Only a delivered service has a delivery date."),
    N_("Say why it was cancelled."),
    N_("Explain the reason."),
    N_("The case is already assigned to this person."),
    N_("Say why the case is reassigned."),
)
for _message in _PLAIN_ALREADY:
    _KNOWN.setdefault(_message, _message)

_TOO_OLD = re.compile(r"Older than \d+: not a child's record\.")


def plain_message(message: str, t: Translator, language: str, kind: str = "text") -> str:
    """A service's field message in the page's language, in plain words."""
    if message in _KNOWN:
        return t.gettext(_KNOWN[message])
    if _TOO_OLD.fullmatch(message) is not None:
        return t.gettext(N_("Too old for a child's record: check the date of birth."))
    if (match := _LONGER.fullmatch(message)) is not None:
        return _too_long(t, int(match[1]), kind)
    if (match := _BETWEEN.fullmatch(message)) is not None:
        low, high = int(match[1]), int(match[2])
        if kind in TEXT_KINDS or kind in ("select", "radio", "date", "number"):
            return t.gettext(N_("This is required.")) if low > 0 else _too_long(t, high, kind)
        return t.gettext(N_("Give between %(low)d and %(high)d.")) % {"low": low, "high": high}
    if _SHORTER.fullmatch(message) is not None:
        return t.gettext(N_("This is required."))
    if (match := _RANGE.fullmatch(message)) is not None:
        return t.gettext(N_("Enter a number from %(low)s to %(high)s.")) % {
            "low": match[1],
            "high": match[2],
        }
    if _CHOICE.fullmatch(message) is not None:
        return t.gettext(N_("Choose one of the answers given."))
    translated = t.gettext(message)
    if translated != message:
        return translated
    # A message of the service with no plain version here: shown as written in English,
    # and as a plain pointer in another language.
    if language == "en":
        return message
    return t.gettext(N_("This answer is not accepted: check it."))


def _too_long(t: Translator, limit: int, kind: str) -> str:
    if kind in TEXT_KINDS:
        return t.gettext(N_("Too long: at most %(limit)d characters.")) % {"limit": limit}
    return t.gettext(N_("Too many: at most %(limit)d.")) % {"limit": limit}


# --- the form as the template shows it ---------------------------------------------------


@dataclass
class Node:
    """One bound item: a field with its answer and errors, or a group, repeat or row."""

    node: str  # field group repeat row
    path: str
    id: str
    label: str = ""
    hint: str = ""
    kind: str = ""
    name: str = ""
    value: Any = ""
    options: list[tuple[str, str]] = field(default_factory=list)
    required: bool = False
    maxlength: int | None = None
    autocomplete: str = "off"
    rows: int = 3
    width: str = ""
    errors: list[str] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)
    slots: list[tuple[str, str, str]] = field(default_factory=list)  # id, label, value
    add_label: str = ""
    remove_label: str = ""
    removable: bool = True
    can_add: bool = False
    empty_label: str = ""
    locked_hint: str = ""
    full_label: str = ""

    @property
    def described_by(self) -> str:
        ids = []
        if self.hint:
            ids.append(f"{self.id}-hint")
        if self.errors:
            ids.append(f"{self.id}-error")
        return " ".join(ids)


def node_id(path: str) -> str:
    return "f-" + (path.replace(".", "-") if path else "form")


@dataclass
class BoundForm:
    nodes: list[Node]
    summary: list[tuple[str, str, str]]  # (anchor id, label, message)
    form_errors: list[str]


def bind(
    items: tuple[Item, ...],
    values: Mapping[str, Any],
    errors: Mapping[str, list[str]],
    t: Translator,
    language: str,
    options: Mapping[str, list[tuple[str, str]]],
    extra_rows: Mapping[str, int] | None = None,
) -> BoundForm:
    """The form with its answers and errors, each error on the nearest question shown."""
    extra_rows = extra_rows or {}
    nodes = _bind_items(items, values, t, options, extra_rows, "", "")
    by_path: dict[str, Node] = {}
    order: list[Node] = []

    def index(node_list: list[Node]) -> None:
        for node in node_list:
            if node.node == "field" and node.kind in ("hidden", "shown"):
                continue  # its errors go to its row: it has nothing to point at
            by_path.setdefault(node.path, node)
            order.append(node)
            index(node.children)

    index(nodes)
    form_errors: list[str] = []
    for path, messages in errors.items():
        target = _nearest(path, by_path)
        kind = target.kind if target is not None else "text"
        plain = [plain_message(message, t, language, kind) for message in messages]
        if target is None:
            form_errors.extend(plain)
        else:
            target.errors.extend(m for m in plain if m not in target.errors)
    summary = [
        (node.id, node.full_label or node.label, message)
        for node in order
        for message in node.errors
    ]
    return BoundForm(nodes, summary, form_errors)


def _nearest(path: str, by_path: Mapping[str, Node]) -> Node | None:
    parts = path.split(".") if path else []
    while parts:
        candidate = by_path.get(".".join(parts))
        if candidate is not None:
            return candidate
        parts.pop()
    return None


def _bind_items(
    items: tuple[Item, ...],
    values: Mapping[str, Any],
    t: Translator,
    options: Mapping[str, list[tuple[str, str]]],
    extra_rows: Mapping[str, int],
    prefix: str,
    context: str,
) -> list[Node]:
    nodes: list[Node] = []
    for item in items:
        if isinstance(item, Field):
            nodes.append(_bind_field(item, values, t, options, prefix, context))
        elif isinstance(item, Group):
            path = _join(prefix, item.key)
            legend = t.gettext(item.legend)
            inner_context = f"{context}{legend}: " if item.key else context
            nodes.append(
                Node(
                    "group",
                    path if item.key else f"{path}#{legend}",
                    node_id(path) + ("" if item.key else "-" + _slug(item.legend)),
                    label=legend,
                    hint=t.gettext(item.hint) if item.hint else "",
                    full_label=f"{context}{legend}",
                    children=_bind_items(
                        item.items, values, t, options, extra_rows, path, inner_context
                    ),
                )
            )
        else:
            nodes.append(_bind_repeat(item, values, t, options, extra_rows, prefix, context))
    return nodes


def _bind_field(
    item: Field,
    values: Mapping[str, Any],
    t: Translator,
    options: Mapping[str, list[tuple[str, str]]],
    prefix: str,
    context: str,
) -> Node:
    path = _join(prefix, item.key)
    label = t.gettext(item.label) if item.label else ""
    value = values.get(path, [] if item.kind in LIST_KINDS else "")
    node = Node(
        "field",
        path,
        node_id(path),
        label=label,
        hint=t.gettext(item.hint) if item.hint else "",
        kind=item.kind,
        name=path,
        value=value,
        options=list(options.get(item.options, [])) if item.options else [],
        required=item.required,
        maxlength=item.maxlength,
        autocomplete=item.autocomplete,
        rows=item.rows,
        width=item.width,
        full_label=f"{context}{label}",
        empty_label=t.gettext(item.empty_label) if item.empty_label else "",
    )
    if item.kind == "select_list":
        chosen = list(value or [])
        slot_label = t.gettext(item.slot_label or N_("Choice %(number)d"))
        node.slots = [
            (
                f"{node.id}-{number}",
                slot_label % {"number": number},
                chosen[number - 1] if number - 1 < len(chosen) else "",
            )
            for number in range(1, max(item.slots, len(chosen)) + 1)
        ]
    return node


def _bind_repeat(
    item: Repeat,
    values: Mapping[str, Any],
    t: Translator,
    options: Mapping[str, list[tuple[str, str]]],
    extra_rows: Mapping[str, int],
    prefix: str,
    context: str,
) -> Node:
    path = _join(prefix, item.key)
    existing = row_indices(values, path)
    count = (max(existing) + 1) if existing else 0
    # One blank row to add to, more when "Add another" asked for them.
    count = min(item.max_rows, count + 1 + extra_rows.get(path, 0))
    rows = []
    for index in range(count):
        row_path = f"{path}.{index}"
        legend = t.gettext(item.legend) % {"number": index + 1}
        row_values = unflatten_row(values, row_path)
        locked = bool(item.locked and item.locked(row_values))
        rows.append(
            Node(
                "row",
                row_path,
                node_id(row_path),
                label=legend,
                full_label=f"{context}{legend}",
                children=_bind_items(
                    item.items, values, t, options, extra_rows, row_path, f"{context}{legend}: "
                ),
                remove_label=t.gettext(item.remove_label),
                removable=not locked and index in existing,
                locked_hint=t.gettext(item.locked_hint) if locked and item.locked_hint else "",
                value="on" if values.get(f"{row_path}._remove") else "",
            )
        )
    return Node(
        "repeat",
        path,
        node_id(path),
        label=t.gettext(item.legend) % {"number": 1},
        hint=t.gettext(item.hint) if item.hint else "",
        full_label=context.rstrip(": ") or t.gettext(item.legend) % {"number": 1},
        children=rows,
        add_label=t.gettext(item.add_label),
        name=path,
        can_add=len(rows) < item.max_rows,
    )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def removal_values(items: tuple[Item, ...], form: MultiDict) -> dict[str, str]:
    """The rows ticked for removal, by their row path."""
    repeats = _repeat_patterns(items)
    found = {}
    for name in form:
        if name.endswith("._remove") and pattern_of(name[: -len("._remove")]) in repeats:
            found[name] = "on"
    return found


def _repeat_patterns(items: Iterable[Item], prefix: str = "") -> set[str]:
    found: set[str] = set()
    for item in items:
        if isinstance(item, Group):
            found |= _repeat_patterns(item.items, _join(prefix, item.key))
        elif isinstance(item, Repeat):
            path = _join(prefix, item.key)
            found.add(path)
            found |= _repeat_patterns(item.items, path)
    return found


def added_row(items: tuple[Item, ...], form: MultiDict) -> str | None:
    """The repeat whose "Add another" button was pressed (its path), if one was."""
    asked = form.get("_add")
    if not asked:
        return None
    return asked if pattern_of(asked) in _repeat_patterns(items) else None


# --- choices shown in a language ------------------------------------------------------

_NOT_COUNTRIES = frozenset({"EU", "EZ", "UN", "QO", "ZZ", "XA", "XB"})


def _sort_key(item: tuple[str, str]) -> str:
    return unicodedata.normalize("NFKD", item[1]).casefold()


@cache
def countries(language: str) -> list[tuple[str, str]]:
    """ISO 3166-1 alpha-2 codes with their names in `language`, by name."""
    names = Locale.parse(language).territories
    return sorted(
        (
            (code, name)
            for code, name in names.items()
            if len(code) == 2 and code.isalpha() and code not in _NOT_COUNTRIES
        ),
        key=_sort_key,
    )


@cache
def languages(language: str) -> list[tuple[str, str]]:
    """ISO 639-1 codes with their names in `language`, by name."""
    names = Locale.parse(language).languages
    return sorted(
        ((code, name) for code, name in names.items() if len(code) == 2 and code.isalpha()),
        key=_sort_key,
    )
