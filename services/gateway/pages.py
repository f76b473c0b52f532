"""Server-rendered pages: sign-in, the waiting list, accepting a referral.

They work without JavaScript: plain links and forms, every form POST carrying a CSRF
token that must equal the one in its (HttpOnly, SameSite=Strict) cookie.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from concord_contracts.cases import ConflictCode
from concord_contracts.codes import AgencyStatus, Organisation, Role
from concord_kit import errors as kit
from gateway import errors, i18n
from gateway.auth import IssuedToken, Principal, Tokens
from gateway.i18n import N_
from gateway.users import Account
from gateway.web import (
    Exchange,
    clear_cookie,
    client_address,
    log_failure,
    read_form,
    set_cookie,
)

SESSION_COOKIE = "concord_session"
CSRF_COOKIE = "concord_csrf"
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
STATIC_DIR = Path(__file__).parent / "static"

# Agencies whose staff accept referrals from the waiting list (see api.accept_referral).
ACCEPTING_AGENCIES = frozenset({Organisation.social_services, Organisation.justice})

# Messages shown after a redirect, named by a code in the query string (never free text).
NOTICES: dict[str, tuple[str, str]] = {
    "accepted": ("status", N_("Referral accepted. It is now in your agency's records.")),
    "signed_out": ("status", N_("You are signed out.")),
    "session_ended": ("status", N_("Your session has ended. Please sign in again.")),
    "accept_conflict": (
        "alert",
        N_("This referral can no longer be accepted: it was answered or withdrawn."),
    ),
    "accept_forbidden": ("alert", N_("You are not allowed to accept this referral.")),
    "accept_not_found": ("alert", N_("This referral was not found.")),
    "unavailable": ("alert", N_("A service this needs is not answering. Try again in a moment.")),
    "form_expired": ("alert", N_("The form had expired. Please try again.")),
    "replayed": (
        "status",
        N_("This form had already been sent: this is the referral it registered, once."),
    ),
    # The intake officer's actions on a referral (intake_pages.act).
    "rerouted": ("status", N_("Referral re-routed. The agencies were asked to accept it.")),
    "revoked": ("status", N_("Routing withdrawn. The agency no longer sees this referral.")),
    "closed": ("status", N_("Referral closed.")),
    "linked": ("status", N_("Referrals linked: the duplicate was closed.")),
    "duplicate_dismissed": ("status", N_("Not a duplicate: the flag was removed.")),
    "action_conflict": (
        "alert",
        N_("This can no longer be done: the referral changed meanwhile. Check it and try again."),
    ),
    # An action the hub refused for a reason of its own (`errors.conflict_code`).
    **{
        f"conflict_{code.value}": ("alert", errors.CONFLICT_MESSAGES[code])
        for code in (
            ConflictCode.already_with_agency,
            ConflictCode.agency_working,
            ConflictCode.link_to_primary,
        )
    },
    # An agency declining a referral from its waiting list.
    "declined": ("status", N_("Referral declined. The referral hub will re-route it.")),
    "decline_reason_missing": ("alert", N_("Choose a reason to decline the referral.")),
    "decline_conflict": (
        "alert",
        N_("This referral can no longer be declined: it was answered or withdrawn."),
    ),
    # An old or altered "next page" link of a list (the waiting list, the case list).
    "list_restarted": (
        "alert",
        N_("That page of the list is no longer valid: here is the first page."),
    ),
}


@jinja2.pass_context
def _gettext(context, message: str) -> str:
    return context["translations"].gettext(message)


@jinja2.pass_context
def _ngettext(context, singular: str, plural: str, n: int) -> str:
    return context["translations"].ngettext(singular, plural, n)


ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
)
# The language differs per request and requests run concurrently, so the callables read
# the translations from each render's context instead of the shared environment.
ENV.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]


def prepare(ex: Exchange, tokens: Tokens) -> None:
    """Keep the browser's CSRF token while it is one of ours; otherwise make one."""
    cookie = ex.request.cookies.get(CSRF_COOKIE)
    if tokens.csrf_token_valid(cookie):
        ex.csrf_token = cookie
    else:
        ex.csrf_token, ex.csrf_is_new = tokens.new_csrf_token(), True


