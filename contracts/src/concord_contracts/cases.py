"""Schemas of social services' case work (issue 4): what the gateway and `case_management`
exchange by RPC, and what the JSON API takes and answers.

These carry the child's record and the social workers' texts: they never travel on the
event bus (a case's events carry its derived workflow status only, see `events.py`).

Input schemas are closed (an unknown field is refused by name). The same schemas dump the
answers; their code and date fields accept what the service stored (a code as a plain
string, a date as an ISO string) as well as typed values.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from concord_contracts.codes import (
    Agency,
    CaseOrigin,
    CaseStatus,
    Category,
    ClosureReason,
    ClosureWarning,
    DeclineReason,
    Disability,
    FamilyRelation,
    FollowUpKind,
    FollowUpStatus,
    Instrument,
    NeedDomain,
    NeedLevel,
    PersonRelation,
    PlanState,
    RequestStatus,
    RevokeReason,
    RiskLevel,
    SafetyConcern,
    ServiceKind,
    ServiceStatus,
    Sex,
    Urgency,
    ViewsNotRecorded,
)
from concord_contracts.fields import CODE_PATTERN, Text, UtcDateTime

MAX_AGE_YEARS = 17
# A record is kept until its case is closed, also once the child has turned 18: a date of
# birth up to this many years back is accepted on an update (registration wants under 18).
MAX_RECORD_AGE_YEARS = 21
PHONE = validate.Regexp(r"^\+?[0-9 ()\-]{3,40}$", error="Digits, spaces, + ( ) - only.")
USER_ID = validate.Regexp(r"^[A-Za-z0-9._:-]{1,64}$", error="Not a user identifier.")


class ConflictCode(StrEnum):
    """Why a write was refused (409), on a case (`case_management`) or a referral (the
    hub): the first argument of the service's `Conflict`, and the JSON answer's
    `error.code`. One enumeration, so that a code means one thing wherever it is answered."""

    stale_version = "stale_version"  # the case changed since the caller read it
    four_eyes = "four_eyes"  # a supervisor decides on what another one wrote or requested
    # The case, plan, service or follow-up does not allow it; or the referral is closed, or
    # the routing is no longer waiting for an answer (to revoke or decline it).
    wrong_state = "wrong_state"
    already_with_agency = "already_with_agency"  # re-routing to an agency that holds it
    agency_working = "agency_working"  # closing a referral an agency works on: it closes its own
    link_to_primary = "link_to_primary"  # the referral to keep is a duplicate: link to its primary


class _Closed(Schema):
    class Meta:
        unknown = RAISE


class _Code(fields.Enum):
    """A code of one enumeration: loads only its members, dumps a member or its value."""

    def __init__(self, enum: type[StrEnum], **kwargs: Any):
        super().__init__(enum, by_value=True, **kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        if value is not None and not isinstance(value, self.enum):
            value = self.enum(value)
        return super()._serialize(value, attr, obj, **kwargs)


class _Date(fields.Date):
    """A calendar date (YYYY-MM-DD); dumps a date or the ISO string it was stored as."""

    def _serialize(self, value, attr, obj, **kwargs):
        if isinstance(value, str):
            value = dt.date.fromisoformat(value)
        return super()._serialize(value, attr, obj, **kwargs)


def _strict_bool(**kwargs: Any) -> fields.Boolean:
    """True or false, nothing else ("yes" and 1 are refused)."""
    return fields.Boolean(truthy={True}, falsy={False}, **kwargs)


def _optional_text(max_length: int, multiline: bool = False) -> Text:
    return Text(max_length=max_length, multiline=multiline, load_default=None, allow_none=True)


def _unique(values: list, field: str, message: str = "Each value once.") -> None:
    if len(set(values)) != len(values):
        raise ValidationError(message, field)


# --- the child's record, by section ---------------------------------------------------


class CaseChildSchema(_Closed):
    """The child's identity, languages, disability and school (section `child`).

    `given_name` is required when a social worker writes the section; a record opened from
    a referral may lack it (a child's own report may carry no name) until it is completed."""

    given_name = Text(max_length=100, required=True)
    family_name = _optional_text(100)
    other_names = _optional_text(200)
    date_of_birth = _Date(load_default=None, allow_none=True)
    age_years = fields.Integer(
        strict=True,
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=0, max=MAX_AGE_YEARS),
    )
    sex = _Code(Sex, required=True)
    nationality = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(r"^[A-Z]{2}$", error="An ISO 3166-1 alpha-2 code."),
    )
    languages = fields.List(
        fields.String(validate=validate.Regexp(r"^[a-z]{2}$", error="An ISO 639-1 code.")),
        load_default=list,
        validate=validate.Length(max=10),
    )
    interpreter_needed = _strict_bool(load_default=False)
    disabilities = fields.List(
        _Code(Disability), load_default=list, validate=validate.Length(max=len(Disability))
    )
    disability_notes = _optional_text(2000, multiline=True)
    school_name = _optional_text(200)
    school_grade = _optional_text(50)
    in_school = _strict_bool(load_default=None, allow_none=True)

    @validates_schema
    def _coherent(self, data, **kwargs):
        dob, age = data.get("date_of_birth"), data.get("age_years")
        if dob is None and age is None:
            raise ValidationError("Give date_of_birth or age_years.", "date_of_birth")
        if dob is not None and age is not None:
            raise ValidationError("Give date_of_birth or age_years, not both.", "age_years")
        if dob is not None:
            today = dt.date.today()
            if dob > today:
                raise ValidationError("Date of birth is in the future.", "date_of_birth")
            if (today - dob).days > (MAX_RECORD_AGE_YEARS + 1) * 366:
                raise ValidationError(
                    f"Older than {MAX_RECORD_AGE_YEARS}: not a child's record.", "date_of_birth"
                )
        _unique(data.get("languages") or [], "languages")
        _unique(data.get("disabilities") or [], "disabilities")


