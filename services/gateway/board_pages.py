"""The coordinators' pipeline board and the pipeline view of one referral.

The board shows every referral by stage (one column each), urgent ones first and overdue
ones marked, with the filters in the query string so that a reload or a shared link shows
the same board. A funnel and an ageing chart (Chart.js, with a table of the same numbers)
sit under it. `static/board.js` polls `pipeline_version` and swaps the board in place when
it changed; without JavaScript the page is complete and has a Refresh link.

Only codes, statuses and times reach these pages: the referral service answers
`pipeline`, `pipeline_summary` and `pipeline_row` without identities or free text to
anyone, and decides who may ask (docs/interfaces/referral.md).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from babel.dates import format_time, format_timedelta
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from concord_contracts.codes import (
    Agency,
    AgencyStatus,
    Category,
    Channel,
    Flag,
    Role,
    Stage,
    Urgency,
)
from concord_kit import errors as kit
from gateway import errors, i18n, pages
from gateway.i18n import N_
from gateway.web import Exchange, json_response

CARDS_PER_COLUMN = 25
REFRESH_SECONDS = 10
CODE_LENGTH_LIMIT = 64  # no code is longer; a longer value is refused before any call

# The ageing buckets of PipelineSummary.ageing, shortest wait first.
AGEING_BUCKETS = (
    "under_2_hours",
    "hours_2_to_24",
    "days_1_to_3",
    "days_3_to_7",
    "days_7_to_30",
    "over_30_days",
)
# The lists a hop's `detail` code may come from (a reason, a flag, a partner's own status).
DETAIL_LISTS = (
    "stages",
    "urgencies",
    "decline_reasons",
    "close_reasons",
    "revoke_reasons",
    "flags",
    "case_statuses",
    "investigation_statuses",
    "request_statuses",
)
# A hop's detail its kind's label already says ("Escalated: acceptance overdue").
SAID_BY_THE_KIND = frozenset({("escalated", "acceptance_overdue")})
# The lists a hop's `status` code may come from: an agency's status, the stage, the urgency.
STATUS_LISTS = ("agency_statuses", "stages", "urgencies")
OVERDUE_FLAGS = frozenset({"awaiting_acceptance_overdue", "request_abroad_overdue"})

# Where a card leads: the intake officer's referral page (identities, actions) or the
# pipeline view of the referral (codes only).
DETAIL_PAGE_ROLES = frozenset({Role.intake_officer})

# Pages whose scripts come from this site only (the stylesheet's policy plus scripts and
# same-origin fetches; JSON in a <script type="application/json"> is data, not run).
SCRIPT_POLICY = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True)
class Filter:
    """One filter of the board: a query-string name, the label of its field, and the codes
    it takes (or None for a date)."""

    name: str
    label: str
    codes: type[StrEnum] | None
    labels: str = ""  # the i18n list labelling its codes

    @property
    def id(self) -> str:
        return "filter-" + self.name


FILTERS: tuple[Filter, ...] = (
    Filter("stage", N_("Stage"), Stage, "stages"),
    Filter("urgency", N_("Urgency"), Urgency, "urgencies"),
    Filter("agency", N_("Agency"), Agency, "agencies"),
    Filter("agency_status", N_("Agency status"), AgencyStatus, "agency_statuses"),
    Filter("flag", N_("Flag"), Flag, "flags"),
    Filter("category", N_("Category"), Category, "categories"),
    Filter("channel", N_("Channel"), Channel, "channels"),
    Filter("received_from", N_("Received from"), None),
    Filter("received_to", N_("Received up to"), None),
)
FILTER_NAMES = frozenset(f.name for f in FILTERS)


@dataclass
class BoardQuery:
    """The board's filters as the referral service takes them, and as the page shows them."""

    filters: dict[str, Any]
    shown: dict[str, list[str]]
    invalid: list[str]
    cursor: str | None = None

    def query_string(self, **extra: str) -> str:
        pairs = [(name, value) for name, values in self.shown.items() for value in values]
        pairs += [(key, value) for key, value in extra.items() if value]
        return urlencode(pairs)


def _date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _midnight(day: dt.date) -> str:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).isoformat()


