"""Schemas of the RPC payloads between the gateway and the services, and between services.

These carry personal data where the caller is entitled to it (a referral's details pulled by
an agency it was routed to); they never travel on the event bus.
"""

from __future__ import annotations

import datetime as dt

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from concord_contracts.codes import (
    Agency,
    AgencyStatus,
    CaseStatus,
    Category,
    Channel,
    ConsentGivenBy,
    ConsentStatus,
    DeadlineClock,
    Flag,
    Instrument,
    InvestigationStatus,
    LegalBasis,
    Measure,
    ReporterKind,
    RequestStatus,
    Sex,
    Stage,
    Urgency,
)
from concord_contracts.fields import Code, CodeString, Text, UtcDateTime

MAX_AGE_YEARS = 17


class Closed(Schema):
    """Every contract refuses fields it does not know."""

    class Meta:
        unknown = RAISE


class ChildSchema(Closed):
    given_name = Text(max_length=100, required=True)
    family_name = Text(max_length=100, load_default=None, allow_none=True)
    date_of_birth = fields.Date(load_default=None, allow_none=True)
    age_years = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=0, max=MAX_AGE_YEARS)
    )
    sex = Code(Sex, required=True)

    @validates_schema
    def _age_known_one_way(self, data, **kwargs):
        dob, age = data.get("date_of_birth"), data.get("age_years")
        if dob is None and age is None:
            raise ValidationError("Give date_of_birth or age_years.", "date_of_birth")
        if dob is not None and age is not None:
            raise ValidationError("Give date_of_birth or age_years, not both.", "age_years")
        if dob is not None:
            today = dt.date.today()
            if dob > today:
                raise ValidationError("Date of birth is in the future.", "date_of_birth")
            if (today - dob).days > (MAX_AGE_YEARS + 1) * 366:
                raise ValidationError("A child is under 18.", "date_of_birth")


class ContactSchema(Closed):
    name = Text(max_length=200, load_default=None, allow_none=True)
    phone = Text(
        max_length=40,
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(r"^\+?[0-9 ()\-]{3,40}$"),
    )
    email = fields.Email(load_default=None, allow_none=True, validate=validate.Length(max=254))


class ReporterSchema(Closed):
    kind = Code(ReporterKind, required=True)
    contact = fields.Nested(ContactSchema, load_default=None, allow_none=True)


class ConsentSchema(Closed):
    status = Code(ConsentStatus, required=True)
    by = Code(ConsentGivenBy, required=True)
    legal_basis = Code(LegalBasis, load_default=None, allow_none=True)

    @validates_schema
    def _basis_when_no_consent(self, data, **kwargs):
        if data.get("status") != ConsentStatus.given and data.get("legal_basis") is None:
            raise ValidationError(
                "A legal basis is required when consent is not given.", "legal_basis"
            )


class ReferralSubmissionSchema(Closed):
    """What an intake officer submits (`POST /api/v1/referrals`)."""

    channel = Code(Channel, required=True)
    categories = fields.List(
        Code(Category), required=True, validate=validate.Length(min=1, max=len(Category))
    )
    urgency = Code(Urgency, required=True)
    child = fields.Nested(ChildSchema, required=True)
    reporter = fields.Nested(ReporterSchema, required=True)
    summary = Text(max_length=10_000, multiline=True, required=True)
    consent = fields.Nested(ConsentSchema, required=True)

    @validates_schema
    def _categories_once(self, data, **kwargs):
        categories = data.get("categories") or []
        if len(set(categories)) != len(categories):
            raise ValidationError("Each category once.", "categories")


class SubmissionReceiptSchema(Closed):
    coordination_id = fields.UUID(required=True)
    received_at = UtcDateTime(required=True)
    urgency = Code(Urgency, required=True)
    routed_to = fields.List(Code(Agency), required=True)


class ReferralDetailsSchema(ReferralSubmissionSchema):
    """What an agency the referral was routed to pulls when it accepts."""

    coordination_id = fields.UUID(required=True)
    received_at = UtcDateTime(required=True)


class IntakeItemSchema(Closed):
    """A referral waiting for (or answered by) the caller's agency: codes and times only."""

    coordination_id = fields.UUID(required=True)
    received_at = UtcDateTime(required=True)
    channel = Code(Channel, required=True)
    categories = fields.List(Code(Category), required=True)
    urgency = Code(Urgency, required=True)
    status = Code(AgencyStatus, required=True)
    since = UtcDateTime(required=True)