class CaseChildRecordSchema(CaseChildSchema):
    """The child's record as stored and answered: as written by a social worker, or as
    pulled from a referral (where the name, the sex or the age may be unknown)."""

    given_name = Text(max_length=100, load_default=None, allow_none=True)
    sex = _Code(Sex, load_default=None, allow_none=True)

    @validates_schema
    def _coherent(self, data, **kwargs):  # only the checks that hold for a partial record
        if data.get("date_of_birth") is not None and data.get("age_years") is not None:
            raise ValidationError("Give date_of_birth or age_years, not both.", "age_years")


class CaseContactSchema(_Closed):
    """How to reach the child (section `contact`), and whether it is safe to."""

    address = _optional_text(500, multiline=True)
    phone = Text(max_length=40, load_default=None, allow_none=True, validate=PHONE)
    email = fields.Email(load_default=None, allow_none=True, validate=validate.Length(max=254))
    safe_to_contact = _strict_bool(load_default=None, allow_none=True)
    contact_notes = _optional_text(2000, multiline=True)


class FamilyMemberSchema(_Closed):
    """A family member or carer of the child."""

    person_id = fields.UUID(load_default=None, allow_none=True)
    given_name = Text(max_length=100, required=True)
    family_name = _optional_text(100)
    relation = _Code(FamilyRelation, required=True)
    is_main_carer = _strict_bool(load_default=False)
    lives_with_child = _strict_bool(load_default=None, allow_none=True)
    parental_responsibility = _strict_bool(load_default=None, allow_none=True)
    phone = Text(max_length=40, load_default=None, allow_none=True, validate=PHONE)
    email = fields.Email(load_default=None, allow_none=True, validate=validate.Length(max=254))
    notes = _optional_text(2000, multiline=True)


class PersonAroundSchema(_Closed):
    """Someone else around the child: a teacher, a friend, an online contact, the alleged
    offender. `given_name` is the name, or what the child calls them."""

    person_id = fields.UUID(load_default=None, allow_none=True)
    given_name = Text(max_length=100, required=True)
    family_name = _optional_text(100)
    relation = _Code(PersonRelation, required=True)
    supportive = _strict_bool(load_default=None, allow_none=True)
    phone = Text(max_length=40, load_default=None, allow_none=True, validate=PHONE)
    notes = _optional_text(2000, multiline=True)


def _people_once(data: dict) -> None:
    ids = [m["person_id"] for m in data.get("members") or [] if m.get("person_id")]
    _unique(ids, "members", "Each person_id once.")


