"""The intake officer's pages: the referral form, its receipt, a referral's detail page and
the intake officer's actions on it (re-route, close, link or dismiss a possible duplicate).

Each handler takes the exchange and the service calls it needs, like `pages`; the referral
service decides what the caller may see and do, the pages only show its answers.
Every form works without JavaScript and posts a CSRF token.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from concord_contracts.codes import Agency, Role
from concord_contracts.rpc import ReferralSubmissionSchema
from concord_kit import errors as kit
from gateway import board_pages, errors, i18n, referral_form
from gateway.auth import Tokens
from gateway.board_pages import coordination_id_or_404
from gateway.i18n import N_
from gateway.pages import NOTICES, csrf_ok, render, see_other
from gateway.web import Exchange

INTAKE_ROLES = frozenset({Role.intake_officer, Role.administrator})
"""Who registers referrals at the hub (the referral service checks again)."""

DECIDER_ROLES = frozenset({Role.intake_officer})
"""Who sees a referral's identities and decides on it: re-route, withdraw, close, link."""


def read_multiform(ex: Exchange, limit: int) -> MultiDict:
    """The posted form with every value of a repeated field (checkboxes), under `limit`."""
    request = ex.request
    request.max_content_length = limit
    request.max_form_memory_size = limit
    try:
        return MultiDict(request.form)
    except RequestEntityTooLarge:
        raise errors.payload_too_large() from None


def require_intake_role(ex: Exchange, roles: frozenset[Role] = INTAKE_ROLES) -> None:
    assert ex.principal is not None
    if ex.principal.role not in roles:
        raise kit.Forbidden("only the hub's intake officers do this")


def form_labels(t: i18n.Translator) -> dict[str, dict[str, str]]:
    """Labels of the codes the form offers that are not reference lists of their own."""
    return {
        "consent_givers": {
            "child": t.pgettext("consent given by", "The child"),
            "parent_or_carer": t.pgettext("consent given by", "A parent or carer"),
            "guardian": t.pgettext("consent given by", "A guardian"),
            "not_applicable": t.pgettext("consent given by", "Not applicable"),
        },
    }


def _render_form(
    ex: Exchange,
    values: dict[str, Any],
    field_errors: dict[str, list[str]],
    status: int = 200,
    expired: bool = False,
) -> Response:
    return render(
        ex,
        "referral_form.html",
        status,
        expired=expired,
        fields=referral_form.BY_NAME,
        values=values,
        errors=field_errors,
        summary=referral_form.error_summary(field_errors),
        extra_labels=form_labels(ex.translations),
    )


def new_referral_form(ex: Exchange) -> Response:
    require_intake_role(ex)
    values = referral_form.form_values(MultiDict())
    values["idempotency_key"] = f"form-{uuid.uuid4()}"
    return _render_form(ex, values, {})


def submit_referral_form(ex: Exchange, tokens: Tokens, submit: Callable[[dict], dict]) -> Response:
    """Check the form with the service's own schema, send it, and show the receipt; or show
    the form again with each problem next to its field (422) and nothing stored."""
    require_intake_role(ex)
    form = read_multiform(ex, referral_form.MAX_REFERRAL_FORM_BYTES)
    values = referral_form.form_values(form)
    if not csrf_ok(ex, tokens, form.to_dict()):
        # Nothing is sent; what was typed is shown again to be sent with a fresh token.
        return _render_form(ex, values, {}, 400, expired=True)
    submission = referral_form.submission_from_form(form)
    try:
        ReferralSubmissionSchema().load(submission)
        receipt = submit(submission)
    except ValidationError as exc:
        messages: Any = exc.normalized_messages()
    except kit.BadInput as exc:
        messages = exc.errors
    else:
        again = "?notice=replayed" if receipt.get("replayed") else ""
        return see_other(f"/referrals/{receipt['coordination_id']}/receipt{again}")
    field_errors = referral_form.form_errors(ex.translations, messages)
    return _render_form(ex, values, field_errors, 422)


