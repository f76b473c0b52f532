"""Schemas of the RPC payloads between the gateway and the services, and between services.

These carry personal data where the caller is entitled to it (a referral's details pulled by
an agency it was routed to); they never travel on the event bus.
"""

from __future__ import annotations

import datetime as dt

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from concord_contracts.channels import channel_errors
from concord_contracts.codes import (
    AgeBand,
    AgeingBucket,
    Agency,
    AgencyStatus,
    Annotation,
    CaseStatus,
    Category,
    Channel,
    CloseReason,
    ConsentGivenBy,
    ConsentStatus,
    DeadlineClock,
    DeclineReason,
    Flag,
    HashAlgorithm,
    HopKind,
    IncidentType,
    Instrument,
    InvestigationStatus,
    LegalBasis,
    Measure,
    ReporterKind,
    RequestStatus,
    RevokeReason,
    RiskIndicator,
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


class ReportedChildSchema(Closed):
    """The child as a referral reports them. Which parts are required depends on the channel
    (a child's own report may carry no name at all: `concord_contracts.channels`); this
    schema checks each part given."""

    given_name = Text(max_length=100, load_default=None, allow_none=True)
    family_name = Text(max_length=100, load_default=None, allow_none=True)
    date_of_birth = fields.Date(load_default=None, allow_none=True)
    age_years = fields.Integer(
        strict=True,
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=0, max=MAX_AGE_YEARS),
    )
    sex = Code(Sex, load_default=None, allow_none=True)

    @validates_schema
    def _age_one_way(self, data, **kwargs):
        dob, age = data.get("date_of_birth"), data.get("age_years")
        if dob is not None and age is not None:
            raise ValidationError("Give date_of_birth or age_years, not both.", "age_years")
        if dob is not None:
            today = dt.date.today()
            if dob > today:
                raise ValidationError("Date of birth is in the future.", "date_of_birth")
            if (today - dob).days > (MAX_AGE_YEARS + 1) * 366:
                raise ValidationError("A child is under 18.", "date_of_birth")


HEX_DIGEST_LENGTH = {
    HashAlgorithm.md5: 32,
    HashAlgorithm.sha1: 40,
    HashAlgorithm.sha256: 64,
    HashAlgorithm.pdq: 64,
}


class FileHashSchema(Closed):
    """A file referenced by its digest: the file itself never enters Concord."""

    algorithm = Code(HashAlgorithm, required=True)
    digest = fields.String(
        required=True, validate=validate.Regexp(r"^[0-9a-fA-F]{32,128}$", error="Not a hex digest.")
    )

    @validates_schema
    def _length_fits(self, data, **kwargs):
        algorithm, digest = data.get("algorithm"), data.get("digest")
        if (
            algorithm is not None
            and digest is not None
            and (len(digest) != HEX_DIGEST_LENGTH[algorithm])
        ):
            raise ValidationError(
                f"A {algorithm} digest has {HEX_DIGEST_LENGTH[algorithm]} hex digits.",
                "digest",
            )


IDEMPOTENCY_KEY = r"^[A-Za-z0-9._:-]{1,128}$"
COUNTRY_CODE = r"^[A-Z]{2}$"


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
    """What an intake officer submits (`POST /api/v1/referrals`, one line of
    `POST /api/v1/referrals:batch`).

    `child`, `reporter`, `summary` and `consent` are required or not by channel, and so are
    the platform fields (`concord_contracts.channels`). `urgency` is what the reporter
    stated; triage may raise it, never lower it."""

    channel = Code(Channel, required=True)
    categories = fields.List(
        Code(Category), required=True, validate=validate.Length(min=1, max=len(Category))
    )
    urgency = Code(Urgency, load_default=None, allow_none=True)
    child = fields.Nested(ReportedChildSchema, load_default=None, allow_none=True)
    reporter = fields.Nested(ReporterSchema, load_default=None, allow_none=True)
    summary = Text(max_length=10_000, multiline=True, load_default=None, allow_none=True)
    consent = fields.Nested(ConsentSchema, load_default=None, allow_none=True)
    idempotency_key = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(IDEMPOTENCY_KEY, error="1 to 128 of A-Z a-z 0-9 . _ : -"),
        metadata={"description": "The same key again returns the first referral; nothing new."},
    )
    risk_indicators = fields.List(
        Code(RiskIndicator), load_default=list, validate=validate.Length(max=len(RiskIndicator))
    )
    annotations = fields.List(
        Code(Annotation), load_default=list, validate=validate.Length(max=len(Annotation))
    )
    platform = CodeString(load_default=None, allow_none=True)
    incident_type = Code(IncidentType, load_default=None, allow_none=True)
    external_reference = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(r"^[A-Za-z0-9._:/-]{1,128}$", error="1 to 128 of A-Za-z0-9._:/-"),
    )
    file_hashes = fields.List(
        fields.Nested(FileHashSchema), load_default=list, validate=validate.Length(max=100)
    )
    requesting_country = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(COUNTRY_CODE, error="An ISO 3166-1 alpha-2 code."),
    )

    @validates_schema
    def _codes_once(self, data, **kwargs):
        for name in ("categories", "risk_indicators", "annotations"):
            values = data.get(name) or []
            if len(set(values)) != len(values):
                raise ValidationError("Each code once.", name)

    @validates_schema
    def _what_the_channel_requires(self, data, **kwargs):
        errors = channel_errors(data)
        if errors:
            raise ValidationError(errors)


