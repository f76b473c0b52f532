"""Social services' case pages: my cases (due and overdue first), the case page with its
workflow bar and the partners' status, a form for each section, the supervisor's approvals
queue, and assignment.

Every page asks `case_management`, which decides what the signed-in person may see or do
(the gateway only spares them links that would be refused). Forms work without
JavaScript: plain posts with a CSRF token (double submit, as the sign-in form), the case's
`version` sent back so that nobody overwrites a change they have not seen, and the
service's 422 field map shown next to each field with a summary on top.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import marshmallow as ma
from babel.dates import format_date
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from concord_contracts.cases import (
    ApprovalItemSchema,
    CaseListItemSchema,
    CaseRecordSchema,
    ConflictCode,
)
from concord_contracts.codes import Agency, CaseStatus, Organisation, PlanState, Role
from concord_kit import errors as kit
from gateway import case_forms as forms
from gateway import errors, i18n, pages
from gateway.auth import Tokens
from gateway.case_forms import Item
from gateway.i18n import N_
from gateway.web import Exchange

# Messages shown after a redirect, by the code in the query string (never free text).
CASE_NOTICES: dict[str, tuple[str, str]] = {
    "case_registered": ("status", N_("The case is registered and assigned to you.")),
    "case_section_saved": ("status", N_("Saved.")),
    "case_assessment_recorded": (
        "status",
        N_("The assessment is recorded, dated and signed with your name."),
    ),
    "case_plan_saved": ("status", N_("The case plan is saved as a draft.")),
    "case_plan_submitted": ("status", N_("The case plan was sent to a supervisor for approval.")),
    "case_plan_not_submitted": (
        "alert",
        N_(
            "The case plan is saved, but it was not sent for approval: a plan is sent once it "
            "has at least one goal with a service, and not while one waits for a decision."
        ),
    ),
    "case_service_updated": ("status", N_("The service is updated.")),
    "case_follow_up_scheduled": ("status", N_("The follow-up is scheduled.")),
    "case_follow_up_recorded": ("status", N_("The follow-up is recorded.")),
    "case_follow_up_cancelled": ("status", N_("The follow-up is cancelled.")),
    "case_note_added": ("status", N_("The note is added.")),
    "case_closure_requested": (
        "status",
        N_("Closure requested. A supervisor decides whether the case closes."),
    ),
    "case_reopened": ("status", N_("The case is reopened.")),
    "case_assigned": ("status", N_("The case is assigned.")),
    "case_plan_approved": ("status", N_("The case plan is approved.")),
    "case_plan_returned": ("status", N_("The case plan was returned with your reason.")),
    "case_closure_approved": ("status", N_("The closure is approved: the case is closed.")),
    "case_closure_rejected": ("status", N_("The closure was rejected with your reason.")),
    "case_decision_conflict": (
        "alert",
        N_("This was decided already, or the case changed since the page was loaded."),
    ),
    "case_four_eyes": ("alert", errors.FOUR_EYES_REFUSAL),
}
pages.NOTICES.update(CASE_NOTICES)

# What a write's 409 says, by the code the service raises `Conflict` with
# (concord_contracts.cases.ConflictCode).
STALE_VERSION = ConflictCode.stale_version.value
FOUR_EYES = ConflictCode.four_eyes.value
_CONFLICTS = {
    STALE_VERSION: N_(
        "Someone else changed this case while you were editing. Nothing was saved. Check "
        "the case (open it in a new tab), then save again to replace their change with yours."
    ),
    FOUR_EYES: errors.FOUR_EYES_REFUSAL,
}
_CONFLICT = N_(
    "The case is not in a state that allows this. Nothing was saved. Open the case to see "
    "where it stands."
)
_FORM_EXPIRED = N_("The form had expired. Nothing was saved. Please check it and save again.")

STAFF_ROLES = frozenset({Role.social_worker, Role.supervisor})
LIST_LIMIT = 25
NOTES_ON_CASE_PAGE = 3
NOTES_PER_PAGE = 25
PARTNER_AGENCIES = (Agency.justice, Agency.cross_border)
READ_REASON = "case page"


@dataclass
class Desk:
    """What the case pages need from the gateway: the service client and the users."""

    cases: Any  # the case_management RPC client
    tokens: Tokens
    display_names: Callable[[Iterable[str]], dict[str, str]]
    assignees: Callable[[Organisation], list[dict[str, Any]]]


# --- small helpers ---------------------------------------------------------------------


def case_id_of(value: str) -> str:
    """A case id from the path, or a 404 page (never a 500) for anything else."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise errors.not_found() from None


def read_form(request: Request) -> MultiDict:
    request.max_content_length = forms.MAX_CASE_FORM_BYTES
    request.max_form_memory_size = forms.MAX_CASE_FORM_BYTES
    try:
        return request.form
    except RequestEntityTooLarge:
        raise errors.payload_too_large() from None


def is_staff(ex: Exchange) -> bool:
    principal = ex.principal
    return (
        principal is not None
        and principal.agency == Organisation.social_services
        and principal.role in STAFF_ROLES
    )


def is_supervisor(ex: Exchange) -> bool:
    return is_staff(ex) and ex.principal is not None and ex.principal.role == Role.supervisor


def version_of(form: Mapping[str, str]) -> int | None:
    raw = form.get("expected_version", "")
    return int(raw) if raw.isdigit() else None


def conflict_kind(exc: kit.Conflict) -> str:
    """`stale_version`, `four_eyes`, or "" for any other 409 (a wrong workflow state):
    the code `case_management` raised it with (errors.conflict_code), never its text."""
    code = errors.conflict_code(exc)
    return code.value if code in (ConflictCode.stale_version, ConflictCode.four_eyes) else ""