def receipt(ex: Exchange, coordination_id: str, pipeline_row: Callable[[str], dict]) -> Response:
    """What was registered, and where it went: shown once the form is sent."""
    require_intake_role(ex)
    row = pipeline_row(coordination_id_or_404(coordination_id))
    language = ex.language
    assert ex.principal is not None
    return render(
        ex,
        "referral_receipt.html",
        detail_page=ex.principal.role in DECIDER_ROLES,
        coordination_id=row["coordination_id"],
        received_at=row["received_at"],
        received=i18n.format_instant(row["received_at"], language),
        urgency_code=row["urgency"],
        urgency=i18n.label(language, "urgencies", row["urgency"]),
        routed_to=[
            {
                "agency": i18n.label(language, "agencies", agency),
                "status": i18n.label(language, "agency_statuses", state["status"]),
            }
            for agency, state in row["agencies"].items()
        ],
        flags=board_pages.flag_views(language, row.get("flags", [])),
    )


# --- the intake officer's list: what needs the hub's attention -----------------------------

# Each section of /referrals: a title and the pipeline query that fills it.
WORKLIST: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (
        "declined",
        N_("Declined: re-route or close"),
        {"agency_status": ["declined"], "stage": ["received", "triaged", "routed", "in_care"]},
    ),
    ("awaiting_routing", N_("Waiting to be routed"), {"flag": ["awaiting_routing"]}),
    (
        "overdue",
        N_("Not accepted in time"),
        {"flag": ["awaiting_acceptance_overdue"]},
    ),
    ("duplicates", N_("Possible duplicates to check"), {"flag": ["possible_duplicate"]}),
    ("recent", N_("Registered most recently"), {"sort": "newest"}),
)
WORKLIST_LIMIT = 20


def worklist(ex: Exchange, referral: Any) -> Response:
    """The referrals that wait for the hub, by what they need; each links to its page."""
    require_intake_role(ex)
    pending = {
        key: referral.call_async(
            "pipeline",
            {"sort": "priority", **query, "limit": WORKLIST_LIMIT, "counts": False},
        )
        for key, _title, query in WORKLIST
    }
    now = dt.datetime.now(dt.UTC)
    sections = []
    for key, title, query in WORKLIST:
        found = pending[key].result()
        sections.append(
            {
                "key": key,
                "title": ex.gettext(title),
                "cards": [board_pages.card(ex, item, now) for item in found.get("items", [])],
                "more": bool(found.get("next_cursor")),
                "board_href": "/pipeline?"
                + urlencode([(k, v) for k, vs in query.items() if k != "sort" for v in vs]),
            }
        )
    return render(ex, "referral_list.html", sections=sections)


# --- one referral, as the intake officer sees it -----------------------------------------


def _label_list(language: str, list_name: str, codes: list[str] | None) -> list[str]:
    return [i18n.label(language, list_name, code) for code in codes or []]


def detail_view(
    ex: Exchange, detail: dict[str, Any], names: dict[str, str], now: dt.datetime
) -> dict[str, Any]:
    """The referral detail (identities and all) as the page shows it."""
    language = ex.language
    labels = i18n.LABELS[language]
    child = detail.get("child") or {}
    reporter = detail.get("reporter") or {}
    consent = detail.get("consent") or {}
    triage = detail.get("triage") or {}
    givers = form_labels(ex.translations)["consent_givers"]
    routing = []
    for decision in detail.get("routing", []):
        by = decision.get("decided_by")
        basis_by = decision.get("legal_basis_decided_by")
        routing.append(
            {
                "when": i18n.format_instant(decision["decided_at"], language),
                "at": decision["decided_at"],
                "by": names.get(by, by) if by else None,
                "role": i18n.label(language, "roles", decision["role"])
                if decision.get("role")
                else None,
                "kind": decision.get("kind"),
                "agencies": _label_list(language, "agencies", decision.get("agencies")),
                "rule": decision.get("rule"),
                "legal_basis": i18n.label(language, "legal_bases", decision["legal_basis"])
                if decision.get("legal_basis")
                else None,
                "legal_basis_by": names.get(basis_by, basis_by) if basis_by else None,
            }
        )
    duplicates = [
        {
            "coordination_id": dup["coordination_id"],
            "channel": i18n.label(language, "channels", dup["channel"]),
            "received": i18n.format_instant(dup["received_at"], language),
            "status": dup.get("status", "open"),
        }
        for dup in detail.get("possible_duplicates", [])
    ]
    hashes = [
        f"{item.get('algorithm')}:{item.get('digest')}" for item in detail.get("file_hashes") or []
    ]
    return {
        **board_pages.row_view(ex, detail, now),
        "child": {
            "given_name": child.get("given_name"),
            "family_name": child.get("family_name"),
            "date_of_birth": child.get("date_of_birth"),
            "age_years": child.get("age_years"),
            "sex": labels["sexes"].get(child["sex"], child["sex"]) if child.get("sex") else None,
        }
        if child
        else None,
        "reporter_kind": i18n.label(language, "reporter_kinds", reporter["kind"])
        if reporter.get("kind")
        else None,
        "contact": reporter.get("contact") or None,
        "summary": detail.get("summary"),
        "consent": {
            "status": i18n.label(language, "consent_statuses", consent["status"])
            if consent.get("status")
            else None,
            "by": givers.get(consent.get("by") or "", consent.get("by")),
            "legal_basis": i18n.label(language, "legal_bases", consent["legal_basis"])
            if consent.get("legal_basis")
            else None,
        },
        "consent_given": consent.get("status") == "given",
        "consent_recorded_by": names.get(consent["decided_by"], consent["decided_by"])
        if consent.get("decided_by")
        else None,
        "submitted_by": names.get(detail["submitted_by"], detail["submitted_by"])
        if detail.get("submitted_by")
        else None,
        "triage": {
            "stated": i18n.label(language, "urgencies", triage["stated_urgency"])
            if triage.get("stated_urgency")
            else None,
            "urgency": i18n.label(language, "urgencies", triage["urgency"])
            if triage.get("urgency")
            else None,
            "rule": triage.get("rule"),
            "risk_indicators": _label_list(
                language, "risk_indicators", triage.get("risk_indicators")
            ),
        },
        "platform": detail.get("platform"),
        "incident_type": i18n.label(language, "incident_types", detail["incident_type"])
        if detail.get("incident_type")
        else None,
        "annotations": _label_list(language, "annotations", detail.get("annotations")),
        "external_reference": detail.get("external_reference"),
        "file_hashes": hashes,
        "requesting_country": detail.get("requesting_country"),
        "routing": routing,
        "duplicates": duplicates,
        "linked_referrals": detail.get("linked_referrals") or [],
    }