class SubmissionReceiptSchema(Closed):
    coordination_id = fields.UUID(required=True)
    received_at = UtcDateTime(required=True)
    urgency = Code(Urgency, required=True)
    routed_to = fields.List(Code(Agency), required=True)
    routing_rule = CodeString(load_default=None, allow_none=True)
    triage_rule = CodeString(load_default=None, allow_none=True)
    replayed = fields.Boolean(
        load_default=False,
        metadata={"description": "True when the idempotency key was seen before."},
    )
    possible_duplicates = fields.List(fields.UUID(), load_default=list)


class HubStatusSchema(Closed):
    """The hub's word on the pulling agency when it answered: routed to it, with its status
    there since when, as of `sequence`, the hub's last event sequence for the referral.
    Every hub event up to that sequence is in this answer: the agency keeps it in the unit
    of work that opens its record, and so takes any hub event with that sequence or lower,
    arriving late, as older than its acceptance (`concord_kit.partners`)."""

    agency = Code(Agency, required=True)
    status = Code(AgencyStatus, required=True)
    since = UtcDateTime(required=True)
    sequence = fields.Integer(strict=True, required=True, validate=validate.Range(min=0))


class ReferralDetailsSchema(ReferralSubmissionSchema):
    """What an agency the referral was routed to pulls when it accepts."""

    coordination_id = fields.UUID(required=True)
    received_at = UtcDateTime(required=True)
    hub_status = fields.Nested(HubStatusSchema, required=True)


class IntakeItemSchema(Closed):
    """A referral waiting for (or answered by) the caller's agency: codes and times only."""

    coordination_id = fields.UUID(required=True)
    received_at = UtcDateTime(required=True)
    channel = Code(Channel, required=True)
    categories = fields.List(Code(Category), required=True)
    urgency = Code(Urgency, required=True)
    status = Code(AgencyStatus, required=True)
    since = UtcDateTime(required=True)
    due_at = UtcDateTime(load_default=None, allow_none=True)


def _page_limit() -> fields.Integer:
    """How many rows a keyset page holds: 1 to 200, 50 unless asked."""
    return fields.Integer(strict=True, load_default=50, validate=validate.Range(min=1, max=200))


def _cursor() -> fields.String:
    """The `next_cursor` of the previous page, as given: opaque here, checked by its maker."""
    return fields.String(
        load_default=None, allow_none=True, validate=validate.Regexp(r"^[A-Za-z0-9_=-]{1,400}$")
    )


class IntakeQuerySchema(Closed):
    """`GET /api/v1/intake`: one page of the caller's agency's intake queue."""

    limit = _page_limit()
    cursor = _cursor()


class IntakePageSchema(Closed):
    """The intake queue, a page at a time: what still waits for an answer first, most
    urgent first, newest first."""

    items = fields.List(fields.Nested(IntakeItemSchema), required=True)
    next_cursor = fields.String(
        required=True, allow_none=True, metadata={"description": "Null on the last page."}
    )


class AgencyStatusSchema(Closed):
    """One agency's position on one referral. The list and the row add what each needs."""

    status = Code(AgencyStatus, required=True)
    since = UtcDateTime(required=True)
    due_at = UtcDateTime(load_default=None, allow_none=True)
    overdue = fields.Boolean(load_default=False)
    routed = fields.Boolean(load_default=None, allow_none=True)
    rule = CodeString(load_default=None, allow_none=True)
    detail = CodeString(load_default=None, allow_none=True)
    decline_reason = Code(DeclineReason, load_default=None, allow_none=True)
    suggested_agency = Code(Agency, load_default=None, allow_none=True)
    revoke_reason = Code(RevokeReason, load_default=None, allow_none=True)