def conflict_message(ex: Exchange, exc: kit.Conflict) -> str:
    return ex.gettext(_CONFLICTS.get(conflict_kind(exc), _CONFLICT))


def child_name(child: Mapping[str, Any] | None, ex: Exchange) -> str:
    child = child or {}
    parts = [child.get("given_name"), child.get("family_name")]
    name = " ".join(p for p in parts if p)
    return name or ex.gettext(N_("Name not known"))


def age_of(child: Mapping[str, Any] | None, today: dt.date | None = None) -> int | None:
    child = child or {}
    if child.get("age_years") is not None:
        return int(child["age_years"])
    born = child.get("date_of_birth")
    if not born:
        return None
    born_on = dt.date.fromisoformat(born) if isinstance(born, str) else born
    today = today or dt.datetime.now(dt.UTC).date()
    years = today.year - born_on.year - ((today.month, today.day) < (born_on.month, born_on.day))
    return max(years, 0)


class Formats:
    """Dates, instants, labels and people, as a page in one language shows them."""

    def __init__(self, ex: Exchange, names: Mapping[str, str]):
        self.ex = ex
        self.language = ex.language
        self.names = names

    def date(self, value: str | dt.date | None) -> str:
        if not value:
            return ""
        day = dt.date.fromisoformat(value) if isinstance(value, str) else value
        return format_date(day, "medium", locale=self.language)

    def instant(self, value: str | None) -> str:
        return i18n.format_instant(value, self.language) if value else ""

    def day_of(self, value: str | None) -> str:
        """An instant's day, for a compact line (the full instant goes in `datetime`)."""
        if not value:
            return ""
        return self.date(dt.datetime.fromisoformat(value).astimezone(dt.UTC).date())

    def label(self, list_name: str, code: str | None) -> str:
        return i18n.label(self.language, list_name, code) if code else ""

    def who(self, user_id: str | None) -> str:
        if not user_id:
            return ""
        return self.names.get(user_id) or self.ex.gettext(N_("Someone no longer listed"))

    def partner_status(self, agency: str, code: str) -> str:
        own = {"justice": "investigation_statuses", "cross_border": "request_statuses"}
        labels = i18n.LABELS[self.language]
        specific = labels.get(own.get(agency, ""), {})
        return specific.get(code) or labels["agency_statuses"].get(code) or code

    def country(self, code: str | None) -> str:
        if not code:
            return ""
        return dict(forms.countries(self.language)).get(code, code)

    def language_name(self, code: str) -> str:
        return dict(forms.languages(self.language)).get(code, code)


_RECORD = CaseRecordSchema()
_LIST_ITEM = CaseListItemSchema()
_APPROVAL = ApprovalItemSchema()


def complete(schema: ma.Schema, data: Any) -> Any:
    """`data` with every field `schema` declares, absent ones as None (a list as []): a
    record pulled from a referral leaves out what the referral did not say, and the pages
    read every field."""
    if not isinstance(data, Mapping):
        return data
    filled = dict(data)
    for name, declared in schema.fields.items():
        filled[name] = _complete_value(declared, filled.get(name))
    return filled


def _complete_value(declared: ma.fields.Field, value: Any) -> Any:
    if isinstance(declared, ma.fields.Nested):
        nested = declared.schema
        if value is None:
            return [] if declared.many else None
        if declared.many:
            return [complete(nested, item) for item in value]
        return complete(nested, value)
    if isinstance(declared, ma.fields.List):
        return [_complete_value(declared.inner, item) for item in value or []]
    if isinstance(declared, ma.fields.Dict) and isinstance(value, Mapping):
        values = declared.value_field
        if values is None:
            return value
        return {k: _complete_value(values, v) for k, v in value.items()}
    return value


def people_in(record: Mapping[str, Any]) -> set[str]:
    """Every user id a case record names (to show people by name)."""
    ids = {record.get("opened_by"), record.get("assigned_to")}
    plan = record.get("plan") or {}
    ids |= {plan.get(k) for k in ("written_by", "submitted_by", "decided_by")}
    closure = record.get("closure") or {}
    ids |= {closure.get("requested_by"), closure.get("decided_by")}
    ids |= {r.get("reopened_by") for r in record.get("reopenings") or []}
    for assignment in record.get("assignments") or []:
        ids |= {assignment.get("assigned_to"), assignment.get("assigned_by")}
    ids |= {s.get("updated_by") for s in record.get("services") or []}
    for follow_up in record.get("follow_ups") or []:
        ids |= {follow_up.get("scheduled_by"), follow_up.get("recorded_by")}
    assessment = record.get("assessment") or {}
    ids.add((assessment.get("signature") or {}).get("signed_by"))
    return {i for i in ids if i}


def options_for_language(
    language: str, assignees: list[tuple[str, str]] | None = None
) -> dict[str, list[tuple[str, str]]]:
    """The choices each form field offers, in `language`."""
    labels = i18n.LABELS[language]
    options: dict[str, list[tuple[str, str]]] = {
        name: list(codes.items()) for name, codes in labels.items()
    }
    options["countries"] = forms.countries(language)
    options["languages"] = forms.languages(language)
    options["assignees"] = assignees or []
    return options


def bind_form(
    ex: Exchange,
    items: tuple[Item, ...],
    values: Mapping[str, Any],
    field_errors: Mapping[str, list[str]],
    *,
    assignees: list[tuple[str, str]] | None = None,
    extra_rows: Mapping[str, int] | None = None,
) -> forms.BoundForm:
    """A form in the page's language, with its answers, its errors and its choices."""
    options = options_for_language(ex.language, assignees)
    return forms.bind(
        items, values, field_errors, ex.translations, ex.language, options, extra_rows
    )