class AgencyStatusSchema(Closed):
    status = Code(AgencyStatus, required=True)
    since = UtcDateTime(required=True)


class PipelineRowSchema(Closed):
    """The coordinated status of one coordination id: no identities, no free text."""

    coordination_id = fields.UUID(required=True)
    stage = Code(Stage, required=True)
    urgency = Code(Urgency, required=True)
    channel = Code(Channel, required=True)
    categories = fields.List(Code(Category), required=True)
    received_at = UtcDateTime(required=True)
    agencies = fields.Dict(
        keys=Code(Agency), values=fields.Nested(AgencyStatusSchema), required=True
    )
    flags = fields.List(Code(Flag), required=True)


class CaseOpenedReceiptSchema(Closed):
    case_id = fields.UUID(required=True)
    coordination_id = fields.UUID(required=True)
    status = Code(CaseStatus, required=True)
    opened_at = UtcDateTime(required=True)


class InvestigationOpenedReceiptSchema(Closed):
    investigation_id = fields.UUID(required=True)
    coordination_id = fields.UUID(required=True)
    status = Code(InvestigationStatus, required=True)
    opened_at = UtcDateTime(required=True)


class PartnerStatusSchema(Closed):
    """A partner agency's status as an agency keeps it on its own record: a code (the hub's
    agency status, or the partner's own case, investigation or request status), since when,
    and a request abroad's legal deadline where it has one."""

    status = CodeString(required=True)
    since = UtcDateTime(required=True)
    due_at = UtcDateTime(load_default=None, allow_none=True)


class CaseSchema(Closed):
    """A social-services case, as its assigned social worker or a supervisor reads it."""

    case_id = fields.UUID(required=True)
    coordination_id = fields.UUID(required=True)
    status = Code(CaseStatus, required=True)
    opened_at = UtcDateTime(required=True)
    assigned_to = fields.String(required=True, validate=validate.Length(min=1, max=64))
    child = fields.Nested(ChildSchema, required=True)
    partners = fields.Dict(
        keys=Code(Agency), values=fields.Nested(PartnerStatusSchema), required=True
    )


class CrossBorderRequestSchema(Closed):
    """A request abroad as a police liaison officer or the central authority files it.

    Codes only: the persons and identifiers it concerns are added in later issues, minimal
    and pseudonymised (shared/DOMAIN.md, cross-border requests)."""

    instrument = Code(Instrument, required=True)
    executing_country = fields.String(
        required=True, validate=validate.Regexp(r"^[A-Z]{2}$", error="An ISO 3166-1 alpha-2 code.")
    )
    # A threat to a child is an emergency. Strictly true or false: "yes" is not an answer.
    emergency = fields.Boolean(required=True, truthy={True}, falsy={False})
    measures = fields.List(
        Code(Measure), required=True, validate=validate.Length(min=1, max=len(Measure))
    )

    @validates_schema
    def _measures_once(self, data, **kwargs):
        measures = data.get("measures") or []
        if len(set(measures)) != len(measures):
            raise ValidationError("Each measure once.", "measures")


class RequestFiledReceiptSchema(Closed):
    """What filing a request abroad answers: its identifier, status and deadline.

    `clock` says what `due_at` is for (acknowledgement, data production, the preservation
    period); both are null where the law sets no deadline (mutual legal assistance), and
    `silence_warning_at` says when to chase an answer instead."""

    request_id = fields.UUID(required=True)
    coordination_id = fields.UUID(required=True)
    instrument = Code(Instrument, required=True)
    executing_country = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{2}$"))
    emergency = fields.Boolean(required=True)
    measures = fields.List(Code(Measure), required=True)
    status = Code(RequestStatus, required=True)
    filed_at = UtcDateTime(required=True)
    clock = Code(DeadlineClock, required=True, allow_none=True)
    due_at = UtcDateTime(required=True, allow_none=True)
    silence_warning_at = UtcDateTime(required=True, allow_none=True)


class HealthSchema(Closed):
    service = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["ok", "degraded"]))
    database = fields.String(required=True)
    outbox_pending = fields.Integer(required=True)