def parse_filters(args: MultiDict) -> BoardQuery:
    """The query string's filters, each checked: an unknown code or a date that is not one
    is left out and named, never sent on. `received_to` is a day, included (the service
    takes an exclusive instant: the next midnight)."""
    filters: dict[str, Any] = {}
    shown: dict[str, list[str]] = {}
    invalid: list[str] = []
    for spec in FILTERS:
        raw = [
            part.strip()
            for value in args.getlist(spec.name)
            for part in value.split(",")
            if part.strip()
        ]
        if not raw:
            continue
        if spec.codes is not None:
            known = {code.value for code in spec.codes}
            good = [value for value in raw if value in known]
            if len(good) != len(raw):
                invalid.append(spec.name)
            if good:
                filters[spec.name] = list(dict.fromkeys(good))
                shown[spec.name] = filters[spec.name]
            continue
        day = _date(raw[0]) if len(raw) == 1 else None
        if day is None:
            invalid.append(spec.name)
            continue
        shown[spec.name] = [day.isoformat()]
        if spec.name == "received_from":
            filters["received_from"] = _midnight(day)
        else:
            filters["received_to"] = _midnight(day + dt.timedelta(days=1))
    start, end = filters.get("received_from"), filters.get("received_to")
    if start and end and start >= end:
        invalid.append("received_to")
        del filters["received_to"], shown["received_to"]
    cursor = args.get("cursor", "").strip()[:512] or None
    return BoardQuery(filters, shown, invalid, cursor)


# --- what a card shows -------------------------------------------------------------------


def _instant(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def waited(since: str, now: dt.datetime, language: str) -> str:
    """How long since `since`, in the person's words ("3 hours")."""
    start = _instant(since)
    delta = max(now - start, dt.timedelta()) if start else dt.timedelta()
    return format_timedelta(delta, locale=language)


def due_text(ex: Exchange, state: Mapping[str, Any], now: dt.datetime) -> str | None:
    """When an agency's acceptance is due, or by how long it is overdue."""
    due = _instant(state.get("due_at"))
    if due is None or state.get("status") != AgencyStatus.pending_acceptance:
        return None
    if state.get("overdue") or due <= now:
        late = format_timedelta(now - due, locale=ex.language)
        return ex.gettext(N_("overdue by %(duration)s")) % {"duration": late}
    left = format_timedelta(due - now, locale=ex.language)
    return ex.gettext(N_("due within %(duration)s")) % {"duration": left}


def flag_views(language: str, codes: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "code": code,
            "label": i18n.label(language, "flags", code),
            "overdue": code in OVERDUE_FLAGS,
        }
        for code in codes
    ]