def _actions(detail: dict[str, Any]) -> dict[str, Any]:
    """Which of the intake officer's actions the referral's state allows now (the service
    refuses the others with 409 anyway): the forms shown are the ones that can succeed."""
    stage = detail.get("stage")
    agencies = detail.get("agencies", {})
    holding = {
        agency
        for agency, state in agencies.items()
        if state["status"] not in ("declined", "revoked", "closed")
    }
    working = {
        agency
        for agency, state in agencies.items()
        if state["status"] not in ("pending_acceptance", "declined", "revoked", "closed")
    }
    closed = stage == "closed"
    return {
        "reroute_to": [a.value for a in Agency if a.value not in holding] if not closed else [],
        "revocable": [a for a, s in agencies.items() if s["status"] == "pending_acceptance"],
        "closable": not closed and not working,
        "duplicates": not closed and not working,
    }


def detail_page(
    ex: Exchange,
    coordination_id: str,
    referral_detail: Callable[[str], dict],
    display_names: Callable[[list[str]], dict[str, str]],
    form_errors: dict[str, dict[str, list[str]]] | None = None,
    status: int = 200,
) -> Response:
    require_intake_role(ex, DECIDER_ROLES)
    cid = coordination_id_or_404(coordination_id)
    detail = referral_detail(cid)
    people = [
        value
        for decision in detail.get("routing", [])
        for value in (decision.get("decided_by"), decision.get("legal_basis_decided_by"))
        if value
    ]
    people += [
        value
        for value in (detail.get("submitted_by"), (detail.get("consent") or {}).get("decided_by"))
        if value
    ]
    names = display_names(people) if people else {}
    view = detail_view(ex, detail, names, dt.datetime.now(dt.UTC))
    language = ex.language
    return render(
        ex,
        "referral_detail.html",
        status,
        referral=view,
        actions=_actions(detail),
        action_errors=form_errors or {},
        agency_options=[(a.value, i18n.label(language, "agencies", a.value)) for a in Agency],
        reason_options={
            name: [
                (code, i18n.label(language, name, code))
                for code in i18n.LABELS[language].get(name, {})
            ]
            for name in ("close_reasons", "revoke_reasons")
        },
        legal_basis_options=list(i18n.LABELS[language]["legal_bases"].items()),
    )


# --- the intake officer's actions ---------------------------------------------------------

ACTION_NOTICES = {
    "reroute": "rerouted",
    "revoke": "revoked",
    "close": "closed",
    "link": "linked",
    "dismiss_duplicate": "duplicate_dismissed",
}


