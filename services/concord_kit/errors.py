"""Errors a service raises to its callers.

Each is registered with nameko so that it crosses RPC as itself (with its arguments),
and the gateway maps it to one HTTP status.
"""

from __future__ import annotations

import uuid

from nameko.exceptions import deserialize_to_instance


class ConcordError(Exception):
    """Base of the errors callers are expected to handle."""

    http_status = 500


@deserialize_to_instance
class BadInput(ConcordError):
    """The request names fields that are wrong: ``errors`` maps each field to its messages."""

    http_status = 422

    def __init__(self, errors: dict):
        super().__init__(errors)
        self.errors = errors


@deserialize_to_instance
class NotFound(ConcordError):
    http_status = 404


@deserialize_to_instance
class Forbidden(ConcordError):
    """The caller is known but may not do this (the refusal is audited by the owner)."""

    http_status = 403


@deserialize_to_instance
class Unauthenticated(ConcordError):
    """No caller identity travelled with the call."""

    http_status = 401


@deserialize_to_instance
class Conflict(ConcordError):
    """The record is not in a state that allows this."""

    http_status = 409


@deserialize_to_instance
class ServiceUnavailable(ConcordError):
    """A service this call needs did not answer in time."""

    http_status = 503


def parse_uuid(value: object, field: str) -> uuid.UUID:
    """An identifier a caller sent, or `BadInput` naming the field (never a 500)."""
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        raise BadInput({field: ["Not a valid identifier."]}) from None