class FamilySectionSchema(_Closed):
    """Section `family`: family members and carers (the whole list is replaced)."""

    members = fields.List(
        fields.Nested(FamilyMemberSchema), required=True, validate=validate.Length(max=30)
    )

    @validates_schema
    def _once(self, data, **kwargs):
        _people_once(data)


class PeopleSectionSchema(_Closed):
    """Section `people`: the other people around the child (the whole list is replaced)."""

    members = fields.List(
        fields.Nested(PersonAroundSchema), required=True, validate=validate.Length(max=30)
    )

    @validates_schema
    def _once(self, data, **kwargs):
        _people_once(data)


class SafetyConcernItemSchema(_Closed):
    concern = _Code(SafetyConcern, required=True)
    details = _optional_text(2000, multiline=True)

    @validates_schema
    def _other_is_described(self, data, **kwargs):
        if data.get("concern") == SafetyConcern.other and not data.get("details"):
            raise ValidationError("Describe the concern.", "details")


class SafetySectionSchema(_Closed):
    """Section `safety`: what endangers the child now, and what is done about it."""

    concerns = fields.List(
        fields.Nested(SafetyConcernItemSchema),
        required=True,
        validate=validate.Length(max=20),
    )
    safety_measures = _optional_text(5000, multiline=True)


SECTION_SCHEMAS: dict[str, type[Schema]] = {
    "child": CaseChildSchema,
    "contact": CaseContactSchema,
    "family": FamilySectionSchema,
    "people": PeopleSectionSchema,
    "safety": SafetySectionSchema,
}
"""`update_section(case_id, section, data)`: the schema of each section."""


class CaseRegistrationSchema(_Closed):
    """A case registered directly by a social worker (`POST /api/v1/cases`).

    `registration_id` (optional, a UUID the form makes once) becomes the case's id: sending
    the same registration again answers the case already registered, creating nothing."""

    registration_id = fields.UUID(load_default=None, allow_none=True)
    child = fields.Nested(CaseChildSchema, required=True)
    categories = fields.List(
        _Code(Category), required=True, validate=validate.Length(min=1, max=len(Category))
    )
    urgency = _Code(Urgency, required=True)
    contact = fields.Nested(CaseContactSchema, load_default=None, allow_none=True)
    family = fields.Nested(FamilySectionSchema, load_default=None, allow_none=True)
    people = fields.Nested(PeopleSectionSchema, load_default=None, allow_none=True)
    safety = fields.Nested(SafetySectionSchema, load_default=None, allow_none=True)

    @validates_schema
    def _a_child_and_each_category_once(self, data, **kwargs):
        _unique(data.get("categories") or [], "categories", "Each category once.")
        dob = (data.get("child") or {}).get("date_of_birth")
        if dob is not None and (dt.date.today() - dob).days > (MAX_AGE_YEARS + 1) * 366:
            raise ValidationError({"date_of_birth": ["A child is under 18."]}, "child")


# --- assessment -----------------------------------------------------------------------


class NeedSchema(_Closed):
    level = _Code(NeedLevel, required=True)
    notes = _optional_text(2000, multiline=True)


class NeedsSchema(_Closed):
    """The child's needs in every domain (each one is assessed, "none" included)."""

    safety = fields.Nested(NeedSchema, required=True)
    health = fields.Nested(NeedSchema, required=True)
    mental_health = fields.Nested(NeedSchema, required=True)
    education = fields.Nested(NeedSchema, required=True)
    family = fields.Nested(NeedSchema, required=True)
    legal = fields.Nested(NeedSchema, required=True)


def _views_one_way(data: dict, required: bool) -> None:
    views, reason = data.get("child_views"), data.get("child_views_not_recorded")
    if views and reason:
        raise ValidationError(
            "Record the child's views or why they were not recorded, not both.",
            "child_views_not_recorded",
        )
    if required and not views and not reason:
        raise ValidationError(
            "Record the child's own views, or why they could not be recorded.", "child_views"
        )


