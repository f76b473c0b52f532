"""One closed schema per event. Payloads carry codes, statuses, identifiers and times:
never names, dates of birth, contact details, free text or evidence.

`EVENTS` is the catalogue: event type -> (producer, current version, schema per version).
A consumer accepts every version still listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from concord_contracts.codes import (
    Agency,
    CaseStatus,
    Category,
    Channel,
    Instrument,
    InvestigationStatus,
    RequestStatus,
    Urgency,
)
from concord_contracts.envelope import Envelope, InvalidEvent, read_envelope
from concord_contracts.fields import Code, CodeString, UtcDateTime


class Payload(Schema):
    class Meta:
        unknown = RAISE


# --- referral -------------------------------------------------------------------------


class ReferralReceived(Payload):
    """A referral was registered; its details stay in `referral`."""

    channel = Code(Channel, required=True)
    categories = fields.List(Code(Category), required=True, validate=validate.Length(min=1))
    urgency = Code(Urgency, required=True)
    received_at = UtcDateTime(required=True)


class ReferralRouted(Payload):
    """The hub decided which agencies must act, and by which rule."""

    agencies = fields.List(Code(Agency), required=True, validate=validate.Length(min=1))
    urgency = Code(Urgency, required=True)
    categories = fields.List(Code(Category), required=True, validate=validate.Length(min=1))
    channel = Code(Channel, required=True)
    rule = CodeString(required=True)
    routed_at = UtcDateTime(required=True)


class ReferralAccepted(Payload):
    """An agency the referral was routed to took it on."""

    agency = Code(Agency, required=True)
    accepted_at = UtcDateTime(required=True)


# --- case_management ------------------------------------------------------------------


class CaseOpened(Payload):
    case_id = fields.UUID(required=True)
    status = Code(CaseStatus, required=True)
    opened_at = UtcDateTime(required=True)


class CaseStatusChanged(Payload):
    case_id = fields.UUID(required=True)
    status = Code(CaseStatus, required=True)
    changed_at = UtcDateTime(required=True)


# --- justice_liaison ------------------------------------------------------------------


class InvestigationOpened(Payload):
    investigation_id = fields.UUID(required=True)
    status = Code(InvestigationStatus, required=True)
    opened_at = UtcDateTime(required=True)


class InvestigationStatusChanged(Payload):
    investigation_id = fields.UUID(required=True)
    status = Code(InvestigationStatus, required=True)
    changed_at = UtcDateTime(required=True)


# --- cross_border ---------------------------------------------------------------------


class RequestFiled(Payload):
    """A request abroad was filed; the executing country is an ISO 3166-1 alpha-2 code."""

    request_id = fields.UUID(required=True)
    instrument = Code(Instrument, required=True)
    executing_country = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{2}$"))
    status = Code(RequestStatus, required=True)
    due_at = UtcDateTime(required=True, allow_none=True)
    filed_at = UtcDateTime(required=True)


class RequestStatusChanged(Payload):
    request_id = fields.UUID(required=True)
    status = Code(RequestStatus, required=True)
    due_at = UtcDateTime(required=True, allow_none=True)
    changed_at = UtcDateTime(required=True)


@dataclass(frozen=True)
class EventSpec:
    event_type: str
    producer: str
    version: int
    schemas: dict[int, type[Schema]]
    summary: str

    @property
    def schema(self) -> type[Schema]:
        return self.schemas[self.version]


def _spec(event_type: str, producer: str, schema: type[Schema]) -> EventSpec:
    return EventSpec(event_type, producer, 1, {1: schema}, (schema.__doc__ or "").strip())


EVENTS: dict[str, EventSpec] = {
    spec.event_type: spec
    for spec in (
        _spec("referral.received", "referral", ReferralReceived),
        _spec("referral.routed", "referral", ReferralRouted),
        _spec("referral.accepted", "referral", ReferralAccepted),
        _spec("case.opened", "case_management", CaseOpened),
        _spec("case.status_changed", "case_management", CaseStatusChanged),
        _spec("investigation.opened", "justice_liaison", InvestigationOpened),
        _spec("investigation.status_changed", "justice_liaison", InvestigationStatusChanged),
        _spec("request.filed", "cross_border", RequestFiled),
        _spec("request.status_changed", "cross_border", RequestStatusChanged),
    )
}


def dump_payload(event_type: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The JSON form of a payload at the current version, checked against its schema.

    Raises InvalidEvent: a producer must never put an event the contract refuses in its outbox.
    """
    spec = EVENTS.get(event_type)
    if spec is None:
        raise InvalidEvent({"event_type": [f"Unknown event type {event_type!r}."]})
    schema = spec.schema()
    try:
        dumped = schema.dump(payload)
        schema.load(dumped)
    except (ValidationError, AttributeError, TypeError, ValueError) as exc:
        errors = exc.normalized_messages() if isinstance(exc, ValidationError) else str(exc)
        raise InvalidEvent({"payload": errors}) from None
    return spec.version, dumped


def read_event(body: Any) -> Envelope:
    """Parse and validate a message body; the returned envelope's payload is deserialised
    (codes as enum members, times as datetimes). Raises InvalidEvent."""
    envelope = read_envelope(body)
    spec = EVENTS.get(envelope.event_type)
    if spec is None:
        raise InvalidEvent({"event_type": [f"Unknown event type {envelope.event_type!r}."]})
    if spec.producer != envelope.producer:
        raise InvalidEvent({"producer": [f"{envelope.event_type} is produced by {spec.producer}."]})
    schema = spec.schemas.get(envelope.schema_version)
    if schema is None:
        raise InvalidEvent({"schema_version": [f"Version {envelope.schema_version} unknown."]})
    try:
        payload = schema().load(envelope.payload)
    except ValidationError as exc:
        raise InvalidEvent({"payload": exc.normalized_messages()}) from None
    return Envelope(**{**envelope.__dict__, "payload": payload})
