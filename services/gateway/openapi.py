"""The OpenAPI 3 document of the API, generated from the same marshmallow schemas the
gateway and the services validate with (concord_contracts.rpc) plus the gateway's own."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import fields as ma_fields

from concord_contracts import rpc
from concord_contracts.cases import ConflictCode
from concord_contracts.codes import REFERENCE_LISTS
from concord_kit import errors as kit
from gateway import errors, openapi_cases, openapi_hub, schemas

TITLE = "Concord API"
VERSION = "1.0.0"

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "The body is not valid JSON."),
    401: ("Unauthenticated", "No valid bearer token, or wrong credentials."),
    403: ("Forbidden", "The signed-in person may not do this."),
    404: ("NotFound", "Nothing was found here."),
    # No generic 409: an operation that can be refused by state documents its codes
    # (`_conflict`), as the case and hub actions do.
    413: ("PayloadTooLarge", "The body is larger than 256 KiB."),
    422: ("InvalidInput", "Fields are not valid; `error.fields` names each one."),
    429: (
        "TooManyAttempts",
        "Too many failed sign-ins for this username or from this address (`too_many_attempts`):"
        " the password was not checked; try again after `Retry-After` seconds.",
    ),
    502: ("BadGateway", "A service failed in an undeclared way."),
    503: ("ServiceUnavailable", "A service this needs did not answer in time."),
}

_CORRELATION = {
    "in": "header",
    "name": "X-Correlation-ID",
    "required": False,
    "description": "Follows the request through every service; echoed in the response.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,64}$"},
}
_LANGUAGE = {
    "in": "header",
    "name": "Accept-Language",
    "required": False,
    "description": "en, fr or es: the language of labels and error messages.",
    "schema": {"type": "string"},
}
_COORDINATION_ID = {
    "in": "path",
    "name": "coordination_id",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
_PUBLIC: list[dict] = []  # an operation that needs no token


def _json(schema: Any) -> dict:
    return {"application/json": {"schema": schema}}


def _responses(ok_status: int, description: str, schema: Any, *errors: int) -> dict:
    responses: dict[Any, Any] = {
        str(ok_status): {"description": description, "content": _json(schema)}
    }
    for status in errors:
        responses[str(status)] = {"$ref": f"#/components/responses/{_ERRORS[status][0]}"}
    return responses


def _operation(
    summary: str,
    operation_id: str,
    responses: dict,
    *,
    tag: str,
    body: Any = None,
    parameters: tuple[dict, ...] = (),
    public: bool = False,
) -> dict:
    operation: dict[str, Any] = {
        "summary": summary,
        "operationId": operation_id,
        "tags": [tag],
        "parameters": [_CORRELATION, _LANGUAGE, *parameters],
        "responses": responses,
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": _json(body)}
    if public:
        operation["security"] = _PUBLIC
    return operation


def _conflict(why: Mapping[ConflictCode, str]) -> dict:
    """A 409 response whose `error.code` is one of `why` (each code with what it means),
    with the first as the example, answered as the gateway answers it."""
    example = next(iter(why))
    return {
        "description": "Refused, nothing written; `error.code` says why: "
        + "; ".join(f"`{code.value}`: {meaning}" for code, meaning in why.items()),
        "content": _json(
            {
                "allOf": [{"$ref": "#/components/schemas/Error"}],
                "example": {
                    "error": {
                        "code": example.value,
                        "message": errors.problem_for(kit.Conflict(example.value)).message,
                    }
                },
            }
        ),
    }


def _string_enums(self, field, **kwargs) -> dict:
    """Codes are strings: say so, for clients generated from this document."""
    if isinstance(field, ma_fields.Enum) and issubclass(field.enum, StrEnum):
        return {"type": "string"}
    return {}


@functools.cache
def document() -> dict:
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title=TITLE,
        version=VERSION,
        openapi_version="3.0.3",
        plugins=[plugin],
        info={
            "description": (
                "Concord's HTTP API. Every case operation is answered by the agency service "
                "that owns the data, acting as the signed-in person."
            )
        },
        servers=[{"url": "/"}],
        security=[{"bearer": []}],
    )
    assert plugin.converter is not None  # set when the spec took the plugin
    plugin.converter.add_attribute_function(_string_enums)
    spec.components.security_scheme(
        "bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    for schema in (
        rpc.ReferralSubmissionSchema,
        rpc.SubmissionReceiptSchema,
        rpc.IntakeItemSchema,
        rpc.PipelineRowSchema,
        rpc.CaseOpenedReceiptSchema,
        rpc.InvestigationOpenedReceiptSchema,
        schemas.TokenRequestSchema,
        schemas.TokenResponseSchema,
        schemas.ErrorSchema,
        schemas.ReferenceItemSchema,
        schemas.HealthReportSchema,
    ):
        spec.components.schema(schema.__name__.removesuffix("Schema"), schema=schema)
    for status, (name, description) in _ERRORS.items():
        response: dict[str, Any] = {"description": description, "content": _json("Error")}
        if status == 429:
            response["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before the next sign-in attempt.",
                    "schema": {"type": "integer", "minimum": 1},
                }
            }
        spec.components.response(name, response)

    spec.path(
        "/api/v1/auth/token",
        operations={
            "post": _operation(
                "Exchange a username and password for an access token (30 minutes)",
                "issueToken",
                _responses(200, "A bearer token.", "TokenResponse", 400, 401, 413, 422, 429),
                tag="auth",
                body="TokenRequest",
                public=True,
            )
        },
    )
    spec.path(
        "/api/v1/referrals",
        operations={
            "post": _operation(
                "Submit a referral (intake officers)",
                "submitReferral",
                _responses(
                    201,
                    "Received and routed.",
                    "SubmissionReceipt",
                    400,
                    401,
                    403,
                    413,
                    422,
                    502,
                    503,
                ),
                tag="referrals",
                body="ReferralSubmission",
            )
        },
    )
    spec.path(
        "/api/v1/intake/{coordination_id}/accept",
        operations={
            "post": _operation(
                "Accept a referral: social services open a case, justice an investigation",
                "acceptReferral",
                _responses(
                    200,
                    "The record the agency opened.",
                    {
                        "oneOf": [
                            {"$ref": "#/components/schemas/CaseOpenedReceipt"},
                            {"$ref": "#/components/schemas/InvestigationOpenedReceipt"},
                        ]
                    },
                    # No 409: accepting is never refused by state. Accepting again
                    # answers the same record; a routing declined or withdrawn (or
                    # never made) is the hub's refusal to hand over the details: 403.
                    401,
                    403,
                    404,
                    422,
                    502,
                    503,
                ),
                tag="intake",
                parameters=(_COORDINATION_ID,),
            )
        },
    )
    spec.path(
        "/api/v1/pipeline/{coordination_id}",
        operations={
            "get": _operation(
                "The coordinated status of one referral (no identities)",
                "pipelineRow",
                _responses(
                    200, "Where the referral stands.", "PipelineRow", 401, 403, 404, 422, 502, 503
                ),
                tag="pipeline",
                parameters=(_COORDINATION_ID,),
            )
        },
    )
    spec.path(
        "/api/v1/reference/{name}",
        operations={
            "get": _operation(
                "Codes of one list with their labels in the request's language",
                "referenceList",
                _responses(
                    200,
                    "Codes and labels.",
                    {"type": "array", "items": {"$ref": "#/components/schemas/ReferenceItem"}},
                    404,
                ),
                tag="reference",
                parameters=(
                    {
                        "in": "path",
                        "name": "name",
                        "required": True,
                        "schema": {"type": "string", "enum": sorted(REFERENCE_LISTS)},
                    },
                ),
                public=True,
            )
        },
    )
    spec.path(
        "/api/v1/openapi.json",
        operations={
            "get": _operation(
                "This document",
                "openapiDocument",
                {"200": {"description": "OpenAPI 3.0", "content": _json({"type": "object"})}},
                tag="meta",
                public=True,
            )
        },
    )
    spec.path(
        "/healthz",
        operations={
            "get": _operation(
                "Health of the gateway and of every service",
                "health",
                {
                    "200": {"description": "All ok.", "content": _json("HealthReport")},
                    "503": {"description": "One or more not ok.", "content": _json("HealthReport")},
                },
                tag="meta",
                public=True,
            )
        },
    )
    openapi_cases.add_case_paths(spec, _operation, _responses, _conflict)
    openapi_hub.add_hub_paths(spec, _operation, _responses, _conflict)
    return spec.to_dict()