def workflow_steps(record: Mapping[str, Any], fmt: Formats) -> list[dict[str, Any]]:
    """The workflow bar: every step in order, done, current or still to come."""
    order = [str(s) for s in CaseStatus]
    current = order.index(str(record["status"]))
    reached = {str(step["status"]): step.get("reached_at") for step in record.get("workflow", [])}
    steps = []
    for position, code in enumerate(order):
        state = "done" if position < current else "current" if position == current else "todo"
        at = reached.get(code)
        steps.append(
            {
                "code": code,
                "label": fmt.label("case_statuses", code),
                "state": state,
                "reached_at": at if state != "todo" else None,
                "reached": fmt.day_of(at) if at and state != "todo" else "",
                "number": position + 1,
            }
        )
    return steps


def partner_panel(record: Mapping[str, Any], fmt: Formats) -> list[dict[str, Any]]:
    """Where the partner agencies stand on the same coordination id, by agency key."""
    now = dt.datetime.now(dt.UTC)
    partners = record.get("partners") or {}
    panel = []
    for agency in PARTNER_AGENCIES:
        entry = partners.get(str(agency))
        item: dict[str, Any] = {
            "agency": str(agency),
            "name": fmt.label("agencies", str(agency)),
            "known": entry is not None,
            "overdue": False,
            "requests": [],
        }
        if entry is not None:
            item.update(
                status=fmt.partner_status(str(agency), entry["status"]),
                status_code=entry["status"],
                since=entry["since"],
                since_text=fmt.instant(entry["since"]),
                due_at=entry.get("due_at"),
                due_text=fmt.instant(entry.get("due_at")),
                overdue=bool(entry.get("overdue")),
                requests=[
                    {
                        "instrument": fmt.label("instruments", request.get("instrument")),
                        "country": fmt.country(request.get("executing_country")),
                        "status": fmt.label("request_statuses", request["status"]),
                        "since": request["since"],
                        "since_text": fmt.instant(request["since"]),
                        "due_at": request.get("due_at"),
                        "due_text": fmt.instant(request.get("due_at")),
                        "overdue": bool(request.get("overdue"))
                        or _past(request.get("due_at"), now, request["status"]),
                    }
                    for request in entry.get("requests") or []
                ],
            )
        panel.append(item)
    return panel


_REQUEST_DONE = frozenset({"executed", "refused", "withdrawn"})


def _past(due_at: str | None, now: dt.datetime, status: str) -> bool:
    """A request abroad past its deadline and not done (when the service did not say)."""
    if not due_at or status in _REQUEST_DONE:
        return False
    return dt.datetime.fromisoformat(due_at) < now


def next_steps(record: Mapping[str, Any], ex: Exchange) -> list[dict[str, str]]:
    """The actions the case's stage calls for, first the main one."""
    status = str(record["status"])
    plan = record.get("plan") or {}
    state = plan.get("state")
    base = f"/cases/{record['case_id']}"
    steps: list[dict[str, str]] = []
    supervisor = is_supervisor(ex)
    if status == CaseStatus.closed:
        return [{"href": f"{base}/reopen", "label": ex.gettext(N_("Reopen the case"))}]
    if status == CaseStatus.closure_requested:
        if supervisor:
            steps.append(
                {
                    "href": f"/approvals/{record['case_id']}/closure",
                    "label": ex.gettext(N_("Decide on the closure")),
                }
            )
        return steps
    if status == CaseStatus.new:
        steps.append(
            {"href": f"{base}/assessment", "label": ex.gettext(N_("Record the assessment"))}
        )
    if status != CaseStatus.new and state in (None, PlanState.draft, PlanState.returned):
        label = N_("Write the case plan") if not plan else N_("Change the case plan")
        steps.append({"href": f"{base}/plan", "label": ex.gettext(label)})
    if state == PlanState.submitted and supervisor:
        steps.append(
            {
                "href": f"/approvals/{record['case_id']}/plan",
                "label": ex.gettext(N_("Decide on the case plan")),
            }
        )
    if status in (CaseStatus.plan_approved, CaseStatus.services_under_way):
        steps.append({"href": "#plan", "label": ex.gettext(N_("Update a service"))})
        steps.append(
            {"href": f"{base}/follow-ups", "label": ex.gettext(N_("Schedule a follow-up"))}
        )
    if status == CaseStatus.services_under_way:
        steps.append({"href": f"{base}/closure", "label": ex.gettext(N_("Request closure"))})
    return steps


# --- my cases ----------------------------------------------------------------------------

_STATES = ("open", "closed", "all")


def list_query(ex: Exchange) -> tuple[dict[str, Any], dict[str, Any]]:
    """The service's query from the page's filters, and the filters as the form shows them.
    Values that are not ours are left out (a page link is not an API)."""
    args = ex.request.args
    assert ex.principal is not None
    state = args.get("state", "open")
    state = state if state in _STATES else "open"
    risk = [r for r in args.getlist("risk_level") if r in i18n.LABELS["en"]["risk_levels"]]
    statuses = [s for s in args.getlist("status") if s in i18n.LABELS["en"]["case_statuses"]]
    overdue = args.get("overdue") == "true"
    query: dict[str, Any] = {"state": state, "limit": LIST_LIMIT}
    if risk:
        query["risk_level"] = risk
    if statuses:
        query["status"] = statuses
    if overdue:
        query["overdue"] = True
    assigned = args.get("assigned_to", "")
    if not is_supervisor(ex) or assigned == "me":
        assigned = ex.principal.user_id
    if assigned and len(assigned) <= 64:
        query["assigned_to"] = assigned
    cursor = args.get("cursor", "")
    if cursor and len(cursor) <= 300:
        query["cursor"] = cursor
    shown = {
        "state": state,
        "risk_level": risk,
        "status": statuses,
        "overdue": overdue,
        "assigned_to": args.get("assigned_to", "") if is_supervisor(ex) else "",
    }
    return query, shown