def finish(ex: Exchange, response: Response) -> Response:
    if ex.csrf_is_new and ex.csrf_token:
        set_cookie(response, ex.request, CSRF_COOKIE, ex.csrf_token, max_age=None)
    if ex.language_chosen:
        set_cookie(
            response,
            ex.request,
            i18n.LANGUAGE_COOKIE,
            ex.language,
            LANGUAGE_COOKIE_AGE,
            samesite="Lax",
        )
    return response


# The main navigation, per role: (path, label). Each service still decides what the
# person may see; this only spares them links to pages that would refuse them.
_HUB_NAV = (
    ("/referrals", N_("Referrals")),
    ("/referrals/new", N_("Register a referral")),
    ("/pipeline", N_("Pipeline")),
)
NAVIGATION: dict[Role, tuple[tuple[str, str], ...]] = {
    Role.intake_officer: _HUB_NAV,
    Role.administrator: _HUB_NAV,
    Role.coordinator: (("/pipeline", N_("Pipeline")),),
    # Social services: the waiting list, their cases, a supervisor's approvals (case_pages).
    Role.social_worker: (("/", N_("Waiting list")), ("/cases", N_("My cases"))),
    Role.supervisor: (
        ("/", N_("Waiting list")),
        ("/cases", N_("Cases")),
        ("/approvals", N_("Approvals")),
    ),
}
_AGENCY_NAV = (("/", N_("Waiting list")),)


def navigation(ex: Exchange) -> list[dict[str, Any]]:
    if ex.principal is None:
        return []
    path = ex.request.path
    return [
        {"href": href, "label": ex.gettext(label), "current": href == path}
        for href, label in NAVIGATION.get(ex.principal.role, _AGENCY_NAV)
    ]


def query_keeping(ex: Exchange) -> str:
    """The query string a language link keeps (a board's filters), ending in `&` when not
    empty; the language and a one-off notice are left out."""
    kept = [(k, v) for k, v in ex.request.args.items(multi=True) if k not in ("lang", "notice")]
    return urlencode(kept) + "&" if kept else ""


def render(ex: Exchange, template: str, status: int = 200, **context: Any) -> Response:
    notice = NOTICES.get(ex.request.args.get("notice", ""))
    html = ENV.get_template(template).render(
        translations=ex.translations,
        lang=ex.language,
        languages=i18n.LANGUAGE_NAMES,
        path=ex.request.path,
        principal=ex.principal,
        nav=navigation(ex),
        query_keeping=query_keeping(ex),
        csrf_token=ex.csrf_token or "",
        labels=i18n.LABELS[ex.language],
        notice=(notice[0], ex.gettext(notice[1])) if notice else None,
        **context,
    )
    return Response(html, status=status, mimetype="text/html")


def see_other(location: str) -> Response:
    return redirect(location, code=303)


def error_page(ex: Exchange, problem: errors.Problem) -> Response:
    return render(
        ex,
        "error.html",
        problem.status,
        code=problem.code,
        message=ex.gettext(problem.message),
        reference=ex.correlation_id,
    )


def failure(ex: Exchange, exc: BaseException) -> Response:
    """The page for anything that went wrong; no session sends the person to sign in."""
    problem = errors.problem_for(exc)
    log_failure(exc, problem)
    if problem.status == 401:
        return signed_out(ex)
    return error_page(ex, problem)


def signed_out(ex: Exchange) -> Response:
    """Where a page sends someone without a valid session."""
    had_session = bool(ex.request.cookies.get(SESSION_COOKIE))
    response = see_other("/signin?notice=session_ended" if had_session else "/signin")
    if had_session:
        clear_cookie(response, ex.request, SESSION_COOKIE)
    return response


