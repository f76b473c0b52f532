"""The event envelope: the one shape every event on the bus has (shared/DESIGN.md)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from concord_contracts.fields import UtcDateTime


class InvalidEvent(Exception):
    """A message that is not a valid Concord event; it can never succeed and is parked."""

    def __init__(self, errors: dict):
        super().__init__(errors)
        self.errors = errors


class EnvelopeSchema(Schema):
    class Meta:
        unknown = RAISE

    event_id = fields.UUID(required=True)
    event_type = fields.String(required=True, validate=validate.Regexp(r"^[a-z_]+\.[a-z_]+$"))
    schema_version = fields.Integer(required=True, validate=validate.Range(min=1))
    occurred_at = UtcDateTime(required=True)
    # Which producer may publish which event type is the catalogue's business (events.py).
    producer = fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z_]{0,63}$"))
    coordination_id = fields.UUID(required=True)
    sequence = fields.Integer(required=True, validate=validate.Range(min=1))
    correlation_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    causation_id = fields.UUID(required=True, allow_none=True)
    payload = fields.Dict(required=True)


# One instance, reused: a marshmallow schema keeps no state between loads and dumps, and
# building one per message costs more than reading the message (benchmarks/).
_ENVELOPE_SCHEMA = EnvelopeSchema()


@dataclass(frozen=True)
class Envelope:
    event_id: uuid.UUID
    event_type: str
    schema_version: int
    occurred_at: dt.datetime
    producer: str
    coordination_id: uuid.UUID
    sequence: int
    correlation_id: str
    causation_id: uuid.UUID | None
    payload: dict[str, Any] = field(default_factory=dict)

    def to_message(self) -> dict[str, Any]:
        """The JSON-able body published on the bus."""
        return _ENVELOPE_SCHEMA.dump(self)


def new_envelope(
    *,
    event_type: str,
    schema_version: int,
    producer: str,
    coordination_id: uuid.UUID,
    sequence: int,
    correlation_id: str,
    payload: dict[str, Any],
    causation_id: uuid.UUID | None = None,
    occurred_at: dt.datetime | None = None,
) -> Envelope:
    return Envelope(
        event_id=uuid.uuid4(),
        event_type=event_type,
        schema_version=schema_version,
        occurred_at=occurred_at or dt.datetime.now(dt.UTC),
        producer=producer,
        coordination_id=coordination_id,
        sequence=sequence,
        correlation_id=correlation_id,
        causation_id=causation_id,
        payload=payload,
    )


def read_envelope(body: Any) -> Envelope:
    """Parse a message body into an Envelope, or raise InvalidEvent naming what is wrong."""
    if not isinstance(body, dict):
        raise InvalidEvent({"_schema": ["An event is a JSON object."]})
    try:
        data = _ENVELOPE_SCHEMA.load(body)
    except ValidationError as exc:
        raise InvalidEvent(exc.normalized_messages()) from None
    return Envelope(**data)
