"""The referral hub's part of the OpenAPI document (issue 3): bulk intake, the intake
officer's referral and decisions, declines, the coordinators' pipeline. Built from the
schemas in `concord_contracts.rpc` that the gateway and `referral` validate with."""

from __future__ import annotations

from typing import Any

from apispec import APISpec

from concord_contracts import rpc
from concord_contracts.cases import ConflictCode
from concord_contracts.codes import (
    Agency,
    AgencyStatus,
    Category,
    Channel,
    Flag,
    Stage,
    Urgency,
)

TAG = "referral hub"

SCHEMAS = (
    rpc.BatchResultSchema,
    rpc.ReferralDetailSchema,
    rpc.RerouteSchema,
    rpc.RevokeSchema,
    rpc.CloseSchema,
    rpc.LinkSchema,
    rpc.DismissDuplicateSchema,
    rpc.DeclineSchema,
    rpc.IntakePageSchema,
    rpc.PipelinePageSchema,
    rpc.PipelineSummarySchema,
    rpc.PipelineVersionSchema,
)

_COORDINATION_ID = {
    "in": "path",
    "name": "coordination_id",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}


_AGENCY_WORKING = "an agency is working on it (and closes its own record)"
# What each decision's 409 may answer as `error.code`, and what it means there.
_CONFLICTS: dict[str, dict[ConflictCode, str]] = {
    "reroute": {
        ConflictCode.already_with_agency: "an agency named holds it already (it has not "
        "answered yet, or works on it); route to the others",
        ConflictCode.wrong_state: "the referral is closed",
    },
    "revoke": {
        ConflictCode.wrong_state: "the routing is not waiting for an answer (answered, "
        "declined, withdrawn, or never made)",
    },
    "close": {
        ConflictCode.agency_working: _AGENCY_WORKING,
        ConflictCode.wrong_state: "the referral is closed already",
    },
    "link": {
        ConflictCode.link_to_primary: "the one to keep (`duplicate_of`) is itself a linked "
        "duplicate; link to the one it is linked to",
        ConflictCode.agency_working: _AGENCY_WORKING,
        ConflictCode.wrong_state: "the referral is closed already",
    },
    "decline": {
        ConflictCode.wrong_state: "the routing to the caller's agency is no longer waiting for "
        "an answer",
    },
}


def _codes(description: str, enum) -> dict[str, Any]:
    return {
        "description": f"{description} (repeated or comma-separated: any of).",
        "schema": {"type": "array", "items": {"type": "string", "enum": [c.value for c in enum]}},
        "style": "form",
        "explode": True,
    }


FILTERS: dict[str, dict[str, Any]] = {
    "stage": _codes("Stages", Stage),
    "agency": _codes("Agencies involved", Agency),
    "agency_status": _codes("Agency statuses (of the agencies given, else of any)", AgencyStatus),
    "urgency": _codes("Urgencies", Urgency),
    "category": _codes("Harm categories", Category),
    "channel": _codes("Channels", Channel),
    "flag": _codes("Flags", Flag),
    "received_from": {
        "description": "Received at or after this instant (ISO 8601 with offset).",
        "schema": {"type": "string", "format": "date-time"},
    },
    "received_to": {
        "description": "Received before this instant (ISO 8601 with offset).",
        "schema": {"type": "string", "format": "date-time"},
    },
}
PAGING: dict[str, dict[str, Any]] = {
    "sort": {
        "description": "priority (most urgent, then longest waiting, first), oldest or newest.",
        "schema": {"type": "string", "enum": ["priority", "oldest", "newest"]},
    },
    "limit": {"description": "1 to 200, default 50.", "schema": {"type": "integer"}},
    "cursor": {"description": "`next_cursor` of the previous page.", "schema": {"type": "string"}},
    "counts": {
        "description": "Counts per stage (default: on the first page only).",
        "schema": {"type": "boolean"},
    },
}


def _query(name: str, spec: dict) -> dict:
    return {"in": "query", "name": name, "required": False, **spec}


def name_of(schema: type) -> str:
    return schema.__name__.removesuffix("Schema")