class TimelineHopSchema(Closed):
    """One step of a referral's timeline, and how long it lasted (codes and times only)."""

    at = UtcDateTime(required=True)
    kind = Code(HopKind, required=True)
    agency = Code(Agency, load_default=None, allow_none=True)
    status = CodeString(load_default=None, allow_none=True)
    detail = CodeString(load_default=None, allow_none=True)
    time_spent_seconds = fields.Integer(required=True)
    ongoing = fields.Boolean(required=True)


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
    stage_since = UtcDateTime(load_default=None, allow_none=True)
    due_at = UtcDateTime(load_default=None, allow_none=True)
    overdue = fields.Boolean(load_default=False)
    updated_at = UtcDateTime(load_default=None, allow_none=True)
    close_reason = Code(CloseReason, load_default=None, allow_none=True)
    closed_at = UtcDateTime(load_default=None, allow_none=True)
    linked_to = fields.UUID(load_default=None, allow_none=True)
    timeline = fields.List(fields.Nested(TimelineHopSchema), load_default=list)


def _codes(enum) -> fields.Field:
    return fields.List(Code(enum), load_default=list, validate=validate.Length(max=len(enum)))


class PipelineFiltersSchema(Closed):
    """Filters of the coordinators' pipeline (`GET /api/v1/pipeline`); lists mean any of."""

    stage = _codes(Stage)
    agency = _codes(Agency)
    agency_status = _codes(AgencyStatus)
    urgency = _codes(Urgency)
    category = _codes(Category)
    channel = _codes(Channel)
    flag = _codes(Flag)
    received_from = UtcDateTime(load_default=None, allow_none=True)
    received_to = UtcDateTime(load_default=None, allow_none=True)

    @validates_schema
    def _range(self, data, **kwargs):
        start, end = data.get("received_from"), data.get("received_to")
        if start is not None and end is not None and end <= start:
            raise ValidationError("Must be after received_from.", "received_to")


class PipelineQuerySchema(PipelineFiltersSchema):
    sort = fields.String(
        load_default="priority", validate=validate.OneOf(["priority", "oldest", "newest"])
    )
    limit = _page_limit()
    cursor = _cursor()
    counts = fields.Boolean(load_default=None, allow_none=True)


class PipelinePageSchema(Closed):
    items = fields.List(fields.Nested(PipelineRowSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)
    counts = fields.Dict(keys=Code(Stage), values=fields.Integer(), required=True, allow_none=True)
    pipeline_version = fields.String(required=True)


class FunnelStepSchema(Closed):
    stage = Code(Stage, required=True)
    count = fields.Integer(required=True)


class PipelineSummarySchema(Closed):
    """Counts per stage, the funnel (how many reached each stage) and the ageing of what is
    open (how long items have waited in their current stage, bucketed)."""

    counts = fields.Dict(keys=Code(Stage), values=fields.Integer(), required=True)
    funnel = fields.List(fields.Nested(FunnelStepSchema), required=True)
    ageing = fields.Dict(
        keys=Code(Stage),
        values=fields.Dict(keys=Code(AgeingBucket), values=fields.Integer()),
        required=True,
    )
    pipeline_version = fields.String(required=True)
    as_of = UtcDateTime(required=True)


class PipelineVersionSchema(Closed):
    pipeline_version = fields.String(required=True)


# --- the hub's decisions and the agencies' answers ----------------------------------------


class DeclineSchema(Closed):
    """An agency declines a referral routed to it: a reason is required."""

    reason = Code(DeclineReason, required=True)
    better_agency = Code(Agency, load_default=None, allow_none=True)


class RevokeSchema(Closed):
    agency = Code(Agency, required=True)
    reason = Code(RevokeReason, load_default=None, allow_none=True)


class RerouteSchema(Closed):
    """The intake officer routes a referral (again) to these agencies. Without consent on
    record, a legal basis is required: the one given here is recorded with the officer who
    decided it (else the one already on record stands)."""

    agencies = fields.List(
        Code(Agency), required=True, validate=validate.Length(min=1, max=len(Agency))
    )
    legal_basis = Code(LegalBasis, load_default=None, allow_none=True)

    @validates_schema
    def _agencies_once(self, data, **kwargs):
        agencies = data.get("agencies") or []
        if len(set(agencies)) != len(agencies):
            raise ValidationError("Each agency once.", "agencies")


class CloseSchema(Closed):
    reason = Code(CloseReason, required=True)


class LinkSchema(Closed):
    duplicate_of = fields.UUID(required=True)


class DismissDuplicateSchema(Closed):
    other = fields.UUID(required=True)


class BatchItemResultSchema(Closed):
    """One report of a batch: created, replayed (its idempotency key was seen before:
    nothing created) or rejected (`errors` names each field, like a 422)."""

    index = fields.Integer(required=True, metadata={"description": "0-based, body order."})
    line = fields.Integer(
        load_default=None, metadata={"description": "1-based line number (JSON lines)."}
    )
    idempotency_key = fields.String(required=True, allow_none=True)
    status = fields.String(
        required=True, validate=validate.OneOf(["created", "replayed", "rejected"])
    )
    coordination_id = fields.UUID(load_default=None, allow_none=True)
    urgency = Code(Urgency, load_default=None, allow_none=True)
    routed_to = fields.List(Code(Agency), load_default=None, allow_none=True)
    errors = fields.Dict(load_default=None, allow_none=True)


class BatchResultSchema(Closed):
    results = fields.List(fields.Nested(BatchItemResultSchema), required=True)
    created = fields.Integer(required=True)
    replayed = fields.Integer(required=True)
    rejected = fields.Integer(required=True)


class RoutingDecisionSchema(Closed):
    decided_at = UtcDateTime(required=True)
    decided_by = fields.String(required=True)
    role = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["initial", "reroute"]))
    agencies = fields.List(Code(Agency), required=True)
    rule = CodeString(required=True)
    consent_status = Code(ConsentStatus, load_default=None, allow_none=True)
    legal_basis = Code(LegalBasis, load_default=None, allow_none=True)
    legal_basis_decided_by = fields.String(load_default=None, allow_none=True)