class AssessmentSubmissionSchema(_Closed):
    """An assessment as its author records it; dated and signed by the service."""

    assessed_on = _Date(load_default=None, allow_none=True)
    risk_level = _Code(RiskLevel, required=True)
    needs = fields.Nested(NeedsSchema, required=True)
    summary = Text(max_length=10_000, multiline=True, required=True)
    child_views = _optional_text(5000, multiline=True)
    child_views_not_recorded = _Code(ViewsNotRecorded, load_default=None, allow_none=True)

    @validates_schema
    def _views(self, data, **kwargs):
        _views_one_way(data, required=True)


class SignatureSchema(_Closed):
    """Who signed, when, and the SHA-256 digest of what they signed."""

    signed_by = fields.String(required=True)
    signed_at = UtcDateTime(required=True)
    digest = fields.String(required=True, validate=validate.Regexp(r"^[0-9a-f]{64}$"))


class AssessmentSchema(AssessmentSubmissionSchema):
    assessment_id = fields.UUID(required=True)
    assessed_on = _Date(required=True)
    recorded_at = UtcDateTime(required=True)
    signature = fields.Nested(SignatureSchema, required=True)


# --- the case plan and its services ---------------------------------------------------


class PlannedServiceSchema(_Closed):
    service_id = fields.UUID(load_default=None, allow_none=True)
    kind = _Code(ServiceKind, required=True)
    provider = Text(max_length=200, required=True)
    due_on = _Date(required=True)


class PlanGoalInputSchema(_Closed):
    goal_id = fields.UUID(load_default=None, allow_none=True)
    domain = _Code(NeedDomain, required=True)
    description = Text(max_length=2000, multiline=True, required=True)
    services = fields.List(
        fields.Nested(PlannedServiceSchema), load_default=list, validate=validate.Length(max=20)
    )


class PlanSubmissionSchema(_Closed):
    """The case plan as written: goals, each with the services that deliver it."""

    goals = fields.List(
        fields.Nested(PlanGoalInputSchema), required=True, validate=validate.Length(min=1, max=20)
    )

    @validates_schema
    def _ids_once(self, data, **kwargs):
        goals = data.get("goals") or []
        _unique([g["goal_id"] for g in goals if g.get("goal_id")], "goals", "Each goal_id once.")
        services = [s["service_id"] for g in goals for s in g.get("services") or []]
        _unique([s for s in services if s], "goals", "Each service_id once.")


class ServiceSchema(_Closed):
    """A service of the plan, as it stands."""

    service_id = fields.UUID(required=True)
    goal_id = fields.UUID(required=True)
    kind = _Code(ServiceKind, required=True)
    provider = fields.String(required=True)
    due_on = _Date(required=True)
    status = _Code(ServiceStatus, required=True)
    delivered_on = _Date(required=True, allow_none=True)
    status_note = fields.String(required=True, allow_none=True)
    approved = fields.Boolean(
        required=True, metadata={"description": "In an approved version of the plan."}
    )
    overdue = fields.Boolean(required=True)
    updated_at = UtcDateTime(required=True)
    updated_by = fields.String(required=True)


class ServiceUpdateSchema(_Closed):
    """Where a service stands now (`PATCH /api/v1/cases/{case_id}/services/{service_id}`)."""

    status = _Code(ServiceStatus, required=True)
    delivered_on = _Date(load_default=None, allow_none=True)
    status_note = _optional_text(2000, multiline=True)
    provider = Text(max_length=200, load_default=None, allow_none=True)
    due_on = _Date(load_default=None, allow_none=True)

    @validates_schema
    def _what_each_status_needs(self, data, **kwargs):
        status = data.get("status")
        if status == ServiceStatus.delivered and data.get("delivered_on") is None:
            raise ValidationError("Say when it was delivered.", "delivered_on")
        if status != ServiceStatus.delivered and data.get("delivered_on") is not None:
            raise ValidationError("Only a delivered service has a delivery date.", "delivered_on")
        if status == ServiceStatus.cancelled and not data.get("status_note"):
            raise ValidationError("Say why it was cancelled.", "status_note")


class GoalSchema(_Closed):
    goal_id = fields.UUID(required=True)
    domain = _Code(NeedDomain, required=True)
    description = fields.String(required=True)
    services = fields.List(fields.Nested(ServiceSchema), required=True)


