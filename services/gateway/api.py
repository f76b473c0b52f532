"""The JSON API under /api/v1/: validate what comes in, call the owning service, pass its
answer on unchanged.

Each handler takes the exchange and the service clients it needs; the services check again
everything the gateway checks (authorisation is theirs to enforce).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from marshmallow import Schema, ValidationError
from werkzeug.wrappers import Response

from concord_contracts.codes import REFERENCE_LISTS, Organisation
from concord_contracts.rpc import ReferralSubmissionSchema
from concord_kit import errors as kit
from gateway import errors, i18n
from gateway.auth import Principal, Tokens
from gateway.schemas import TokenRequestSchema
from gateway.users import Account
from gateway.web import Exchange, client_address, json_response, read_json


def validated_body(ex: Exchange, schema: Schema) -> Any:
    """The JSON body as sent, once `schema` accepts it (422 naming each field otherwise)."""
    body = read_json(ex.request)
    try:
        schema.load(body)
    except ValidationError as exc:
        raise errors.invalid_fields(exc.normalized_messages()) from None
    return body


def coordination_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise errors.invalid_fields({"coordination_id": ["Not a valid UUID."]}) from None


def issue_token(
    ex: Exchange, tokens: Tokens, authenticate: Callable[[str, str, str], Account | None]
) -> Response:
    body = validated_body(ex, TokenRequestSchema())
    account = authenticate(body["username"], body["password"], client_address(ex.request))
    if account is None:
        raise errors.invalid_credentials()
    issued = tokens.issue(account.id, account.role, account.agency)
    return json_response(
        {
            "access_token": issued.access_token,
            "token_type": "bearer",
            "expires_in": issued.expires_in,
        }
    )


def submit_referral(ex: Exchange, referral) -> Response:
    """201 with the receipt; 200 with the first receipt when its idempotency key was seen
    before (`replayed`: nothing was created)."""
    body = validated_body(ex, ReferralSubmissionSchema())
    receipt = referral.submit_referral(body)
    return json_response(receipt, 200 if receipt.get("replayed") else 201)


def accept_referral(principal: Principal, cid: str, case_management, justice_liaison) -> dict:
    """The accepting agency's own service opens its record: a case or an investigation."""
    if principal.agency == Organisation.social_services:
        return case_management.accept_referral(cid)
    if principal.agency == Organisation.justice:
        return justice_liaison.accept_referral(cid)
    raise kit.Forbidden("this agency does not accept referrals")


def accept(ex: Exchange, cid: str, open_record: Callable[[Principal, str], dict]) -> Response:
    assert ex.principal is not None
    return json_response(open_record(ex.principal, coordination_id(cid)))


def pipeline_row(ex: Exchange, cid: str, referral) -> Response:
    return json_response(referral.pipeline_row(coordination_id(cid)))


def reference_list(ex: Exchange, name: str) -> Response:
    if name not in REFERENCE_LISTS:
        raise errors.not_found()
    return json_response(
        [
            {"code": code.value, "label": i18n.label(ex.language, name, code.value)}
            for code in REFERENCE_LISTS[name]
        ]
    )


def own_health(database_ok: bool) -> dict:
    """The gateway's health in the shape every service answers (it has no outbox)."""
    return {
        "service": "gateway",
        "status": "ok" if database_ok else "degraded",
        "database": "ok" if database_ok else "unreachable",
        "outbox_pending": 0,
    }


def health(ex: Exchange, probes: dict[str, Any], database_ok: bool) -> Response:
    """Each service's own health, asked of all at once; 503 unless every one is ok."""
    pending = {}
    gateway = {key: value for key, value in own_health(database_ok).items() if key != "service"}
    report: dict[str, dict] = {"gateway": gateway}
    for name, probe in probes.items():
        try:
            pending[name] = probe.call_async("health")
        except kit.ServiceUnavailable:
            report[name] = {"status": "unavailable"}
    for name, call in pending.items():
        try:
            answer = call.result()
            report[name] = {
                "status": answer.get("status", "degraded"),
                "database": answer.get("database"),
                "outbox_pending": answer.get("outbox_pending"),
            }
        except Exception:  # noqa: BLE001 - a probe reports any failure, it does not raise
            report[name] = {"status": "unavailable"}
    ok = all(entry["status"] == "ok" for entry in report.values())
    return json_response(
        {"status": "ok" if ok else "degraded", "services": report}, 200 if ok else 503
    )