def csrf_ok(ex: Exchange, tokens: Tokens, form: dict[str, str]) -> bool:
    return tokens.csrf_matches(ex.request.cookies.get(CSRF_COOKIE), form.get("csrf_token"))


def signin_form(ex: Exchange) -> Response:
    if ex.principal is not None:
        return see_other("/")
    return render(ex, "signin.html", username="", error=None)


def signin(
    ex: Exchange,
    tokens: Tokens,
    authenticate: Callable[[str, str, str], Account | None],
) -> Response:
    form = read_form(ex.request)
    username = form.get("username", "").strip()[:150]
    password = form.get("password", "")[:1024]
    if not csrf_ok(ex, tokens, form):
        error = N_("The form had expired. Please try again.")
        return render(ex, "signin.html", 400, username=username, error=ex.gettext(error))
    if not username or not password:
        error = N_("Enter your username and your password.")
        return render(ex, "signin.html", 422, username=username, error=ex.gettext(error))
    try:
        account = authenticate(username, password, client_address(ex.request))
    except errors.GatewayError as exc:
        if exc.problem.status != 429:
            raise
        response = render(
            ex, "signin.html", 429, username=username, error=ex.gettext(exc.problem.message)
        )
        response.headers["Retry-After"] = str(exc.problem.retry_after)
        return response
    if account is None:
        error = errors.invalid_credentials().problem.message
        return render(ex, "signin.html", 401, username=username, error=ex.gettext(error))
    issued = tokens.issue(account.id, account.role, account.agency)
    response = see_other("/")
    start_session(response, ex, issued)
    # A new CSRF token with the new session: one planted before sign-in is worthless.
    ex.csrf_token, ex.csrf_is_new = tokens.new_csrf_token(), True
    return response


def start_session(response: Response, ex: Exchange, issued: IssuedToken) -> None:
    set_cookie(response, ex.request, SESSION_COOKIE, issued.access_token, issued.expires_in)


def signout(ex: Exchange, tokens: Tokens, revoke: Callable[[str, Any], None]) -> Response:
    form = read_form(ex.request)
    if ex.principal is None:
        return signed_out(ex)
    if not csrf_ok(ex, tokens, form):
        return see_other("/?notice=form_expired")
    revoke(ex.principal.jti, ex.principal.expires_at)
    response = see_other("/signin?notice=signed_out")
    clear_cookie(response, ex.request, SESSION_COOKIE)
    return response


# Hub staff and coordinators have no waiting list: their home is where their work is.
HOME_BY_ROLE: dict[Role, str] = {
    Role.intake_officer: "/referrals",
    Role.administrator: "/referrals",
    Role.coordinator: "/pipeline",
}


WAITING_LIST_PAGE = 200
"""Referrals per page of the waiting list: as many as it showed before it had pages."""