class PlanSchema(_Closed):
    """The current version of the case plan and where its approval stands."""

    version = fields.Integer(required=True)
    state = _Code(PlanState, required=True)
    goals = fields.List(fields.Nested(GoalSchema), required=True)
    written_by = fields.String(required=True)
    written_at = UtcDateTime(required=True)
    submitted_by = fields.String(required=True, allow_none=True)
    submitted_at = UtcDateTime(required=True, allow_none=True)
    decided_by = fields.String(required=True, allow_none=True)
    decided_at = UtcDateTime(required=True, allow_none=True)
    comment = fields.String(required=True, allow_none=True)
    return_reason = fields.String(required=True, allow_none=True)
    approved_version = fields.Integer(
        required=True,
        allow_none=True,
        metadata={"description": "The version in force: the last one approved."},
    )


# --- follow-ups and reviews -----------------------------------------------------------


class FollowUpRequestSchema(_Closed):
    kind = _Code(FollowUpKind, required=True)
    due_on = _Date(required=True)


class FollowUpOutcomeSchema(_Closed):
    """What a visit, call or review found; a review records the child's own views."""

    done_on = _Date(required=True)
    summary = Text(max_length=10_000, multiline=True, required=True)
    child_views = _optional_text(5000, multiline=True)
    child_views_not_recorded = _Code(ViewsNotRecorded, load_default=None, allow_none=True)
    next_due_on = _Date(load_default=None, allow_none=True)

    @validates_schema
    def _views(self, data, **kwargs):
        _views_one_way(data, required=False)


class FollowUpSchema(_Closed):
    follow_up_id = fields.UUID(required=True)
    kind = _Code(FollowUpKind, required=True)
    due_on = _Date(required=True)
    status = _Code(FollowUpStatus, required=True)
    overdue = fields.Boolean(required=True)
    scheduled_by = fields.String(required=True)
    scheduled_at = UtcDateTime(required=True)
    done_on = _Date(required=True, allow_none=True)
    recorded_by = fields.String(required=True, allow_none=True)
    recorded_at = UtcDateTime(required=True, allow_none=True)
    summary = fields.String(required=True, allow_none=True)
    child_views = fields.String(required=True, allow_none=True)
    child_views_not_recorded = _Code(ViewsNotRecorded, required=True, allow_none=True)
    cancel_reason = fields.String(required=True, allow_none=True)


# --- decisions, reasons, notes --------------------------------------------------------


class ReasonSchema(_Closed):
    """A reason people will read later (returning a plan, rejecting a closure, reopening,
    cancelling a follow-up)."""

    reason = Text(max_length=2000, multiline=True, required=True)


class CommentSchema(_Closed):
    """An approval, with an optional comment."""

    comment = _optional_text(2000, multiline=True)


class AssignmentSchema(_Closed):
    """Who the case goes to. The reason is required for a reassignment."""

    assign_to = fields.String(required=True, validate=USER_ID)
    reason = _optional_text(500, multiline=True)


class ClosureRequestSchema(_Closed):
    reason = _Code(ClosureReason, required=True)
    reason_text = _optional_text(2000, multiline=True)

    @validates_schema
    def _other_is_explained(self, data, **kwargs):
        if data.get("reason") == ClosureReason.other and not data.get("reason_text"):
            raise ValidationError("Explain the reason.", "reason_text")


class ClosureSchema(_Closed):
    """The current closure request, or the last one decided."""

    reason = _Code(ClosureReason, required=True)
    reason_text = fields.String(required=True, allow_none=True)
    requested_by = fields.String(required=True)
    requested_at = UtcDateTime(required=True)
    warnings = fields.List(_Code(ClosureWarning), required=True)
    decision = fields.String(
        required=True, allow_none=True, validate=validate.OneOf(["approved", "rejected"])
    )
    decided_by = fields.String(required=True, allow_none=True)
    decided_at = UtcDateTime(required=True, allow_none=True)
    comment = fields.String(required=True, allow_none=True)
    reject_reason = fields.String(required=True, allow_none=True)


class ReferralWithdrawalSchema(_Closed):
    """The hub took back the referral the case came from: it revoked the routing to social
    services, or social services declined it at the hub. `case_closed`: the case closed
    with it (nothing had been done on it yet); otherwise it stays open for its social
    worker and supervisors to decide."""

    kind = fields.String(required=True, validate=validate.OneOf(["revoked", "declined"]))
    reason = fields.String(
        required=True,
        allow_none=True,
        validate=validate.OneOf(sorted({*RevokeReason, *DeclineReason})),
    )
    decided_at = UtcDateTime(required=True)
    case_closed = fields.Boolean(required=True)