def my_cases(ex: Exchange, desk: Desk) -> Response:
    assert ex.principal is not None
    if not is_staff(ex):
        raise kit.Forbidden("case lists are for social services staff")
    query, shown = list_query(ex)
    try:
        answer = desk.cases.list_cases(query)
    except kit.BadInput:
        if "cursor" not in query:
            raise
        # An old or altered "next page" link: start again from the first page.
        args = [(k, v) for k, v in ex.request.args.items(multi=True) if k != "cursor"]
        return pages.see_other("/cases?" + urlencode([*args, ("notice", "list_restarted")]))
    items = [complete(_LIST_ITEM, item) for item in answer.get("items", [])]
    names = desk.display_names({item["assigned_to"] for item in items})
    fmt = Formats(ex, names)
    rows = [_list_row(item, fmt, ex) for item in items]
    # The filters travel with the page links; the cursor, a notice and the language do not.
    kept = [
        (k, v)
        for k, v in ex.request.args.items(multi=True)
        if k not in ("cursor", "notice", "lang")
    ]
    next_link = None
    if answer.get("next_cursor"):
        next_link = "/cases?" + urlencode([*kept, ("cursor", answer["next_cursor"])])
    first_link = "/cases?" + urlencode(kept) if query.get("cursor") else None
    assignees = desk.assignees(ex.principal.agency) if is_supervisor(ex) else []
    return pages.render(
        ex,
        "cases/list.html",
        rows=rows,
        filters=shown,
        next_link=next_link,
        first_link=first_link,
        supervisor=is_supervisor(ex),
        assignees=[(a["user_id"], a["display_name"]) for a in assignees],
        fmt=fmt,
    )


def _list_row(item: Mapping[str, Any], fmt: Formats, ex: Exchange) -> dict[str, Any]:
    due_kind = item.get("next_due_kind")
    kinds = {"service": N_("Service due")}
    return {
        "case_id": item["case_id"],
        "coordination_id": item["coordination_id"],
        "name": child_name(item.get("child"), ex),
        "age": (item.get("child") or {}).get("age_years"),
        "status_code": item["status"],
        "status": fmt.label("case_statuses", item["status"]),
        "risk_code": item.get("risk_level") or "",
        "risk": fmt.label("risk_levels", item.get("risk_level")),
        "due_on": item.get("next_due_on"),
        "due": fmt.date(item.get("next_due_on")),
        "due_kind": (
            ex.gettext(kinds[due_kind])
            if due_kind in kinds
            else fmt.label("follow_up_kinds", due_kind)
        ),
        "overdue": bool(item.get("overdue")),
        "overdue_count": int(item.get("overdue_count") or 0),
        "assigned": fmt.who(item["assigned_to"]),
        "pending": item.get("pending_approval"),
        "origin": fmt.label("case_origins", item.get("origin")),
    }


# --- the case page -----------------------------------------------------------------------


def case_page(ex: Exchange, desk: Desk, raw_case_id: str) -> Response:
    case_id = case_id_of(raw_case_id)
    record = complete(_RECORD, desk.cases.get_case(case_id, reason=READ_REASON))
    notes = desk.cases.list_notes(case_id, {"limit": NOTES_ON_CASE_PAGE})
    names = desk.display_names(people_in(record) | {n["written_by"] for n in notes["items"]})
    fmt = Formats(ex, names)
    return pages.render(
        ex,
        "cases/case.html",
        case=record,
        name=child_name(record.get("child"), ex),
        age=age_of(record.get("child")),
        steps=workflow_steps(record, fmt),
        partners=partner_panel(record, fmt),
        actions=next_steps(record, ex),
        notes=notes["items"],
        more_notes=bool(notes.get("next_cursor")),
        note_form=bind_form(ex, forms.NOTE, {}, {}),
        supervisor=is_supervisor(ex),
        closed=str(record["status"]) == CaseStatus.closed,
        fmt=fmt,
    )


# --- the forms -------------------------------------------------------------------------


# How a form's answers reach `case_management`: (client, case id, body, expected version).
Send = Callable[[Any, str, dict, int | None], Any]
# What a form shows first, from the case record.
Prefill = Callable[[Mapping[str, Any]], Mapping[str, Any] | None]


def _section(name: str) -> Send:
    def send(cases, case_id, body, version):
        return cases.update_section(case_id, name, body, expected_version=version)

    return send


def _adding(method: str) -> Send:
    """A write that adds to the case and overwrites nothing: a change made meanwhile does
    not stop it, so no version is sent."""
    return lambda cases, case_id, body, version: getattr(cases, method)(case_id, body)


def _versioned(method: str) -> Send:
    """A write that replaces what the case holds: refused when the case changed since the
    form was read."""
    return lambda cases, case_id, body, version: getattr(cases, method)(
        case_id, body, expected_version=version
    )


@dataclass(frozen=True)
class FormSpec:
    """What a form asks, the words on it, and where the case page opens after it."""

    items: tuple[Item, ...]
    title: str
    submit: str
    notice: str
    anchor: str


@dataclass(frozen=True)
class CaseForm(FormSpec):
    """One form of a case: a form with what it sends and what fills it."""

    send: Send
    prefill: Prefill = lambda record: None
    lede: str | None = None
    supervisor_only: bool = False  # the service refuses anyone else; the page says so first
    template: str = "cases/form.html"