def card(ex: Exchange, item: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    assert ex.principal is not None
    language = ex.language
    cid = item["coordination_id"]
    base = "/referrals/" if ex.principal.role in DETAIL_PAGE_ROLES else "/pipeline/"
    return {
        "coordination_id": cid,
        "href": base + cid,
        "urgency_code": item["urgency"],
        "urgency": i18n.label(language, "urgencies", item["urgency"]),
        "channel": i18n.label(language, "channels", item["channel"]),
        "categories": [i18n.label(language, "categories", c) for c in item["categories"]],
        "received_at": item["received_at"],
        "received": i18n.format_instant(item["received_at"], language),
        "waiting": ex.gettext(N_("%(duration)s at this stage"))
        % {"duration": waited(item.get("stage_since") or item["received_at"], now, language)},
        "agencies": [
            {
                "label": i18n.label(language, "agencies", agency),
                "status": i18n.label(language, "agency_statuses", state["status"]),
                "due": due_text(ex, state, now),
            }
            for agency, state in item.get("agencies", {}).items()
        ],
        "flags": flag_views(language, item.get("flags", [])),
        "overdue": bool(item.get("overdue")),
    }


# --- the board ---------------------------------------------------------------------------


def _charts(ex: Exchange, summary: Mapping[str, Any]) -> tuple[list, dict, dict]:
    language = ex.language
    funnel = [
        {"label": i18n.label(language, "stages", step["stage"]), "value": step["count"]}
        for step in summary.get("funnel", [])
    ]
    ageing_in = summary.get("ageing", {})
    buckets = AGEING_BUCKETS  # every band, always: the table keeps its shape between refreshes
    rows = [
        {
            "label": i18n.label(language, "stages", stage.value),
            "values": [ageing_in[stage.value].get(bucket, 0) for bucket in buckets],
        }
        for stage in Stage
        if stage.value in ageing_in
    ]
    ageing: dict[str, Any] = {
        "bands": [i18n.label(language, "ageing_buckets", bucket) for bucket in buckets],
        "rows": rows,
    }
    chart_data = {
        "funnel": {
            "labels": [step["label"] for step in funnel],
            "values": [step["value"] for step in funnel],
            "series_label": ex.gettext(N_("Referrals")),
        },
        "ageing": {
            "labels": [row["label"] for row in rows],
            "series": [
                {"label": band, "values": [row["values"][i] for row in rows]}
                for i, band in enumerate(ageing["bands"])
            ],
        },
    }
    return funnel, ageing, chart_data


def _filter_fields(ex: Exchange, query: BoardQuery) -> list[dict[str, Any]]:
    language = ex.language
    fields = []
    for spec in FILTERS:
        options = None
        if spec.codes is not None:
            options = [(c.value, i18n.label(language, spec.labels, c.value)) for c in spec.codes]
        values = query.shown.get(spec.name, [])
        fields.append(
            {
                "id": spec.id,
                "name": spec.name,
                "label": ex.gettext(spec.label),
                "options": options,
                "value": values[0] if values else "",
                "invalid": spec.name in query.invalid,
            }
        )
    return fields


def board(
    ex: Exchange,
    referral: Any,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> Response:
    """The pipeline board: a column per stage (or the stages filtered), urgent first."""
    assert ex.principal is not None
    args = ex.request.args
    query = parse_filters(args)
    if not query.invalid and any(not v.strip() for k, v in args.items(multi=True) if k != "lang"):
        # The filter form sends every field, empty ones too: the board's address keeps
        # only the filters chosen, so that it reads well and can be shared.
        tail = query.query_string(cursor=query.cursor or "")
        return pages.see_other("/pipeline" + ("?" + tail if tail else ""))
    stages = [Stage(s) for s in query.filters.get("stage", [])] or list(Stage)
    if query.cursor and len(stages) != 1:
        query.cursor = None  # a next page belongs to one stage's column
    # Every column and the summary are asked at once, then read.
    pending_summary = referral.call_async("pipeline_summary", dict(query.filters))
    pending = {
        stage: referral.call_async(
            "pipeline",
            {
                **query.filters,
                "stage": [stage.value],
                "limit": CARDS_PER_COLUMN,
                "sort": "newest" if stage == Stage.closed else "priority",
                "counts": False,
                **({"cursor": query.cursor} if query.cursor else {}),
            },
        )
        for stage in stages
    }
    summary = pending_summary.result()
    try:
        pages_by_stage = {stage: call.result() for stage, call in pending.items()}
    except kit.BadInput:
        if not query.cursor:
            raise
        # A page marker from an older board (or typed by hand): start from the first page.
        return pages.see_other("/pipeline?" + query.query_string())
    instant = now()
    counts = summary.get("counts", {})
    columns = []
    for stage in stages:
        found = pages_by_stage[stage]
        next_cursor = found.get("next_cursor")
        # "More" opens that stage's column alone, at the next page.
        more = (
            "/pipeline?"
            + BoardQuery(query.filters, {**query.shown, "stage": [stage.value]}, []).query_string(
                cursor=next_cursor
            )
            if next_cursor
            else None
        )
        columns.append(
            {
                "stage": stage.value,
                "label": i18n.label(ex.language, "stages", stage.value),
                "count": counts.get(stage.value, 0),
                "cards": [card(ex, item, instant) for item in found.get("items", [])],
                "more_href": more,
            }
        )
    funnel, ageing, chart_data = _charts(ex, summary)
    self_href = "/pipeline" + ("?" + query.query_string() if query.shown else "")
    board_data = {
        **chart_data,
        "version": summary.get("pipeline_version"),
        "changes_url": "/pipeline/version.json",
        "refresh_seconds": REFRESH_SECONDS,
        "strings": {
            "updated": ex.gettext(N_("The pipeline changed; the board was updated at %(time)s.")),
            "paused": ex.gettext(N_("Automatic updates are paused.")),
            "resumed": ex.gettext(N_("Automatic updates are on.")),
            "signed_out": ex.gettext(N_("Your session has ended: reload the page to sign in.")),
        },
    }
    response = pages.render(
        ex,
        "pipeline_board.html",
        filter_fields=_filter_fields(ex, query),
        filter_errors=[
            {"id": f"filter-{name}", "label": ex.gettext(_FILTER_LABELS[name])}
            for name in dict.fromkeys(query.invalid)
        ],
        columns=columns,
        total=sum(counts.get(stage.value, 0) for stage in stages),
        funnel=funnel,
        ageing=ageing,
        board_data=board_data,
        self_href=self_href,
        refreshed=format_time(instant, "short", tzinfo=dt.UTC, locale=ex.language) + " UTC",
        chart_script=f"chart-{pages.CHARTJS_VERSION}.umd.min.js",
    )
    response.headers["Content-Security-Policy"] = SCRIPT_POLICY
    return response


_FILTER_LABELS = {spec.name: spec.label for spec in FILTERS}


def version(ex: Exchange, pipeline_version: Callable[[], dict]) -> Response:
    """What the board's script polls: an opaque string that changes with the pipeline."""
    answer = pipeline_version()
    return json_response({"version": answer.get("pipeline_version")})


# --- one referral's pipeline row ---------------------------------------------------------


def _duration(seconds: int | None, language: str) -> str | None:
    if seconds is None:
        return None
    return format_timedelta(dt.timedelta(seconds=seconds), locale=language)


def _first_label(language: str, lists: tuple[str, ...], code: str | None) -> str | None:
    """The label of `code` in the first of `lists` that has one, else the code itself."""
    if not code:
        return None
    for name in lists:
        label = i18n.label(language, name, code)
        if label != code:
            return label
    return code


def hop_view(ex: Exchange, hop: Mapping[str, Any]) -> dict[str, Any]:
    """One hop of the timeline in words: what happened, to which agency, when, how long
    it lasted (or has lasted, for the last hop of its track)."""
    language = ex.language
    # A reason, a flag, a partner's status; a routing or triage rule's code as it is.
    detail = hop.get("detail")
    if (hop["kind"], detail) in SAID_BY_THE_KIND:
        detail = None
    detail_label = _first_label(language, DETAIL_LISTS, detail)
    kind = i18n.label(language, "hop_kinds", hop["kind"])
    status = _first_label(language, STATUS_LISTS, hop.get("status"))
    return {
        "at": hop["at"],
        "when": i18n.format_instant(hop["at"], language),
        "kind": kind,
        "kind_code": hop["kind"],
        "agency": i18n.label(language, "agencies", hop["agency"]) if hop.get("agency") else None,
        # "Received · received" says nothing twice.
        "status": status if status and status.casefold() != kind.casefold() else None,
        "detail": detail_label,
        "spent": _duration(hop.get("time_spent_seconds"), language),
        "ongoing": bool(hop.get("ongoing")),
    }


def agency_rows(ex: Exchange, row: Mapping[str, Any], now: dt.datetime) -> list[dict[str, Any]]:
    language = ex.language
    shown = []
    for agency, state in row.get("agencies", {}).items():
        suggested = state.get("suggested_agency")
        reason = state.get("decline_reason")
        shown.append(
            {
                "code": agency,
                "label": i18n.label(language, "agencies", agency),
                "status_code": state["status"],
                "status": i18n.label(language, "agency_statuses", state["status"]),
                "since": i18n.format_instant(state["since"], language),
                "since_at": state["since"],
                "due": due_text(ex, state, now),
                "overdue": bool(state.get("overdue")),
                "routed": state.get("routed", True),
                "rule": state.get("rule"),
                "decline_reason": i18n.label(language, "decline_reasons", reason)
                if reason
                else None,
                "suggested_agency": i18n.label(language, "agencies", suggested)
                if suggested
                else None,
            }
        )
    return shown


def row_view(ex: Exchange, row: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    """A pipeline row (or the coded part of a referral detail) as the pages show it."""
    language = ex.language
    close_reason = row.get("close_reason")
    return {
        "coordination_id": row["coordination_id"],
        "stage_code": row["stage"],
        "stage": i18n.label(language, "stages", row["stage"]),
        "urgency_code": row["urgency"],
        "urgency": i18n.label(language, "urgencies", row["urgency"]),
        "channel": i18n.label(language, "channels", row["channel"]),
        "categories": [i18n.label(language, "categories", c) for c in row.get("categories", [])],
        "received_at": row["received_at"],
        "received": i18n.format_instant(row["received_at"], language),
        "flags": flag_views(language, row.get("flags", [])),
        "overdue": bool(row.get("overdue")),
        "agencies": agency_rows(ex, row, now),
        "timeline": [hop_view(ex, hop) for hop in row.get("timeline", [])],
        "close_reason": i18n.label(language, "close_reasons", close_reason)
        if close_reason
        else None,
        "closed": i18n.format_instant(row["closed_at"], language) if row.get("closed_at") else None,
        "linked_to": row.get("linked_to"),
    }


def coordination_id_or_404(value: str) -> str:
    """A coordination id from a page's address; any other text is a page not found."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise errors.not_found() from None


def pipeline_row_page(
    ex: Exchange,
    coordination_id: str,
    pipeline_row: Callable[[str], dict],
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> Response:
    row = pipeline_row(coordination_id_or_404(coordination_id))
    return pages.render(ex, "pipeline_row.html", row=row_view(ex, row, now()))
