"""One mapping from anything that went wrong to an HTTP status and a JSON error body.

Messages are fixed per code: the text of an exception (which may come from another
service and may name a record) never reaches the response.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amqp.exceptions import ConnectionError as AMQPConnectionError
from amqp.exceptions import RecoverableConnectionError
from kombu.exceptions import OperationalError as KombuOperationalError
from marshmallow import ValidationError
from nameko.exceptions import (
    ContainerBeingKilled,
    IncorrectSignature,
    MalformedRequest,
    MethodNotFound,
    RemoteError,
    UnknownService,
)
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

from concord_contracts.cases import ConflictCode
from concord_kit import errors as kit
from gateway.i18n import N_, Translator


@dataclass(frozen=True)
class Problem:
    status: int
    code: str
    message: str  # an English msgid, translated when the response is written
    fields: dict[str, Any] | None = None
    retry_after: int | None = None  # seconds, sent as Retry-After

    @property
    def expected(self) -> bool:
        """False for a fault on our side, which is worth a log line of its own."""
        return self.status < 500 or self.code in {"service_unavailable", "bad_gateway"}


class GatewayError(Exception):
    """A request the gateway itself refuses (before any service is called)."""

    def __init__(self, problem: Problem):
        super().__init__(problem.code)
        self.problem = problem


def invalid_json() -> GatewayError:
    return GatewayError(Problem(400, "invalid_json", N_("The request body is not valid JSON.")))


def payload_too_large() -> GatewayError:
    return GatewayError(Problem(413, "payload_too_large", N_("The request body is too large.")))


def not_found() -> GatewayError:
    return GatewayError(Problem(404, "not_found", N_("Nothing was found here.")))


def invalid_credentials() -> GatewayError:
    # One answer for an unknown username and a wrong password: neither is confirmed.
    return GatewayError(
        Problem(401, "invalid_credentials", N_("The username or the password is not right."))
    )


def too_many_attempts(retry_after: int) -> GatewayError:
    # The same answer whichever count refused it (user name or address): neither is confirmed.
    return GatewayError(
        Problem(
            429,
            "too_many_attempts",
            N_("Too many failed sign-ins. Wait a moment, then try again."),
            retry_after=retry_after,
        )
    )


def invalid_fields(fields: dict[str, Any]) -> GatewayError:
    return GatewayError(Problem(422, "invalid_input", _INVALID_INPUT, fields))


_INVALID_INPUT = N_("Some fields are not valid; each is named with what is wrong.")

_KIT: dict[type[kit.ConcordError], tuple[str, str]] = {
    kit.BadInput: ("invalid_input", _INVALID_INPUT),
    kit.NotFound: ("not_found", N_("Nothing was found here.")),
    kit.Forbidden: ("forbidden", N_("You are not allowed to do this.")),
    kit.Unauthenticated: ("unauthenticated", N_("Sign in to continue.")),
    kit.Conflict: ("conflict", N_("This record is not in a state that allows this.")),
    kit.ServiceUnavailable: (
        "service_unavailable",
        N_("A service this needs is not answering. Try again in a moment."),
    ),
}

_HTTP: dict[int, tuple[str, str]] = {
    400: ("bad_request", N_("The request is malformed.")),
    404: ("not_found", N_("Nothing was found here.")),
    405: ("method_not_allowed", N_("This method is not allowed here.")),
    413: ("payload_too_large", N_("The request body is too large.")),
}

_BROKER_AWAY = (
    KombuOperationalError,
    AMQPConnectionError,
    RecoverableConnectionError,
    ConnectionError,
)
_DATABASE_AWAY = frozenset({"OperationalError", "InterfaceError", "DisconnectionError"})

INTERNAL = Problem(500, "internal_error", N_("Something went wrong on our side. It was logged."))

# Said by the API and by the case pages alike.
FOUR_EYES_REFUSAL = N_("You wrote or requested this yourself: another supervisor decides on it.")

# Every 409 (a case's or a referral's) by the code the service raised `Conflict` with; one
# raised without a code answers `conflict`.
CONFLICT_MESSAGES: dict[ConflictCode, str] = {
    ConflictCode.stale_version: N_(
        "The case changed since you read it. Nothing was saved: read it again."
    ),
    ConflictCode.four_eyes: FOUR_EYES_REFUSAL,
    ConflictCode.wrong_state: _KIT[kit.Conflict][1],
    ConflictCode.already_with_agency: N_(
        "An agency you named already has this referral. Nothing was changed."
    ),
    ConflictCode.agency_working: N_(
        "An agency is working on this referral: it closes its own record. Nothing was changed."
    ),
    ConflictCode.link_to_primary: N_(
        "The referral to keep is itself a duplicate. Nothing was changed: link to the one "
        "it is a duplicate of."
    ),
}


def conflict_code(exc: kit.Conflict) -> ConflictCode | None:
    """The code a 409 was raised with (its first argument), None when it has none. Only the
    code is read: the text after it may name a record."""
    said = exc.args[0] if exc.args else None
    try:
        return ConflictCode(said) if isinstance(said, str) else None
    except ValueError:
        return None


def problem_for(exc: BaseException) -> Problem:
    if isinstance(exc, GatewayError):
        return exc.problem
    if isinstance(exc, kit.Conflict) and (conflict := conflict_code(exc)) is not None:
        return Problem(exc.http_status, conflict.value, CONFLICT_MESSAGES[conflict])
    if isinstance(exc, kit.ConcordError):
        for cls in type(exc).__mro__:
            if cls in _KIT:
                code, message = _KIT[cls]
                fields = exc.errors if isinstance(exc, kit.BadInput) else None
                return Problem(exc.http_status, code, message, _json_fields(fields))
        return INTERNAL
    if isinstance(exc, ValidationError):
        return Problem(
            422, "invalid_input", _INVALID_INPUT, _json_fields(exc.normalized_messages())
        )
    # A service shutting down answers ContainerBeingKilled (as a RemoteError): try again.
    stopping = isinstance(exc, RemoteError) and exc.exc_type == ContainerBeingKilled.__name__
    # A database that is restarting or unreachable (the gateway's own, or a service's that
    # answered with it) is transient too: nothing was written, try again (the fault suite).
    database_away = isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError) or (
        isinstance(exc, RemoteError) and exc.exc_type in _DATABASE_AWAY
    )
    # So is the broker (restarting: the call could not even be sent, or its connection broke).
    broker_away = isinstance(exc, _BROKER_AWAY)
    if (
        isinstance(exc, UnknownService | ContainerBeingKilled)
        or stopping
        or database_away
        or broker_away
    ):
        code, message = _KIT[kit.ServiceUnavailable]
        return Problem(503, code, message)
    if isinstance(exc, RemoteError | MethodNotFound | IncorrectSignature | MalformedRequest):
        # A service failed in a way it did not declare, or does not have the method
        # (another version): its fault or ours, never the caller's.
        return Problem(502, "bad_gateway", N_("A service this needs failed. It was logged."))
    if isinstance(exc, HTTPException) and exc.code in _HTTP:
        code, message = _HTTP[exc.code]
        return Problem(exc.code, code, message)
    return INTERNAL


def _json_fields(fields: Any) -> dict[str, Any] | None:
    """Field errors as JSON wants them (marshmallow keys list positions by int)."""
    if fields is None:
        return None
    if isinstance(fields, dict):
        return {str(key): _json_value(value) for key, value in fields.items()}
    return {"_schema": _json_value(fields)}


def _json_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def error_body(problem: Problem, t: Translator) -> dict[str, Any]:
    error: dict[str, Any] = {"code": problem.code, "message": t.gettext(problem.message)}
    if problem.fields:
        error["fields"] = problem.fields
    return {"error": error}