def _latest_needs(record: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A reassessment starts from the last risk level and needs (not its summary or the
    child's views, which are of their day)."""
    latest = record.get("assessment")
    if not latest:
        return None
    return {"risk_level": latest.get("risk_level"), "needs": latest.get("needs")}


def _section_form(
    section: str,
    items: tuple[Item, ...],
    title: str,
    submit: str,
    *,
    anchor: str | None = None,
    prefill: Prefill | None = None,
    lede: str | None = None,
) -> CaseForm:
    """A section of the case record, filled with what it holds and saved whole."""
    return CaseForm(
        items,
        title,
        submit,
        "case_section_saved",
        anchor or section,
        _section(section),
        prefill=prefill or (lambda record: record.get(section)),
        lede=lede,
    )


def _people_form(section: str, items: tuple[Item, ...], title: str, submit: str) -> CaseForm:
    """The family or the people around the child: one row a person (`members`)."""
    return _section_form(
        section,
        items,
        title,
        submit,
        prefill=lambda record: {"members": record.get(section) or []},
        lede=N_("To take someone off the record, tick the box under their details and save."),
    )


CASE_FORMS: dict[str, CaseForm] = {
    "child": _section_form(
        "child",
        forms.CHILD,
        N_("The child"),
        N_("Save the child's details"),
        lede=N_("Who the child is: name, age, language, disability and school."),
    ),
    "contact": _section_form(
        "contact",
        forms.CONTACT,
        N_("How to reach the child"),
        N_("Save the contact details"),
        anchor="child",
    ),
    "family": _people_form(
        "family", forms.FAMILY, N_("Family and carers"), N_("Save family and carers")
    ),
    "people": _people_form(
        "people",
        forms.PEOPLE,
        N_("People around the child"),
        N_("Save people around the child"),
    ),
    "safety": _section_form(
        "safety", forms.SAFETY, N_("Safety concerns"), N_("Save safety concerns")
    ),
    "assessment": CaseForm(
        forms.ASSESSMENT,
        N_("Assessment"),
        N_("Record and sign the assessment"),
        "case_assessment_recorded",
        "assessment",
        _adding("record_assessment"),
        prefill=_latest_needs,
        lede=N_(
            "An assessment is dated and signed with your name when you record it; it cannot "
            "be changed afterwards. A later assessment is recorded beside it."
        ),
    ),
    "plan": CaseForm(
        forms.PLAN,
        N_("Case plan"),
        N_("Save the plan as a draft"),
        "case_plan_saved",
        "plan",
        _versioned("save_plan"),
        prefill=lambda record: record.get("plan"),
        lede=N_(
            "Goals for the child, each with the services that will reach it. A supervisor "
            "approves the plan before the services start; an approved plan stays in force "
            "until a changed one is approved."
        ),
    ),
    "follow-ups": CaseForm(
        forms.FOLLOW_UP_SCHEDULE,
        N_("Schedule a follow-up"),
        N_("Schedule it"),
        "case_follow_up_scheduled",
        "follow-ups",
        _adding("schedule_follow_up"),
        lede=N_("A visit, a phone call or a case review, with the date it is due by."),
    ),
    "notes": CaseForm(
        forms.NOTE,
        N_("Notes"),
        N_("Add the note"),
        "case_note_added",
        "notes",
        _adding("add_note"),
        template="cases/notes.html",
    ),
    "closure": CaseForm(
        forms.CLOSURE,
        N_("Request closure"),
        N_("Request closure"),
        "case_closure_requested",
        "closure",
        _adding("request_closure"),
        lede=N_(
            "A supervisor decides whether the case closes. They are told if the police "
            "investigation or a request abroad is still open, or services are not finished."
        ),
    ),
    "reopen": CaseForm(
        forms.REOPEN,
        N_("Reopen the case"),
        N_("Reopen the case"),
        "case_reopened",
        "closure",
        _adding("reopen_case"),
    ),
    "assignment": CaseForm(
        forms.ASSIGNMENT,
        N_("Assign the case"),
        N_("Assign the case"),
        "case_assigned",
        "assignment",
        _versioned("assign_case"),
        lede=N_(
            "The social worker the case is assigned to sees it and works on it; supervisors "
            "see every case. The change and its reason are kept on the case."
        ),
        supervisor_only=True,
    ),
}


@dataclass
class FormView:
    """What a form page shows besides the form: the case it belongs to."""

    case: Mapping[str, Any]
    name: str
    fmt: Formats


def _case_form(name: str) -> CaseForm:
    spec = CASE_FORMS.get(name)
    if spec is None:
        raise errors.not_found()
    return spec


def _view(ex: Exchange, desk: Desk, case_id: str, reason: str) -> FormView:
    record = complete(_RECORD, desk.cases.get_case(case_id, reason=reason))
    ids = people_in(record)
    return FormView(
        record, child_name(record.get("child"), ex), Formats(ex, desk.display_names(ids))
    )


def _assignee_options(ex: Exchange, desk: Desk, record: Mapping[str, Any]) -> list[tuple[str, str]]:
    current = record.get("assigned_to")
    marked = ex.gettext(N_("%(name)s (assigned now)"))
    return [
        (
            a["user_id"],
            marked % {"name": a["display_name"]} if a["user_id"] == current else a["display_name"],
        )
        for a in desk.assignees(ex.principal.agency)  # type: ignore[union-attr]
    ]


def form_page(ex: Exchange, desk: Desk, raw_case_id: str, name: str) -> Response:
    """A section's form, filled with what the case holds now."""
    spec = _case_form(name)
    case_id = case_id_of(raw_case_id)
    if spec.supervisor_only and not is_supervisor(ex):
        raise kit.Forbidden(f"the {name} form is for supervisors")
    view = _view(ex, desk, case_id, f"{READ_REASON}: {name} form")
    values = forms.flatten(spec.items, spec.prefill(view.case))
    return _render_form(ex, desk, spec, name, view, values, {}, version=view.case["version"])


def form_submit(ex: Exchange, desk: Desk, raw_case_id: str, name: str) -> Response:
    spec = _case_form(name)
    case_id = case_id_of(raw_case_id)
    posted = read_form(ex.request)
    values = {**forms.form_values(spec.items, posted), **forms.removal_values(spec.items, posted)}
    version = version_of(posted)
    if not pages.csrf_ok(ex, desk.tokens, posted):
        return _again(
            ex, desk, spec, name, case_id, values, version, 400, alert=ex.gettext(_FORM_EXPIRED)
        )
    added = forms.added_row(spec.items, posted)
    if added is not None:
        # "Add another": the same answers with one more blank row; nothing is saved.
        return _again(ex, desk, spec, name, case_id, values, version, 200, extra_rows={added: 1})
    body = forms.to_body(spec.items, values)
    try:
        answer = spec.send(desk.cases, case_id, body, version)
    except kit.BadInput as exc:
        return _again(
            ex,
            desk,
            spec,
            name,
            case_id,
            forms.compacted(spec.items, values),
            version,
            422,
            errors=forms.flatten_errors(exc.errors),
        )
    except kit.Conflict as exc:
        return _again(
            ex, desk, spec, name, case_id, values, None, 409, alert=conflict_message(ex, exc)
        )
    if name == "plan" and posted.get("_then") == "submit":
        try:
            desk.cases.submit_plan(case_id, expected_version=answer.get("version"))
        except (kit.Conflict, kit.BadInput):
            return pages.see_other(f"/cases/{case_id}?notice=case_plan_not_submitted#plan")
        return pages.see_other(f"/cases/{case_id}?notice=case_plan_submitted#plan")
    return pages.see_other(f"/cases/{case_id}?notice={spec.notice}#{spec.anchor}")


def _again(
    ex: Exchange,
    desk: Desk,
    spec: CaseForm,
    name: str,
    case_id: str,
    values: Mapping[str, Any],
    version: int | None,
    status: int,
    *,
    errors: Mapping[str, list[str]] | None = None,
    alert: str | None = None,
    extra_rows: Mapping[str, int] | None = None,
) -> Response:
    """The form shown again with what was typed: after an error, or a row added."""
    view = _view(ex, desk, case_id, f"{READ_REASON}: {name} form")
    # After a conflict the form carries the case's version now: saving again is a choice
    # made knowingly, after the alert.
    shown_version = view.case["version"] if version is None else version
    return _render_form(
        ex,
        desk,
        spec,
        name,
        view,
        values,
        errors or {},
        version=shown_version,
        status=status,
        alert=alert,
        extra_rows=extra_rows,
    )


def _render_form(
    ex: Exchange,
    desk: Desk,
    spec: CaseForm,
    name: str,
    view: FormView,
    values: Mapping[str, Any],
    field_errors: Mapping[str, list[str]],
    *,
    version: int,
    status: int = 200,
    alert: str | None = None,
    extra_rows: Mapping[str, int] | None = None,
) -> Response:
    assignees = _assignee_options(ex, desk, view.case) if name == "assignment" else None
    bound = bind_form(
        ex, spec.items, values, field_errors, assignees=assignees, extra_rows=extra_rows
    )
    context: dict[str, Any] = {}
    if name == "notes":
        context = _notes_context(ex, desk, view.case["case_id"])
    return _show_form(
        ex,
        view,
        spec,
        bound,
        template=spec.template,
        status=status,
        form_name=name,
        action=f"/cases/{view.case['case_id']}/{name}",
        lede=ex.gettext(spec.lede) if spec.lede else "",
        version=version,
        alert=alert,
        can_submit_plan=name == "plan",
        **context,
    )


def _show_form(
    ex: Exchange,
    view: FormView,
    spec: FormSpec,
    bound: forms.BoundForm,
    *,
    form_name: str,
    action: str,
    version: int,
    status: int,
    alert: str | None,
    template: str = "cases/form.html",
    lede: str = "",
    can_submit_plan: bool = False,
    **context: Any,
) -> Response:
    """A case's form page: the form, the case it belongs to, and the way back to it."""
    return pages.render(
        ex,
        template,
        status,
        case=view.case,
        name=view.name,
        fmt=view.fmt,
        form=bound,
        form_name=form_name,
        title=ex.gettext(spec.title),
        lede=lede,
        submit=ex.gettext(spec.submit),
        action=action,
        back=f"/cases/{view.case['case_id']}#{spec.anchor}",
        version=version,
        alert=alert,
        can_submit_plan=can_submit_plan,
        **context,
    )


def _notes_context(ex: Exchange, desk: Desk, case_id: str) -> dict[str, Any]:
    query: dict[str, Any] = {"limit": NOTES_PER_PAGE}
    before = ex.request.args.get("before", "")
    if before and len(before) <= 200:
        query["before"] = before
    try:
        page = desk.cases.list_notes(case_id, query)
    except kit.BadInput:
        page = desk.cases.list_notes(case_id, {"limit": NOTES_PER_PAGE})
    names = desk.display_names({n["written_by"] for n in page["items"]})
    older = (
        f"/cases/{case_id}/notes?" + urlencode({"before": page["next_cursor"]})
        if page.get("next_cursor")
        else None
    )
    return {
        "notes": page["items"],
        "note_names": names,
        "older": older,
        "newest": bool(query.get("before")),
    }


def submit_plan(ex: Exchange, desk: Desk, raw_case_id: str) -> Response:
    """Send the plan as it stands for a supervisor's approval."""
    case_id = case_id_of(raw_case_id)
    posted = read_form(ex.request)
    if not pages.csrf_ok(ex, desk.tokens, posted):
        return pages.see_other(f"/cases/{case_id}?notice=form_expired#plan")
    try:
        desk.cases.submit_plan(case_id, expected_version=version_of(posted))
    except kit.Conflict as exc:
        code = (
            "case_decision_conflict"
            if conflict_kind(exc) == STALE_VERSION
            else "case_plan_not_submitted"
        )
        return pages.see_other(f"/cases/{case_id}?notice={code}#plan")
    return pages.see_other(f"/cases/{case_id}?notice=case_plan_submitted#plan")


# --- one service, one follow-up ----------------------------------------------------------


def _subject_of(record: Mapping[str, Any], action: str, item_id: str) -> Mapping[str, Any]:
    """The service (`service`) or the follow-up (`record`, `cancel`) a form is about: a
    404 page when the case has no such one."""
    if action == "service":
        listed, key = "services", "service_id"
    else:
        listed, key = "follow_ups", "follow_up_id"
    for item in record.get(listed) or []:
        if str(item[key]) == item_id:
            return item
    raise errors.not_found()


# The form of one service or one follow-up of a case.
_ITEM_ACTIONS: dict[str, FormSpec] = {
    "service": FormSpec(
        forms.SERVICE_UPDATE,
        N_("Update a service"),
        N_("Save the service"),
        "case_service_updated",
        "plan",
    ),
    "record": FormSpec(
        forms.FOLLOW_UP_RECORD,
        N_("Record a follow-up"),
        N_("Record it"),
        "case_follow_up_recorded",
        "follow-ups",
    ),
    "cancel": FormSpec(
        forms.REASON,
        N_("Cancel a follow-up"),
        N_("Cancel the follow-up"),
        "case_follow_up_cancelled",
        "follow-ups",
    ),
}


def follow_up_action(action: str) -> str:
    """`record` or `cancel` from a follow-up's path; anything else is not a page."""
    return action if action in ("record", "cancel") else "unknown"


def item_page(
    ex: Exchange, desk: Desk, raw_case_id: str, raw_item_id: str, action: str
) -> Response:
    """The form of one service (update) or one follow-up (record, cancel)."""
    case_id, item_id = case_id_of(raw_case_id), case_id_of(raw_item_id)
    spec = _ITEM_ACTIONS.get(action) or _not_found()
    view = _view(ex, desk, case_id, f"{READ_REASON}: {action} form")
    subject = _subject_of(view.case, action, item_id)
    values: Mapping[str, Any] = {}
    if action == "service":
        values = forms.flatten(
            spec.items,
            {
                k: subject.get(k)
                for k in ("status", "delivered_on", "status_note", "provider", "due_on")
            },
        )
    return _render_item(ex, view, action, item_id, values, {}, view.case["version"])


def item_submit(
    ex: Exchange, desk: Desk, raw_case_id: str, raw_item_id: str, action: str
) -> Response:
    case_id, item_id = case_id_of(raw_case_id), case_id_of(raw_item_id)
    spec = _ITEM_ACTIONS.get(action) or _not_found()
    posted = read_form(ex.request)
    values = forms.form_values(spec.items, posted)
    version = version_of(posted)

    def again(status: int, field_errors=None, alert=None, keep_version=True) -> Response:
        view = _view(ex, desk, case_id, f"{READ_REASON}: {action} form")
        shown = version if keep_version and version is not None else view.case["version"]
        return _render_item(
            ex, view, action, item_id, values, field_errors or {}, shown, status=status, alert=alert
        )

    if not pages.csrf_ok(ex, desk.tokens, posted):
        return again(400, alert=ex.gettext(_FORM_EXPIRED))
    body = forms.to_body(spec.items, values)
    try:
        if action == "service":
            desk.cases.update_service(case_id, item_id, body, expected_version=version)
        elif action == "record":
            desk.cases.record_follow_up(case_id, item_id, body, expected_version=version)
        else:
            desk.cases.cancel_follow_up(case_id, item_id, body, expected_version=version)
    except kit.BadInput as exc:
        return again(422, forms.flatten_errors(exc.errors))
    except kit.Conflict as exc:
        return again(409, alert=conflict_message(ex, exc), keep_version=False)
    return pages.see_other(f"/cases/{case_id}?notice={spec.notice}#{spec.anchor}")


def _render_item(
    ex: Exchange,
    view: FormView,
    action: str,
    item_id: str,
    values: Mapping[str, Any],
    field_errors: Mapping[str, list[str]],
    version: int,
    *,
    status: int = 200,
    alert: str | None = None,
) -> Response:
    spec = _ITEM_ACTIONS[action]
    case_id = view.case["case_id"]
    if action == "service":
        action_path = f"/cases/{case_id}/services/{item_id}"
    else:
        action_path = f"/cases/{case_id}/follow-ups/{item_id}/{action}"
    return _show_form(
        ex,
        view,
        spec,
        bind_form(ex, spec.items, values, field_errors),
        status=status,
        form_name=action,
        action=action_path,
        version=version,
        alert=alert,
        subject=_subject_of(view.case, action, item_id),
        subject_kind=action,
    )


def _not_found() -> Any:
    raise errors.not_found()


# --- registering a case directly --------------------------------------------------------


def registration_page(ex: Exchange, desk: Desk) -> Response:
    if not is_staff(ex):
        raise kit.Forbidden("cases are registered by social services staff")
    return _render_registration(ex, {}, {})


def register(ex: Exchange, desk: Desk) -> Response:
    if not is_staff(ex):
        raise kit.Forbidden("cases are registered by social services staff")
    posted = read_form(ex.request)
    values = forms.form_values(forms.REGISTRATION, posted)
    if not pages.csrf_ok(ex, desk.tokens, posted):
        return _render_registration(ex, values, {}, 400, alert=ex.gettext(_FORM_EXPIRED))
    body = forms.to_body(forms.REGISTRATION, values)
    try:
        record = desk.cases.register_case(body)
    except kit.BadInput as exc:
        return _render_registration(ex, values, forms.flatten_errors(exc.errors), 422)
    return pages.see_other(f"/cases/{record['case_id']}?notice=case_registered")


def _render_registration(
    ex: Exchange,
    values: Mapping[str, Any],
    field_errors: Mapping[str, list[str]],
    status: int = 200,
    alert: str | None = None,
) -> Response:
    bound = bind_form(ex, forms.REGISTRATION, values, field_errors)
    return pages.render(ex, "cases/register.html", status, form=bound, alert=alert)


# --- the supervisor's approvals -------------------------------------------------------


@dataclass(frozen=True)
class DecisionForm:
    items: tuple[Item, ...]
    notice: str


_DECISIONS: dict[str, dict[str, DecisionForm]] = {
    "plan": {
        "approve": DecisionForm(forms.COMMENT, "case_plan_approved"),
        "return": DecisionForm(forms.REASON, "case_plan_returned"),
    },
    "closure": {
        "approve": DecisionForm(forms.COMMENT, "case_closure_approved"),
        "reject": DecisionForm(forms.REASON, "case_closure_rejected"),
    },
}


def approvals(ex: Exchange, desk: Desk) -> Response:
    if not is_supervisor(ex):
        raise kit.Forbidden("the approvals queue is for supervisors")
    items = [complete(_APPROVAL, item) for item in desk.cases.approvals_queue()]
    names = desk.display_names(
        {i["requested_by"] for i in items} | {i["assigned_to"] for i in items}
    )
    fmt = Formats(ex, names)
    rows = [
        {
            **item,
            "name": child_name(item.get("child"), ex),
            "age": (item.get("child") or {}).get("age_years"),
            "kind_label": ex.gettext(N_("Case plan") if item["kind"] == "plan" else N_("Closure")),
            "requested": fmt.instant(item["requested_at"]),
            "requester": fmt.who(item["requested_by"]),
            "assignee": fmt.who(item["assigned_to"]),
            "reason": fmt.label("closure_reasons", item.get("closure_reason")),
            "warning_labels": [fmt.label("closure_warnings", w) for w in item.get("warnings", [])],
            "refuse": "return" if item["kind"] == "plan" else "reject",
        }
        for item in items
    ]
    return pages.render(ex, "cases/approvals.html", rows=rows, fmt=fmt)


def decision_page(ex: Exchange, desk: Desk, raw_case_id: str, kind: str) -> Response:
    """What a supervisor decides on: the plan or the closure, with both answers."""
    if kind not in _DECISIONS:
        raise errors.not_found()
    case_id = case_id_of(raw_case_id)
    view = _view(ex, desk, case_id, f"{READ_REASON}: {kind} decision")
    return _render_decision(ex, view, kind, {}, view.case["version"])


def decide(ex: Exchange, desk: Desk, raw_case_id: str, kind: str, decision: str) -> Response:
    spec = _DECISIONS.get(kind, {}).get(decision) or _not_found()
    case_id = case_id_of(raw_case_id)
    posted = read_form(ex.request)
    came_from_queue = posted.get("_from") == "queue"
    if not pages.csrf_ok(ex, desk.tokens, posted):
        return pages.see_other("/approvals?notice=form_expired")
    values = forms.form_values(spec.items, posted)
    body = forms.to_body(spec.items, values)
    version = version_of(posted)
    calls = {
        ("plan", "approve"): desk.cases.approve_plan,
        ("plan", "return"): desk.cases.return_plan,
        ("closure", "approve"): desk.cases.approve_closure,
        ("closure", "reject"): desk.cases.reject_closure,
    }
    try:
        calls[(kind, decision)](case_id, body, expected_version=version)
    except kit.BadInput as exc:
        view = _view(ex, desk, case_id, f"{READ_REASON}: {kind} decision")
        return _render_decision(
            ex,
            view,
            kind,
            {decision: forms.flatten_errors(exc.errors)},
            version or view.case["version"],
            values={decision: values},
            status=422,
        )
    except kit.Conflict as exc:
        code = "case_four_eyes" if conflict_kind(exc) == FOUR_EYES else "case_decision_conflict"
        if came_from_queue:
            return pages.see_other(f"/approvals?notice={code}")
        return pages.see_other(f"/approvals/{case_id}/{kind}?notice={code}")
    return pages.see_other(f"/approvals?notice={spec.notice}")


def _render_decision(
    ex: Exchange,
    view: FormView,
    kind: str,
    field_errors: Mapping[str, Mapping[str, list[str]]],
    version: int,
    values: Mapping[str, Mapping[str, Any]] | None = None,
    status: int = 200,
) -> Response:
    values = values or {}
    bound = {
        decision: bind_form(
            ex, spec.items, values.get(decision, {}), field_errors.get(decision, {})
        )
        for decision, spec in _DECISIONS[kind].items()
    }
    record = view.case
    title = N_("Decide on the case plan") if kind == "plan" else N_("Decide on the closure")
    return pages.render(
        ex,
        "cases/decision.html",
        status,
        title=ex.gettext(title),
        any_errors=any(form.summary or form.form_errors for form in bound.values()),
        case=record,
        name=view.name,
        fmt=view.fmt,
        kind=kind,
        forms=bound,
        version=version,
        partners=partner_panel(record, view.fmt),
        steps=workflow_steps(record, view.fmt),
        waiting=(
            (record.get("plan") or {}).get("state") == PlanState.submitted
            if kind == "plan"
            else str(record["status"]) == CaseStatus.closure_requested
        ),
    )