def waiting_list(ex: Exchange, intake_queue: Callable[[dict], dict]) -> Response:
    """The agency's intake queue, a page at a time (`?cursor=` from the "next page" link)."""
    assert ex.principal is not None
    home = HOME_BY_ROLE.get(ex.principal.role)
    if home is not None:
        notice = ex.request.args.get("notice")
        return see_other(f"{home}?notice={notice}" if notice in NOTICES else home)
    agency = i18n.label(ex.language, "organisations", ex.principal.agency)
    cursor = ex.request.args.get("cursor", "")
    try:
        page = intake_queue({"limit": WAITING_LIST_PAGE, **({"cursor": cursor} if cursor else {})})
    except kit.Forbidden:
        # Hub staff and coordinators have no waiting list of their own: say so, calmly.
        return render(
            ex, "waiting_list.html", rows=None, agency=agency, next_link=None, first_link=None
        )
    except kit.BadInput:
        if not cursor:
            raise
        # An old or altered "next page" link: start again from the first page.
        return see_other("/?notice=list_restarted")
    items = page["items"]
    can_accept = ex.principal.agency in ACCEPTING_AGENCIES
    from gateway.board_pages import due_text  # board_pages builds on this module

    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "coordination_id": item["coordination_id"],
            "received_at": item["received_at"],
            "received": i18n.format_instant(item["received_at"], ex.language),
            "channel": i18n.label(ex.language, "channels", item["channel"]),
            "categories": [
                i18n.label(ex.language, "categories", code) for code in item["categories"]
            ],
            "urgency_code": item["urgency"],
            "urgency": i18n.label(ex.language, "urgencies", item["urgency"]),
            "status": i18n.label(ex.language, "agency_statuses", item["status"]),
            "acceptable": can_accept and item["status"] == AgencyStatus.pending_acceptance,
            "due": due_text(ex, item, now),
            "overdue": bool(item.get("due_at"))
            and item["status"] == AgencyStatus.pending_acceptance
            and dt.datetime.fromisoformat(item["due_at"]) <= now,
        }
        for item in items
    ]
    language = ex.language
    following = page.get("next_cursor")
    return render(
        ex,
        "waiting_list.html",
        rows=rows,
        agency=agency,
        next_link="/?" + urlencode({"cursor": following}) if following else None,
        first_link="/" if cursor else None,
        opened_case=opened_case(ex),
        decline_reasons=list(i18n.LABELS[language].get("decline_reasons", {}).items()),
        other_agencies=[
            (code, label)
            for code, label in i18n.LABELS[language]["agencies"].items()
            if code != ex.principal.agency
        ],
    )


_ACCEPT_NOTICES: dict[type[kit.ConcordError], str] = {
    kit.Conflict: "accept_conflict",
    kit.Forbidden: "accept_forbidden",
    kit.NotFound: "accept_not_found",
    kit.BadInput: "accept_not_found",
    kit.ServiceUnavailable: "unavailable",
}


def accept(
    ex: Exchange,
    tokens: Tokens,
    coordination_id: str,
    open_record: Callable[[Principal, str], dict],
) -> Response:
    assert ex.principal is not None
    form = read_form(ex.request)
    if not csrf_ok(ex, tokens, form):
        return see_other("/?notice=form_expired")
    try:
        parsed = str(uuid.UUID(coordination_id))
    except ValueError:
        return see_other("/?notice=accept_not_found")
    try:
        receipt = open_record(ex.principal, parsed)
    except kit.ConcordError as exc:
        if isinstance(exc, kit.Unauthenticated):
            return signed_out(ex)
        notice = next((n for cls, n in _ACCEPT_NOTICES.items() if isinstance(exc, cls)), None)
        if notice is None:
            raise
        return see_other(f"/?notice={notice}")
    # A case opened by social services: the waiting list offers a link to it.
    case_id = receipt.get("case_id") if isinstance(receipt, dict) else None
    return see_other(f"/?notice=accepted&case={case_id}" if case_id else "/?notice=accepted")


def opened_case(ex: Exchange) -> str | None:
    """The case just opened by accepting a referral (`?case=`), when it is one."""
    try:
        return str(uuid.UUID(ex.request.args.get("case", "")))
    except ValueError:
        return None


CHARTJS_VERSION = "4.6.1"  # static/vendor/README.md: source, licence, digest

# The files served under /static/, by the name in the URL: nothing else is served. A
# vendored library's URL carries its version, so a browser never keeps a stale copy.
STATIC_FILES: dict[str, tuple[str, str]] = {
    "concord.css": ("concord.css", "text/css"),
    "board.js": ("board.js", "text/javascript"),
    f"chart-{CHARTJS_VERSION}.umd.min.js": ("vendor/chartjs/chart.umd.min.js", "text/javascript"),
}


def static_file(name: str) -> Response | None:
    """A file of STATIC_FILES; None for anything else."""
    known = STATIC_FILES.get(name)
    if known is None:
        return None
    path, mimetype = known
    response = Response((STATIC_DIR / path).read_bytes(), mimetype=mimetype)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