def _action_body(action: str, form: MultiDict) -> dict[str, Any]:
    """The RPC argument of an action, from its form."""
    if action == "reroute":
        body: dict[str, Any] = {"agencies": [a for a in form.getlist("agencies") if a]}
        if form.get("legal_basis"):
            body["legal_basis"] = form["legal_basis"]
        return body
    if action == "revoke":
        body = {"agency": form.get("agency", "")}
        if form.get("reason"):
            body["reason"] = form["reason"]
        return body
    if action == "close":
        return {"reason": form.get("reason", "")}
    if action == "link":
        return {"duplicate_of": form.get("other", "")}
    if action == "dismiss_duplicate":
        return {"other": form.get("other", "")}
    raise errors.not_found()


def act(
    ex: Exchange,
    tokens: Tokens,
    coordination_id: str,
    action: str,
    referral: Any,
    display_names: Callable[[list[str]], dict[str, str]],
) -> Response:
    """Post one action; back to the referral's page with a notice, or with the form's
    errors next to its fields (422) and nothing changed."""
    require_intake_role(ex, DECIDER_ROLES)
    cid = coordination_id_or_404(coordination_id)
    form = read_multiform(ex, 16 * 1024)
    if not csrf_ok(ex, tokens, form.to_dict()):
        return see_other(f"/referrals/{cid}?notice=form_expired")
    body = _action_body(action, form)
    subject = cid
    if action == "link" and form.get("keep") == "this":
        # Keep this referral: the other one is closed as its duplicate.
        subject = coordination_id_or_400(form.get("other", ""), "other")
        body = {"duplicate_of": cid}
    method = {"link": "link_duplicate"}.get(action, action)
    try:
        getattr(referral, method)(subject, body)
    except kit.BadInput as exc:
        messages = referral_form.flatten_errors(exc.errors)
        shown = {
            name: [_action_message(ex, name, text) for text in found]
            for name, found in messages.items()
        }
        return detail_page(ex, cid, referral.referral_detail, display_names, {action: shown}, 422)
    except kit.Conflict as exc:
        code = errors.conflict_code(exc)
        notice = f"conflict_{code.value}" if code else ""
        return see_other(
            f"/referrals/{cid}?notice={notice if notice in NOTICES else 'action_conflict'}"
        )
    return see_other(f"/referrals/{cid}?notice={ACTION_NOTICES[action]}")


def coordination_id_or_400(value: str, field: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise errors.invalid_fields({field: ["Not a valid UUID."]}) from None


_ACTION_MISSING = {
    "agencies": N_("Tick at least one agency."),
    "legal_basis": N_("Choose the legal basis for sharing without consent."),
    "reason": N_("Choose a reason."),
    "agency": N_("Choose an agency."),
}


def _action_message(ex: Exchange, name: str, message: str) -> str:
    field = name.split(".")[0]
    if field in _ACTION_MISSING and (
        message in referral_form.MISSING or message.startswith("Length must be")
    ):
        return ex.gettext(_ACTION_MISSING[field])
    return referral_form.plain_message(ex.translations, name, message)


# --- an agency declining a referral from its waiting list ----------------------------------


def decline(
    ex: Exchange, tokens: Tokens, coordination_id: str, decline_referral: Callable
) -> Response:
    """Decline with a reason (and optionally a better agency): the referral goes back to
    the hub's intake officer to re-route or close."""
    from gateway.pages import signed_out

    assert ex.principal is not None
    form = read_multiform(ex, 16 * 1024)
    if not csrf_ok(ex, tokens, form.to_dict()):
        return see_other("/?notice=form_expired")
    try:
        cid = str(uuid.UUID(coordination_id))
    except ValueError:
        return see_other("/?notice=accept_not_found")
    reason = form.get("reason", "")
    if not reason:
        return see_other("/?notice=decline_reason_missing")
    response: dict[str, Any] = {"reason": reason}
    if form.get("better_agency"):
        response["better_agency"] = form["better_agency"]
    try:
        decline_referral(cid, response)
    except kit.Unauthenticated:
        return signed_out(ex)
    except kit.Conflict:
        return see_other("/?notice=decline_conflict")
    except kit.Forbidden:
        return see_other("/?notice=accept_forbidden")
    except (kit.NotFound, kit.BadInput):
        return see_other("/?notice=decline_reason_missing")
    return see_other("/?notice=declined")