class TriageSchema(Closed):
    stated_urgency = Code(Urgency, required=True, allow_none=True)
    urgency = Code(Urgency, required=True)
    rule = CodeString(required=True, allow_none=True)
    risk_indicators = fields.List(Code(RiskIndicator), required=True)


class PossibleDuplicateSchema(Closed):
    coordination_id = fields.UUID(required=True)
    channel = Code(Channel, required=True)
    received_at = UtcDateTime(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["open", "linked", "dismissed"]))


class ConsentRecordSchema(ConsentSchema):
    """Consent as recorded, with who recorded it (the legal basis for routing without it)."""

    decided_by = fields.String(load_default=None, allow_none=True)
    decided_at = UtcDateTime(load_default=None, allow_none=True)


class ReferralDetailSchema(Closed):
    """The referral as the intake officer sees it: identities, routing and history.

    Only intake officers receive this (`referral.referral_detail`); every read is audited."""

    coordination_id = fields.UUID(required=True)
    received_at = UtcDateTime(required=True)
    submitted_by = fields.String(required=True)
    channel = Code(Channel, required=True)
    categories = fields.List(Code(Category), required=True)
    urgency = Code(Urgency, required=True)
    age_band = Code(AgeBand, required=True)
    child = fields.Nested(ReportedChildSchema, required=True, allow_none=True)
    reporter = fields.Nested(ReporterSchema, required=True, allow_none=True)
    summary = Text(max_length=10_000, multiline=True, required=True, allow_none=True)
    consent = fields.Nested(ConsentRecordSchema, required=True, allow_none=True)
    idempotency_key = fields.String(required=True, allow_none=True)
    annotations = fields.List(Code(Annotation), required=True)
    platform = CodeString(required=True, allow_none=True)
    incident_type = Code(IncidentType, required=True, allow_none=True)
    external_reference = fields.String(required=True, allow_none=True)
    file_hashes = fields.List(fields.Nested(FileHashSchema), required=True)
    requesting_country = fields.String(required=True, allow_none=True)
    triage = fields.Nested(TriageSchema, required=True)
    stage = Code(Stage, required=True)
    flags = fields.List(Code(Flag), required=True)
    agencies = fields.Dict(
        keys=Code(Agency), values=fields.Nested(AgencyStatusSchema), required=True
    )
    routing = fields.List(fields.Nested(RoutingDecisionSchema), required=True)
    timeline = fields.List(fields.Nested(TimelineHopSchema), required=True)
    possible_duplicates = fields.List(fields.Nested(PossibleDuplicateSchema), required=True)
    linked_to = fields.UUID(required=True, allow_none=True)
    linked_referrals = fields.List(fields.UUID(), required=True)
    close_reason = Code(CloseReason, required=True, allow_none=True)
    closed_at = UtcDateTime(required=True, allow_none=True)


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