class ReopeningSchema(_Closed):
    reopened_by = fields.String(required=True)
    reopened_at = UtcDateTime(required=True)
    reason = fields.String(required=True)


class AssignmentRecordSchema(_Closed):
    assigned_to = fields.String(required=True)
    assigned_by = fields.String(required=True)
    assigned_at = UtcDateTime(required=True)
    reason = fields.String(required=True, allow_none=True)


class NoteInputSchema(_Closed):
    text = Text(max_length=10_000, multiline=True, required=True)


class NoteSchema(_Closed):
    note_id = fields.UUID(required=True)
    text = fields.String(required=True)
    written_by = fields.String(required=True)
    written_at = UtcDateTime(required=True)


class NotesQuerySchema(_Closed):
    before = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))


class NotesPageSchema(_Closed):
    items = fields.List(fields.Nested(NoteSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


# --- the record -----------------------------------------------------------------------


class WorkflowStepSchema(_Closed):
    status = _Code(CaseStatus, required=True)
    reached_at = UtcDateTime(required=True, allow_none=True)


class DueSchema(_Closed):
    next_due_on = _Date(required=True, allow_none=True)
    overdue = fields.Boolean(required=True)
    overdue_count = fields.Integer(required=True)


class RequestAbroadSchema(_Closed):
    """A request abroad on the same coordination id, as the central authority announced it."""

    request_id = fields.UUID(required=True)
    instrument = _Code(Instrument, required=True, allow_none=True)
    executing_country = fields.String(required=True, allow_none=True)
    status = _Code(RequestStatus, required=True)
    since = UtcDateTime(required=True)
    due_at = UtcDateTime(required=True, allow_none=True)
    overdue = fields.Boolean(required=True)


class CasePartnerSchema(_Closed):
    """A partner agency's status on the same coordination id: the hub's agency status or
    the partner's own (investigation, request) status, since when, its deadline, whether
    it is overdue; for the central authority, every request abroad."""

    status = fields.String(required=True, validate=validate.Regexp(CODE_PATTERN))
    since = UtcDateTime(required=True)
    due_at = UtcDateTime(load_default=None, allow_none=True)
    overdue = fields.Boolean(required=True)
    requests = fields.List(fields.Nested(RequestAbroadSchema), load_default=None)


class CaseRecordSchema(_Closed):
    """A case as its assigned social worker or a supervisor reads it: the child's record
    by section, the work done, the workflow, and the partners' statuses."""

    case_id = fields.UUID(required=True)
    coordination_id = fields.UUID(required=True)
    status = _Code(CaseStatus, required=True)
    origin = _Code(CaseOrigin, required=True)
    version = fields.Integer(
        required=True, metadata={"description": "Send it back as If-Match to write safely."}
    )
    opened_at = UtcDateTime(required=True)
    opened_by = fields.String(required=True)
    assigned_to = fields.String(required=True)
    assigned_at = UtcDateTime(required=True)
    workflow = fields.List(fields.Nested(WorkflowStepSchema), required=True)
    child = fields.Nested(CaseChildRecordSchema, required=True)
    contact = fields.Nested(CaseContactSchema, required=True, allow_none=True)
    family = fields.List(fields.Nested(FamilyMemberSchema), required=True)
    people = fields.List(fields.Nested(PersonAroundSchema), required=True)
    safety = fields.Nested(SafetySectionSchema, required=True, allow_none=True)
    assessment = fields.Nested(AssessmentSchema, required=True, allow_none=True)
    assessments_count = fields.Integer(required=True)
    plan = fields.Nested(PlanSchema, required=True, allow_none=True)
    services = fields.List(fields.Nested(ServiceSchema), required=True)
    follow_ups = fields.List(fields.Nested(FollowUpSchema), required=True)
    due = fields.Nested(DueSchema, required=True)
    pending_approval = fields.String(
        required=True, allow_none=True, validate=validate.OneOf(["plan", "closure"])
    )
    closure = fields.Nested(ClosureSchema, required=True, allow_none=True)
    withdrawal = fields.Nested(ReferralWithdrawalSchema, required=True, allow_none=True)
    reopenings = fields.List(fields.Nested(ReopeningSchema), required=True)
    assignments = fields.List(fields.Nested(AssignmentRecordSchema), required=True)
    notes_count = fields.Integer(required=True)
    partners = fields.Dict(
        keys=_Code(Agency), values=fields.Nested(CasePartnerSchema), required=True
    )


# --- lists ----------------------------------------------------------------------------


class ChildSummarySchema(_Closed):
    given_name = fields.String(required=True, allow_none=True)
    family_name = fields.String(required=True, allow_none=True)
    age_years = fields.Integer(required=True, allow_none=True)


class CaseListQuerySchema(_Closed):
    """`GET /api/v1/cases`: filters (all optional) and the keyset cursor."""

    status = fields.List(_Code(CaseStatus), load_default=list)
    state = fields.String(load_default="open", validate=validate.OneOf(["open", "closed", "all"]))
    assigned_to = fields.String(load_default=None, allow_none=True, validate=USER_ID)
    overdue = _strict_bool(load_default=None, allow_none=True)
    risk_level = fields.List(_Code(RiskLevel), load_default=list)
    origin = _Code(CaseOrigin, load_default=None, allow_none=True)
    limit = fields.Integer(strict=True, load_default=25, validate=validate.Range(min=1, max=100))
    cursor = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=300))


