"""The referral hub's JSON API (issue 3): bulk intake, the intake officer's decisions, the
agencies' intake queues and declines, and the coordinators' pipeline. Validate what comes
in, call `referral` as the signed-in person, pass its answer on unchanged.

`referral` checks everything again and decides who may see and do what
(docs/interfaces/referral.md); the gateway adds what only it can do: read a large body
of reports and hand it to the hub in chunks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from marshmallow import Schema
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from concord_contracts.rpc import (
    CloseSchema,
    DeclineSchema,
    DismissDuplicateSchema,
    IntakeQuerySchema,
    LinkSchema,
    PipelineFiltersSchema,
    PipelineQuerySchema,
    RerouteSchema,
    RevokeSchema,
)
from gateway import errors
from gateway.api import coordination_id, validated_body
from gateway.web import Exchange, json_response

MAX_BATCH_BYTES = 16 * 1024 * 1024
MAX_BATCH_REPORTS = 10_000
MAX_REPORT_BYTES = 256 * 1024
BATCH_CHUNK = 200
"""Reports per `submit_batch` call: one transaction of the hub each, well inside the RPC
timeout, and large enough for multi-row inserts to pay."""

NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines")

LIST_PARAMETERS = ("stage", "agency", "agency_status", "urgency", "category", "channel", "flag")
SCALAR_PARAMETERS = ("received_from", "received_to", "sort", "limit", "cursor", "counts")
IGNORED_PARAMETERS = ("lang",)  # the page language, chosen by the gateway itself

DECISIONS: dict[str, tuple[str, type[Schema]]] = {
    "reroute": ("reroute", RerouteSchema),
    "revoke": ("revoke", RevokeSchema),
    "close": ("close", CloseSchema),
    "link": ("link_duplicate", LinkSchema),
    "dismiss_duplicate": ("dismiss_duplicate", DismissDuplicateSchema),
}
"""The intake officer's decisions: path segment -> (RPC method, body schema)."""


# --- bulk intake -------------------------------------------------------------------------


