"""One mapping from anything that went wrong to an HTTP status and a JSON error body.

Messages are fixed per code: the text of an exception (which may come from another
service and may name a record) never reaches the response.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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

from concord_kit import errors as kit
from gateway.i18n import N_, Translator


@dataclass(frozen=True)
class Problem:
    status: int
    code: str
    message: str  # an English msgid, translated when the response is written
    fields: dict[str, Any] | None = None

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

_DATABASE_AWAY = frozenset({"OperationalError", "InterfaceError", "DisconnectionError"})

INTERNAL = Problem(500, "internal_error", N_("Something went wrong on our side. It was logged."))


def problem_for(exc: BaseException) -> Problem:
    if isinstance(exc, GatewayError):
        return exc.problem
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
    if isinstance(exc, UnknownService | ContainerBeingKilled) or stopping or database_away:
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
