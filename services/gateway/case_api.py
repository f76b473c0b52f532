"""The JSON API of social services' cases under /api/v1/cases: validate what comes in,
call `case_management` as the signed-in person, pass its answer on unchanged.

`case_management` checks everything again and decides who may see and do what (the
gateway checking is not enough); the gateway adds what only it knows: which users are
social workers of the caller's agency, to assign cases to.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from marshmallow import Schema, ValidationError
from werkzeug.wrappers import Response

from concord_contracts import cases as contract
from concord_kit import errors as kit
from gateway import errors
from gateway.api import validated_body
from gateway.users import Assignee
from gateway.web import Exchange, json_response

LIST_PARAMETERS = (
    "status",
    "state",
    "assigned_to",
    "overdue",
    "risk_level",
    "origin",
    "limit",
    "cursor",
)
LIST_MULTI = ("status", "risk_level")
SECTIONS = tuple(contract.SECTION_SCHEMAS)


def identifier(value: str, field: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise errors.invalid_fields({field: ["Not a valid UUID."]}) from None


def expected_version(ex: Exchange) -> int | None:
    """`If-Match: "12"` (the case's version as read): a write on a stale read is refused."""
    given = ex.request.headers.get("If-Match")
    if given is None:
        return None
    text = given.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit() or not 0 < int(text) < 2**31:
        raise errors.invalid_fields({"If-Match": ["The case's version, as a whole number."]})
    return int(text)


def optional_body(ex: Exchange, schema: Schema) -> Any:
    """A body that may be left out entirely (an approval without a comment)."""
    if not ex.request.get_data():
        return {}
    return validated_body(ex, schema)


def list_query(ex: Exchange) -> dict[str, Any]:
    """The list's filters from the query string, in the shape `CaseListQuerySchema` loads:
    lists repeated or comma-separated, `overdue` true/false, `limit` a number. Anything
    unknown is refused by name."""
    args = ex.request.args
    unknown = sorted(set(args) - set(LIST_PARAMETERS) - {"lang"})
    if unknown:
        raise errors.invalid_fields({name: ["Unknown field."] for name in unknown})
    query: dict[str, Any] = {}
    for name in LIST_MULTI:
        values = [part for value in args.getlist(name) for part in value.split(",") if part]
        if values:
            query[name] = values
    for name in ("state", "assigned_to", "origin", "cursor"):
        if name in args:
            query[name] = args[name]
    if "overdue" in args:
        flag = args["overdue"].lower()
        if flag not in ("true", "false"):
            raise errors.invalid_fields({"overdue": ["true or false."]})
        query["overdue"] = flag == "true"
    if "limit" in args:
        if not args["limit"].isdigit():
            raise errors.invalid_fields({"limit": ["A whole number from 1 to 100."]})
        query["limit"] = int(args["limit"])
    try:
        contract.CaseListQuerySchema().load(query)
    except ValidationError as exc:
        raise errors.invalid_fields(exc.normalized_messages()) from None
    return query


def list_cases(ex: Exchange, cases) -> Response:
    return json_response(cases.list_cases(list_query(ex)))


def register(ex: Exchange, cases) -> Response:
    body = validated_body(ex, contract.CaseRegistrationSchema())
    return json_response(cases.register_case(body), 201)


def approvals(ex: Exchange, cases) -> Response:
    return json_response(cases.approvals_queue())


def assignees(ex: Exchange, find: Callable[[Any], list[Assignee]]) -> Response:
    """The social workers of the signed-in supervisor's agency."""
    principal = ex.principal
    assert principal is not None
    if principal.role != "supervisor":
        raise kit.Forbidden("only a supervisor assigns cases")
    return json_response(
        [
            {"user_id": a.user_id, "username": a.username, "display_name": a.display_name}
            for a in find(principal.agency)
        ]
    )


def get_case(ex: Exchange, case_id: str, cases) -> Response:
    unknown = sorted(set(ex.request.args) - {"reason", "lang"})
    if unknown:
        raise errors.invalid_fields({name: ["Unknown field."] for name in unknown})
    reason = ex.request.args.get("reason")
    return json_response(cases.get_case(identifier(case_id, "case_id"), reason))


def update_section(ex: Exchange, case_id: str, section: str, cases) -> Response:
    if section not in contract.SECTION_SCHEMAS:
        raise errors.invalid_fields({"section": [f"One of {', '.join(SECTIONS)}."]})
    body = validated_body(ex, contract.SECTION_SCHEMAS[section]())
    return json_response(
        cases.update_section(
            identifier(case_id, "case_id"), section, body, expected_version=expected_version(ex)
        )
    )


def assign(ex: Exchange, case_id: str, cases, find: Callable[[Any], list[Assignee]]) -> Response:
    key = identifier(case_id, "case_id")
    body = validated_body(ex, contract.AssignmentSchema())
    principal = ex.principal
    assert principal is not None
    # Only the gateway knows who the social workers are; case_management checks the rest.
    if principal.role == "supervisor" and body["assign_to"] not in {
        a.user_id for a in find(principal.agency)
    }:
        raise errors.invalid_fields({"assign_to": ["Not an active social worker of your agency."]})
    return json_response(cases.assign_case(key, body, expected_version=expected_version(ex)))


def write(
    ex: Exchange,
    case_id: str,
    call: Callable[..., dict],
    schema: Schema | None,
    *ids: tuple[str, str],
    status: int = 200,
    body_optional: bool = False,
    versioned: bool = True,
) -> Response:
    """One write route: the path's ids checked, the body checked, the RPC called with the
    version the caller read (If-Match)."""
    key = identifier(case_id, "case_id")
    others = [identifier(value, name) for name, value in ids]
    args: list[Any] = [key, *others]
    if schema is not None:
        args.append(optional_body(ex, schema) if body_optional else validated_body(ex, schema))
    kwargs = {"expected_version": expected_version(ex)} if versioned else {}
    return json_response(call(*args, **kwargs), status)


def list_notes(ex: Exchange, case_id: str, cases) -> Response:
    args = ex.request.args
    unknown = sorted(set(args) - {"before", "limit", "lang"})
    if unknown:
        raise errors.invalid_fields({name: ["Unknown field."] for name in unknown})
    query: dict[str, Any] = {}
    if "before" in args:
        query["before"] = args["before"]
    if "limit" in args:
        if not args["limit"].isdigit():
            raise errors.invalid_fields({"limit": ["A whole number from 1 to 100."]})
        query["limit"] = int(args["limit"])
    return json_response(cases.list_notes(identifier(case_id, "case_id"), query))