def read_reports(ex: Exchange) -> list[tuple[int | None, Any, dict | None]]:
    """The reports of a batch body: a JSON array, or JSON lines (one report per line,
    empty lines skipped). Each as (line number or None, report, error of its own), so
    that a line that is not JSON is refused alone."""
    request = ex.request
    request.max_content_length = MAX_BATCH_BYTES + 1
    try:
        raw = request.get_data()
    except RequestEntityTooLarge:
        raise errors.payload_too_large() from None
    if len(raw) > MAX_BATCH_BYTES:
        raise errors.payload_too_large()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.invalid_json() from None
    mimetype = request.mimetype or ""
    if mimetype not in NDJSON_TYPES and text.lstrip().startswith("["):
        try:
            reports = json.loads(text, parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            raise errors.invalid_json() from None
        if not isinstance(reports, list):
            raise errors.invalid_fields({"_schema": ["A JSON array of referrals."]})
        found: list[tuple[int | None, Any, dict | None]] = [(None, r, None) for r in reports]
    else:
        found = list(_lines(text))
    if not found:
        raise errors.invalid_fields({"_schema": ["No referral in the body."]})
    if len(found) > MAX_BATCH_REPORTS:
        raise errors.invalid_fields(
            {"_schema": [f"At most {MAX_BATCH_REPORTS} referrals per request."]}
        )
    return found


def _lines(text: str) -> Iterator[tuple[int | None, Any, dict | None]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(line.encode()) > MAX_REPORT_BYTES:
            yield number, None, {"_line": [f"Longer than {MAX_REPORT_BYTES} bytes."]}
            continue
        try:
            yield number, json.loads(line, parse_constant=_refuse_constant), None
        except (ValueError, RecursionError):
            yield number, None, {"_line": ["Not valid JSON."]}


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def submit_batch(ex: Exchange, referral) -> Response:
    """Each report accepted or refused on its own; the same reports again create nothing
    twice (their idempotency keys). 200 with a result per report, in the body's order."""
    reports = read_reports(ex)
    results: list[dict[str, Any] | None] = [None] * len(reports)
    pending: list[tuple[int, Any]] = []
    for index, (_, report, problem) in enumerate(reports):
        if problem is not None:
            results[index] = {
                "index": index,
                "idempotency_key": None,
                "status": "rejected",
                "errors": problem,
            }
        else:
            pending.append((index, report))
    for start in range(0, len(pending), BATCH_CHUNK):
        chunk = pending[start : start + BATCH_CHUNK]
        answer = referral.submit_batch([report for _, report in chunk])
        for (index, _), result in zip(chunk, answer["results"], strict=True):
            results[index] = {**result, "index": index}
    done = [r for r in results if r is not None]
    for (line, _, _), result in zip(reports, done, strict=True):
        if line is not None:
            result["line"] = line
    return json_response(
        {
            "results": done,
            **{
                status: sum(1 for r in done if r["status"] == status)
                for status in ("created", "replayed", "rejected")
            },
        }
    )


# --- one referral ------------------------------------------------------------------------


def referral_detail(ex: Exchange, cid: str, referral) -> Response:
    return json_response(referral.referral_detail(coordination_id(cid)))


def decide(ex: Exchange, cid: str, decision: str, referral) -> Response:
    """One of the intake officer's decisions on a referral; answers its pipeline row."""
    if decision not in DECISIONS:
        raise errors.not_found()
    method, schema = DECISIONS[decision]
    key = coordination_id(cid)
    body = validated_body(ex, schema())
    return json_response(getattr(referral, method)(key, body))


def intake_queue(ex: Exchange, referral) -> Response:
    """One page of the signed-in person's agency's intake queue (`limit`, `cursor`)."""
    query = _checked(IntakeQuerySchema(), pipeline_query(ex, ("limit", "cursor")))
    return json_response(referral.intake_queue(query))


def decline(ex: Exchange, cid: str, referral) -> Response:
    """The signed-in person's agency declines a referral routed to it."""
    key = coordination_id(cid)
    body = validated_body(ex, DeclineSchema())
    return json_response(referral.decline(key, body))


# --- the coordinators' pipeline ----------------------------------------------------------


def pipeline_query(ex: Exchange, allowed: tuple[str, ...] = SCALAR_PARAMETERS) -> dict[str, Any]:
    """The query string as the pipeline and intake queue RPCs take it: lists repeated
    (`?stage=a&stage=b`) or comma-separated (`?stage=a,b`); an unknown parameter is
    refused by name."""
    args = ex.request.args
    query: dict[str, Any] = {}
    unknown = {}
    for name in args:
        if name in LIST_PARAMETERS:
            values = [v.strip() for raw in args.getlist(name) for v in raw.split(",")]
            query[name] = [v for v in values if v]
        elif name in allowed:
            values = args.getlist(name)
            if len(values) > 1:
                unknown[name] = ["Give it once."]
                continue
            query[name] = _scalar(name, values[0])
        elif name not in IGNORED_PARAMETERS:
            unknown[name] = ["Unknown parameter."]
    if unknown:
        raise errors.invalid_fields(unknown)
    return query


def _scalar(name: str, value: str) -> Any:
    if name == "limit":
        return int(value) if value.strip().isdigit() and len(value) < 10 else value
    if name == "counts":
        return {"true": True, "false": False}.get(value.lower(), value)
    return value


def _checked(schema: Schema, query: dict[str, Any]) -> dict[str, Any]:
    """Refused here already when the schema refuses it (the hub checks again)."""
    errors_found = schema.validate(query)
    if errors_found:
        raise errors.invalid_fields(errors_found)
    return query


def pipeline(ex: Exchange, referral) -> Response:
    query = _checked(PipelineQuerySchema(), pipeline_query(ex))
    return json_response(referral.pipeline(query))


def pipeline_summary(ex: Exchange, referral) -> Response:
    query = _checked(PipelineFiltersSchema(), pipeline_query(ex, ("received_from", "received_to")))
    return json_response(referral.pipeline_summary(query))


def pipeline_version(ex: Exchange, referral) -> Response:
    if ex.request.args.keys() - set(IGNORED_PARAMETERS):
        raise errors.invalid_fields(
            {name: ["Unknown parameter."] for name in ex.request.args if name != "lang"}
        )
    return json_response(referral.pipeline_version())