class CaseListItemSchema(_Closed):
    case_id = fields.UUID(required=True)
    coordination_id = fields.UUID(required=True)
    status = _Code(CaseStatus, required=True)
    origin = _Code(CaseOrigin, required=True)
    version = fields.Integer(
        required=True,
        metadata={"description": "The case's version: send it as If-Match to write to it."},
    )
    opened_at = UtcDateTime(required=True)
    assigned_to = fields.String(required=True)
    child = fields.Nested(ChildSummarySchema, required=True)
    risk_level = _Code(RiskLevel, required=True, allow_none=True)
    next_due_on = _Date(required=True, allow_none=True)
    next_due_kind = fields.String(
        required=True,
        allow_none=True,
        validate=validate.OneOf(["service", *(k.value for k in FollowUpKind)]),
    )
    overdue = fields.Boolean(required=True)
    overdue_count = fields.Integer(required=True)
    pending_approval = fields.String(
        required=True, allow_none=True, validate=validate.OneOf(["plan", "closure"])
    )


class CaseListSchema(_Closed):
    items = fields.List(fields.Nested(CaseListItemSchema), required=True)
    next_cursor = fields.String(
        required=True, allow_none=True, metadata={"description": "Null on the last page."}
    )


class ApprovalItemSchema(_Closed):
    """A plan or a closure waiting for a supervisor's decision."""

    kind = fields.String(required=True, validate=validate.OneOf(["plan", "closure"]))
    case_id = fields.UUID(required=True)
    coordination_id = fields.UUID(required=True)
    status = _Code(CaseStatus, required=True)
    assigned_to = fields.String(required=True)
    requested_by = fields.String(required=True)
    requested_at = UtcDateTime(required=True)
    child = fields.Nested(ChildSummarySchema, required=True)
    version = fields.Integer(
        required=True,
        metadata={"description": "The case's version: send it as If-Match to decide on it."},
    )
    plan_version = fields.Integer(required=True, allow_none=True)
    closure_reason = _Code(ClosureReason, required=True, allow_none=True)
    warnings = fields.List(_Code(ClosureWarning), required=True)
    own_request = fields.Boolean(
        required=True,
        metadata={"description": "The caller wrote or requested it: another supervisor decides."},
    )


class AssigneeSchema(_Closed):
    """A social worker a case can be assigned to (the gateway owns the users)."""

    user_id = fields.String(required=True)
    username = fields.String(required=True)
    display_name = fields.String(required=True)


class CaseRegistrationCodesSchema(_Closed):
    """What `case_management` asks the hub for a directly registered case: codes only."""

    registration_id = fields.UUID(required=True)
    categories = fields.List(_Code(Category), required=True, validate=validate.Length(min=1))
    urgency = _Code(Urgency, required=True)
