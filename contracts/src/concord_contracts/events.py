"""One closed schema per event. Payloads carry codes, statuses, identifiers and times:
never names, dates of birth, contact details, free text or evidence.

`EVENTS` is the catalogue: event type -> (producer, current version, schema per version).
A consumer accepts every version still listed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from concord_contracts.codes import (
    Agency,
    CaseStatus,
    Category,
    Channel,
    CloseReason,
    DeclineReason,
    Flag,
    Instrument,
    InvestigationStatus,
    RequestStatus,
    RevokeReason,
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


class ReferralTriaged(Payload):
    """The hub set the referral's urgency: the stated one, raised by a triage rule (named)
    where the referral's indicators or annotations call for it."""

    urgency = Code(Urgency, required=True)
    stated_urgency = Code(Urgency, required=True, allow_none=True)
    rule = CodeString(required=True, allow_none=True)
    triaged_at = UtcDateTime(required=True)


class ReferralDeclined(Payload):
    """An agency declined a referral routed to it, with a reason and perhaps a better agency;
    the referral goes back to the hub's intake officer."""

    agency = Code(Agency, required=True)
    reason = Code(DeclineReason, required=True)
    suggested_agency = Code(Agency, required=True, allow_none=True)
    declined_at = UtcDateTime(required=True)


class ReferralRevoked(Payload):
    """The hub withdrew a routing before the agency answered (shown as revoked, not done)."""

    agency = Code(Agency, required=True)
    reason = Code(RevokeReason, required=True, allow_none=True)
    revoked_at = UtcDateTime(required=True)


class ReferralEscalated(Payload):
    """An agency's acceptance clock ran out: the referral waits past its deadline."""

    agency = Code(Agency, required=True)
    reason = fields.String(required=True, validate=validate.OneOf(["acceptance_overdue"]))
    urgency = Code(Urgency, required=True)
    due_at = UtcDateTime(required=True)
    escalated_at = UtcDateTime(required=True)


class ReferralClosed(Payload):
    """The hub closed a referral no agency was working on, with a reason."""

    reason = Code(CloseReason, required=True)
    closed_at = UtcDateTime(required=True)


class ReferralLinked(Payload):
    """The referral is the same child's matter as another: its work continues under
    `linked_to`, and this coordination id is closed."""

    linked_to = fields.UUID(required=True)
    linked_at = UtcDateTime(required=True)


class ReferralFlagsChanged(Payload):
    """The pipeline row's flags changed; `flags` is the whole current set."""

    flags = fields.List(Code(Flag), required=True, validate=validate.Length(max=len(Flag)))
    changed_at = UtcDateTime(required=True)


# --- case_management ------------------------------------------------------------------


class CaseOpened(Payload):
    """Social services opened a case (an accepted referral, or registered directly); the
    child's record stays in `case_management`."""

    case_id = fields.UUID(required=True)
    status = Code(CaseStatus, required=True)
    opened_at = UtcDateTime(required=True)


class CaseStatusChanged(Payload):
    """A case's workflow status, derived from its record, changed (assessed, plan approved,
    services under way, closure requested, closed; or back, when a closure is rejected or
    a closed case reopened). Nothing else of the case travels."""

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
        _spec("referral.triaged", "referral", ReferralTriaged),
        _spec("referral.declined", "referral", ReferralDeclined),
        _spec("referral.revoked", "referral", ReferralRevoked),
        _spec("referral.escalated", "referral", ReferralEscalated),
        _spec("referral.closed", "referral", ReferralClosed),
        _spec("referral.linked", "referral", ReferralLinked),
        _spec("referral.flags_changed", "referral", ReferralFlagsChanged),
        _spec("case.opened", "case_management", CaseOpened),
        _spec("case.status_changed", "case_management", CaseStatusChanged),
        _spec("investigation.opened", "justice_liaison", InvestigationOpened),
        _spec("investigation.status_changed", "justice_liaison", InvestigationStatusChanged),
        _spec("request.filed", "cross_border", RequestFiled),
        _spec("request.status_changed", "cross_border", RequestStatusChanged),
    )
}


@functools.cache
def schema_instance(schema: type[Schema]) -> Schema:
    """One reusable instance per payload schema (they keep no state between calls)."""
    return schema()


def dump_payload(event_type: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The JSON form of a payload at the current version, checked against its schema.

    Raises InvalidEvent: a producer must never put an event the contract refuses in its outbox.
    """
    spec = EVENTS.get(event_type)
    if spec is None:
        raise InvalidEvent({"event_type": [f"Unknown event type {event_type!r}."]})
    schema = schema_instance(spec.schema)
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
        payload = schema_instance(schema).load(envelope.payload)
    except ValidationError as exc:
        raise InvalidEvent({"payload": exc.normalized_messages()}) from None
    return Envelope(**{**envelope.__dict__, "payload": payload})