def add_hub_paths(spec: APISpec, operation, responses, conflict) -> None:
    """Register the hub's schemas and paths on `spec` with openapi.py's own builders
    (`conflict`: a 409 by its codes)."""
    for schema in SCHEMAS:
        if name_of(schema) not in spec.components.schemas:
            spec.components.schema(name_of(schema), schema=schema)

    def decision_responses(decision: str) -> dict:
        """A decision answers the pipeline row; a refusal its 409 code, where it has one."""
        answers = responses(
            200,
            "Its pipeline row, as it now stands.",
            "PipelineRow",
            *(400, 401, 403, 404, 413, 422, 502, 503),
        )
        if decision in _CONFLICTS:
            answers["409"] = conflict(_CONFLICTS[decision])
        return dict(sorted(answers.items()))

    spec.path(
        "/api/v1/referrals:batch",
        operations={
            "post": {
                **operation(
                    "Submit many reports at once (platform bulk intake): each accepted or "
                    "rejected on its own; an idempotency key per report makes re-sending safe",
                    "submitReferralBatch",
                    responses(
                        200,
                        "A result per report.",
                        "BatchResult",
                        400,
                        401,
                        403,
                        413,
                        422,
                        502,
                        503,
                    ),
                    tag=TAG,
                ),
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "array",
                                "maxItems": 10_000,
                                "items": {"$ref": "#/components/schemas/ReferralSubmission"},
                            }
                        },
                        "application/x-ndjson": {
                            "schema": {"type": "string", "description": "One report per line."}
                        },
                    },
                },
            }
        },
    )
    spec.path(
        "/api/v1/referrals/{coordination_id}",
        operations={
            "get": operation(
                "A referral as the intake officer sees it: identities, routing and history "
                "(intake officers only; every read is audited)",
                "referralDetail",
                responses(200, "The referral.", "ReferralDetail", 401, 403, 404, 422, 502, 503),
                tag=TAG,
                parameters=(_COORDINATION_ID,),
            )
        },
    )
    for path, summary, operation_id, body in (
        ("reroute", "Route (again) to these agencies", "rerouteReferral", "Reroute"),
        ("revoke", "Withdraw a routing not yet answered", "revokeRouting", "Revoke"),
        ("close", "Close a referral no agency works on", "closeReferral", "Close"),
        ("link", "Close it as a duplicate of another, kept", "linkDuplicate", "Link"),
        (
            "dismiss_duplicate",
            "Not the same child: dismiss a possible duplicate",
            "dismissDuplicate",
            "DismissDuplicate",
        ),
    ):
        spec.path(
            f"/api/v1/referrals/{{coordination_id}}/{path}",
            operations={
                "post": operation(
                    f"{summary} (intake officers)",
                    operation_id,
                    decision_responses(path),
                    tag=TAG,
                    body=body,
                    parameters=(_COORDINATION_ID,),
                )
            },
        )
    spec.path(
        "/api/v1/intake",
        operations={
            "get": operation(
                "The signed-in person's agency's waiting list: keyset pages, what waits for "
                "its answer first, most urgent first, newest first (codes and times only)",
                "intakeQueue",
                responses(200, "One page.", "IntakePage", 401, 403, 422, 502, 503),
                tag="intake",
                parameters=tuple(_query(n, PAGING[n]) for n in ("limit", "cursor")),
            )
        },
    )
    spec.path(
        "/api/v1/intake/{coordination_id}/decline",
        operations={
            "post": operation(
                "Decline a referral routed to the signed-in person's agency, with a reason",
                "declineReferral",
                decision_responses("decline"),
                tag="intake",
                body="Decline",
                parameters=(_COORDINATION_ID,),
            )
        },
    )
    spec.path(
        "/api/v1/pipeline",
        operations={
            "get": operation(
                "The coordinators' pipeline: filtered, keyset pages, counts per stage "
                "(no identities)",
                "pipeline",
                responses(200, "One page.", "PipelinePage", 401, 403, 422, 502, 503),
                tag="pipeline",
                parameters=tuple(_query(n, s) for n, s in {**FILTERS, **PAGING}.items()),
            )
        },
    )
    spec.path(
        "/api/v1/pipeline/summary",
        operations={
            "get": operation(
                "Counts per stage, the funnel and the ageing of open items (for charts)",
                "pipelineSummary",
                responses(200, "The aggregates.", "PipelineSummary", 401, 403, 422, 502, 503),
                tag="pipeline",
                parameters=tuple(_query(n, s) for n, s in FILTERS.items()),
            )
        },
    )
    spec.path(
        "/api/v1/pipeline/version",
        operations={
            "get": operation(
                "A token that changes whenever any pipeline row changes (poll it)",
                "pipelineVersion",
                responses(200, "The current version.", "PipelineVersion", 401, 403, 502, 503),
                tag="pipeline",
            )
        },
    )
