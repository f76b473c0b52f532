"""Social services' work, in plain Python (no nameko, no SQL).

When the referral hub routes a referral to social services, a social worker (or a
supervisor) *accepts* it: the service pulls the referral's details from the hub and opens
a *case*, assigned to the person who accepted it. A social worker may also *register* a
case directly (the hub then gives it a coordination id, from codes alone).

A case holds the child's record (identity, contact, family and carers, the people around
the child, safety concerns) and, as the work goes on:

- the *assessment*: the risk level, the child's needs in each domain, the child's own
  views; dated and signed by its author (a digest of what was signed);
- the *case plan*: goals, each with the services that deliver it (provider, due date,
  status). A supervisor approves it; a revision of an approved plan needs approval again
  while the approved version stays in force;
- *services* as they are delivered, *follow-ups* (visits, calls) and *reviews* with due
  dates; a follow-up or service past its due date is *overdue*;
- *closure*: requested with a reason code, approved by a supervisor; a closed case can be
  *reopened* with a reason.

Its workflow status is never typed in: it follows from what has been done (`Case.status`).
A supervisor never approves what they wrote or requested themselves (four eyes).

Who sees a case: the social worker it is assigned to, and the supervisors of social
services. Nobody else, whatever their role; every read and every refusal is audited.

Beside its own cases, the service keeps where its partners stand on each referral (the
investigation, requests abroad), from their status events: see `concord_kit.partners`.

The hub's decisions on the referral are followed (`Case.referral_withdrawn`).
When the hub *revokes* the routing to social services (consent withdrawn, sent in error,
a better agency, no longer needed) or records that social services *declined* it (a
colleague declining at the hub while another opened the case), the agency no longer holds
the referral. A case nobody has worked on yet (nothing changed or noted since it opened)
closes with it: there is no mandate left and nothing is lost. A case already worked on
stays open and carries the withdrawal, for its social worker and supervisors to decide:
what the work found may need the case whatever the hub decided, and a closure goes
through its usual four eyes. A later routing to social services lifts that mark; a case
the withdrawal closed opens again when social services accept the referral once more (one
case per referral, its reopening recorded). Only the hub's newest word counts (its
sequence): a late, older decision changes nothing. An acceptance is such a word: the pull it
rests on says "routed here, as of the hub's sequence S", kept with the case it opens or
reopens, so a decision the hub took before it (a revocation, then a new routing, arriving
late) finds it newer and leaves the case alone (`concord_kit.partners`).

Time comes in as an argument (`now`, `today`): the domain never reads a clock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from concord_contracts.codes import (
    Agency,
    AgencyStatus,
    CaseOrigin,
    CaseStatus,
    ClosureReason,
    ClosureWarning,
    FollowUpKind,
    FollowUpStatus,
    InvestigationStatus,
    NeedDomain,
    Organisation,
    PlanState,
    RequestStatus,
    RiskLevel,
    Role,
    ServiceKind,
    ServiceStatus,
    ViewsNotRecorded,
)
from concord_contracts.hub_decisions import HubDecision

AGENCY = Agency.social_services
"""The agency this service works for: the key of its own status in everyone's pipeline."""

ACCEPTING_ROLES = frozenset({Role.social_worker, Role.supervisor})
"""Who, in social services, may take a referral on (and open a case for it)."""

WORKFLOW = (
    CaseStatus.new,
    CaseStatus.assessed,
    CaseStatus.plan_approved,
    CaseStatus.services_under_way,
    CaseStatus.closure_requested,
    CaseStatus.closed,
)
"""The workflow bar, in order."""

MAX_OPEN_FOLLOW_UPS = 50


class Person(Protocol):
    """Whoever asks: the caller identity that travels with every call."""

    user_id: str
    role: Role
    agency: Organisation


# --- what can go wrong ----------------------------------------------------------------


class CaseError(Exception):
    """A request the rules refuse; the service turns each kind into its answer."""


class WrongState(CaseError):
    """The case (or the plan, service, follow-up) is not in a state that allows this."""


class FourEyes(WrongState):
    """A supervisor deciding on what they wrote or requested themselves."""


class InvalidField(CaseError):
    """One field of the request is wrong for this case (a date before the case, ...).

    `field` is a dotted path (`goals.0.services.1.service_id`)."""

    def __init__(self, field_path: str, message: str):
        super().__init__(message)
        self.field = field_path
        self.message = message

    def as_errors(self) -> dict[str, Any]:
        """The marshmallow-shaped error map: `{"goals": {"0": {...: [message]}}}`."""
        errors: dict[str, Any] = {}
        node = errors
        parts = self.field.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = [self.message]
        return errors


class Missing(CaseError):
    """A service or follow-up this case does not have."""


# --- who may do what ------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """An answer to "may this person do this?", with the reason written to the audit trail."""

    allowed: bool
    reason: str


def is_staff(person: Person) -> bool:
    return person.agency == Organisation.social_services and person.role in ACCEPTING_ROLES


def is_supervisor(person: Person) -> bool:
    return person.agency == Organisation.social_services and person.role == Role.supervisor


def may_accept(person: Person) -> Decision:
    """A social worker or a supervisor of social services accepts referrals for it."""
    if not is_staff(person):
        return Decision(False, f"{person.role} of {person.agency} does not accept for {AGENCY}")
    return Decision(True, f"{person.role} accepts for {AGENCY}")


def may_register(person: Person) -> Decision:
    """Social services staff register a case directly (it is assigned to them)."""
    if not is_staff(person):
        return Decision(False, f"{person.role} of {person.agency} does not register cases")
    return Decision(True, f"{person.role} registers a case for {AGENCY}")


def may_read_cases(person: Person) -> Decision:
    """The first gate, before any case is looked up: only social services staff read cases
    (so that nobody else even learns whether a case exists)."""
    if not is_staff(person):
        return Decision(False, f"{person.role} of {person.agency} does not read cases")
    return Decision(True, "social services staff")


def may_read(person: Person, case: Case) -> Decision:
    """The social worker the case is assigned to, and any supervisor of social services.
    Another social worker is refused: a case is need-to-know even inside the agency."""
    if person.agency != Organisation.social_services:
        return Decision(False, f"{person.agency} is not social services")
    if person.role == Role.supervisor:
        return Decision(True, "supervisor of social services")
    if person.role == Role.social_worker and person.user_id == case.assigned_to:
        return Decision(True, "assigned social worker")
    return Decision(False, f"{person.role} not assigned to this case")


may_change = may_read
"""Who reads a case works on it: its social worker and the supervisors."""


def may_supervise(person: Person) -> Decision:
    """Assigning, approving plans and closures: supervisors of social services only."""
    if not is_supervisor(person):
        return Decision(False, f"{person.role} of {person.agency} does not supervise cases")
    return Decision(True, "supervisor of social services")


def may_list(person: Person, assigned_to: str | None) -> Decision:
    """A supervisor lists every case of the agency; a social worker only their own."""
    gate = may_read_cases(person)
    if not gate.allowed or is_supervisor(person):
        return gate
    if assigned_to not in (None, person.user_id):
        return Decision(False, "a social worker lists only the cases assigned to them")
    return Decision(True, "social worker listing own cases")


def scoped_assignee(person: Person, assigned_to: str | None) -> str | None:
    """The assignee a list is restricted to: the social worker themself, or the filter a
    supervisor chose (None: every case)."""
    return assigned_to if is_supervisor(person) else person.user_id


# --- the parts of a case --------------------------------------------------------------


SERVICE_TRANSITIONS: Mapping[ServiceStatus, frozenset[ServiceStatus]] = {
    ServiceStatus.planned: frozenset(
        {ServiceStatus.referred, ServiceStatus.in_progress, ServiceStatus.delivered}
    ),
    ServiceStatus.referred: frozenset({ServiceStatus.in_progress, ServiceStatus.delivered}),
    ServiceStatus.in_progress: frozenset({ServiceStatus.delivered}),
    ServiceStatus.delivered: frozenset(),
    ServiceStatus.cancelled: frozenset(),
}
"""Forward steps of a service; any open one may also be cancelled (with a reason)."""

OPEN_SERVICE = frozenset({ServiceStatus.planned, ServiceStatus.referred, ServiceStatus.in_progress})
STARTED_SERVICE = frozenset({ServiceStatus.in_progress, ServiceStatus.delivered})


@dataclass
class Service:
    """A service of the plan, delivered by a provider by a due date."""

    service_id: uuid.UUID
    goal_id: uuid.UUID
    kind: ServiceKind
    provider: str
    due_on: dt.date
    updated_at: dt.datetime
    updated_by: str
    status: ServiceStatus = ServiceStatus.planned
    delivered_on: dt.date | None = None
    status_note: str | None = None
    approved: bool = False  # part of an approved version of the plan
    position: int = 0

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_SERVICE

    def overdue(self, today: dt.date) -> bool:
        return self.is_open and self.due_on < today


@dataclass
class Goal:
    goal_id: uuid.UUID
    domain: NeedDomain
    description: str


@dataclass
class Plan:
    """The current version of the case plan. `approved_version` is the version in force."""

    version: int
    state: PlanState
    goals: list[Goal]
    written_by: str
    written_at: dt.datetime
    submitted_by: str | None = None
    submitted_at: dt.datetime | None = None
    decided_by: str | None = None
    decided_at: dt.datetime | None = None
    comment: str | None = None
    return_reason: str | None = None
    approved_version: int | None = None


@dataclass
class FollowUp:
    """A visit, a call or a review, due on a date."""

    follow_up_id: uuid.UUID
    kind: FollowUpKind
    due_on: dt.date
    scheduled_by: str
    scheduled_at: dt.datetime
    status: FollowUpStatus = FollowUpStatus.scheduled
    done_on: dt.date | None = None
    recorded_by: str | None = None
    recorded_at: dt.datetime | None = None
    summary: str | None = None
    child_views: str | None = None
    child_views_not_recorded: ViewsNotRecorded | None = None
    cancel_reason: str | None = None

    def overdue(self, today: dt.date) -> bool:
        return self.status == FollowUpStatus.scheduled and self.due_on < today


@dataclass(frozen=True)
class Assessment:
    """An assessment, signed: `digest` covers its content, its author and its time, so a
    later edit of the stored row is detectable (`Assessment.verify`)."""

    assessment_id: uuid.UUID
    assessed_on: dt.date
    risk_level: RiskLevel
    needs: Mapping[str, Mapping[str, Any]]  # domain -> {"level", "notes"}
    summary: str
    child_views: str | None
    child_views_not_recorded: ViewsNotRecorded | None
    recorded_by: str
    recorded_at: dt.datetime
    digest: str

    @staticmethod
    def digest_of(content: Mapping[str, Any], signed_by: str, signed_at: dt.datetime) -> str:
        canonical = json.dumps(
            {"content": content, "signed_by": signed_by, "signed_at": signed_at.isoformat()},
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    def content(self) -> dict[str, Any]:
        return {
            "assessed_on": self.assessed_on.isoformat(),
            "risk_level": str(self.risk_level),
            "needs": {k: dict(v) for k, v in sorted(self.needs.items())},
            "summary": self.summary,
            "child_views": self.child_views,
            "child_views_not_recorded": (
                str(self.child_views_not_recorded) if self.child_views_not_recorded else None
            ),
        }

    def verify(self) -> bool:
        return self.digest == self.digest_of(self.content(), self.recorded_by, self.recorded_at)


@dataclass
class Closure:
    closure_id: uuid.UUID
    reason: ClosureReason
    reason_text: str | None
    requested_by: str
    requested_at: dt.datetime
    warnings: list[ClosureWarning]
    decision: str | None = None  # "approved" | "rejected"
    decided_by: str | None = None
    decided_at: dt.datetime | None = None
    comment: str | None = None
    reject_reason: str | None = None


@dataclass(frozen=True)
class Reopening:
    reopened_by: str
    reopened_at: dt.datetime
    reason: str


@dataclass(frozen=True)
class Assignment:
    assigned_to: str
    assigned_by: str
    assigned_at: dt.datetime
    reason: str | None
    by_supervisor: bool


@dataclass(frozen=True)
class Note:
    """A note: it stays in this service, is never published, and is not part of the
    workflow (writing one does not change the case's version)."""

    note_id: uuid.UUID
    case_id: uuid.UUID
    text: str
    written_by: str
    written_at: dt.datetime

    @classmethod
    def write(cls, case: Case, text: str, author: Person, now: dt.datetime) -> Note:
        return cls(uuid.uuid4(), case.case_id, text, author.user_id, now)


REOPENED_ROUTED_AGAIN = "the hub routed the referral to social services again"
"""The reopening's reason when the case opens again on a new acceptance."""


@dataclass(frozen=True)
class Withdrawal:
    """A hub decision as the case keeps it: `case_closed` when the case closed with it."""

    kind: AgencyStatus
    reason: str | None
    decided_at: dt.datetime
    case_closed: bool


@dataclass(frozen=True)
class Due:
    """What is due next on a case, and how much is overdue."""

    next_due_on: dt.date | None
    next_due_kind: str | None  # "service" or a FollowUpKind
    overdue_count: int

    @property
    def overdue(self) -> bool:
        return self.overdue_count > 0


# --- partners -------------------------------------------------------------------------

INVESTIGATION_OVER = frozenset(
    {
        str(InvestigationStatus.closed),
        str(InvestigationStatus.no_further_action),
        str(AgencyStatus.declined),
        str(AgencyStatus.revoked),
        str(AgencyStatus.closed),
    }
)
REQUEST_OVER = frozenset(
    {str(RequestStatus.executed), str(RequestStatus.refused), str(RequestStatus.withdrawn)}
)


@dataclass(frozen=True)
class RequestAbroad:
    """A request abroad on the same coordination id, as the central authority announced it."""

    request_id: uuid.UUID
    instrument: str | None
    executing_country: str | None
    status: str
    since: dt.datetime
    due_at: dt.datetime | None

    def overdue(self, now: dt.datetime) -> bool:
        return self.due_at is not None and self.due_at < now and self.status not in REQUEST_OVER


def partner_overdue(agency: Agency, status: str, due_at: dt.datetime | None, now) -> bool:
    """A partner's deadline passed while its matter is still open (requests abroad)."""
    if agency == Agency.cross_border:
        return due_at is not None and due_at < now and status not in REQUEST_OVER
    return False


def partner_warnings(
    partner_statuses: Mapping[Agency, str], requests: Iterable[RequestAbroad]
) -> list[ClosureWarning]:
    """What closing now would leave behind at the partners: an investigation that still
    needs the child, a request abroad still open."""
    warnings = []
    justice = partner_statuses.get(Agency.justice)
    if justice is not None and justice not in INVESTIGATION_OVER:
        warnings.append(ClosureWarning.investigation_active)
    requests = list(requests)
    cross_border = partner_statuses.get(Agency.cross_border)
    if any(r.status not in REQUEST_OVER for r in requests) or (
        not requests
        and cross_border is not None
        and cross_border not in REQUEST_OVER | {str(AgencyStatus.declined), "revoked"}
    ):
        warnings.append(ClosureWarning.request_abroad_active)
    return warnings


# --- the case -------------------------------------------------------------------------


@dataclass
class Case:
    """A social-services case: one per coordination id.

    The milestones are the facts the workflow status is derived from; each is a time (UTC)
    once it happened. `child` is the child's record (the JSON form of `CaseChildSchema`,
    possibly partial when pulled from a referral); `contact`, `family`, `people` and
    `safety` are the other sections, in their JSON form. All of it is personal data and
    is stored sealed."""

    case_id: uuid.UUID
    coordination_id: uuid.UUID
    opened_at: dt.datetime
    opened_by: str
    assigned_to: str
    child: Mapping[str, Any]
    assessed_at: dt.datetime | None = None
    plan_approved_at: dt.datetime | None = None
    services_started_at: dt.datetime | None = None
    closure_requested_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    origin: CaseOrigin = CaseOrigin.referral
    assigned_at: dt.datetime | None = None
    version: int = 1
    contact: Mapping[str, Any] | None = None
    family: list[Mapping[str, Any]] = field(default_factory=list)
    people: list[Mapping[str, Any]] = field(default_factory=list)
    safety: Mapping[str, Any] | None = None
    assessment: Assessment | None = None  # the latest
    assessments_count: int = 0
    plan: Plan | None = None
    services: list[Service] = field(default_factory=list)
    follow_ups: list[FollowUp] = field(default_factory=list)
    closure: Closure | None = None
    reopenings: list[Reopening] = field(default_factory=list)
    assignments: list[Assignment] = field(default_factory=list)
    notes_count: int = 0
    withdrawal: Withdrawal | None = None  # the hub's last word, when it took the referral back
    # Rows to insert on save (history is append-only): assessments, reopenings, assignments.
    new_records: list[Assessment | Reopening | Assignment] = field(
        default_factory=list, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.assigned_at is None:
            self.assigned_at = self.opened_at

    @classmethod
    def open(
        cls,
        coordination_id: uuid.UUID,
        child: Mapping[str, Any],
        accepted_by: Person,
        now: dt.datetime,
        *,
        origin: CaseOrigin = CaseOrigin.referral,
        case_id: uuid.UUID | None = None,
        sections: Mapping[str, Any] | None = None,
    ) -> Case:
        """The case a referral becomes when social services take it on (or a direct
        registration): new, and assigned to the person who opened it (a supervisor may
        hand it on later)."""
        case = cls(
            case_id=case_id or uuid.uuid4(),
            coordination_id=coordination_id,
            opened_at=now,
            opened_by=accepted_by.user_id,
            assigned_to=accepted_by.user_id,
            child=dict(child),
            origin=origin,
        )
        case.assignments.append(
            Assignment(accepted_by.user_id, accepted_by.user_id, now, None, False)
        )
        case.new_records.append(case.assignments[-1])
        for section, data in (sections or {}).items():
            if data is not None:
                case._set_section(section, data)
        return case

    # --- what it is now --------------------------------------------------------------

    @property
    def status(self) -> CaseStatus:
        """The furthest step reached: closed, closure requested, services under way, plan
        approved, assessed, or new."""
        milestones = (
            (self.closed_at, CaseStatus.closed),
            (self.closure_requested_at, CaseStatus.closure_requested),
            (self.services_started_at, CaseStatus.services_under_way),
            (self.plan_approved_at, CaseStatus.plan_approved),
            (self.assessed_at, CaseStatus.assessed),
        )
        return next((status for at, status in milestones if at is not None), CaseStatus.new)

    def workflow(self) -> list[tuple[CaseStatus, dt.datetime | None]]:
        """Each step of the workflow bar with when it was reached (None: not yet)."""
        reached = {
            CaseStatus.new: self.opened_at,
            CaseStatus.assessed: self.assessed_at,
            CaseStatus.plan_approved: self.plan_approved_at,
            CaseStatus.services_under_way: self.services_started_at,
            CaseStatus.closure_requested: self.closure_requested_at,
            CaseStatus.closed: self.closed_at,
        }
        return [(step, reached[step]) for step in WORKFLOW]

    @property
    def is_closed(self) -> bool:
        return self.closed_at is not None

    @property
    def is_open_for_work(self) -> bool:
        """Neither closed nor waiting for its closure to be decided."""
        return self.closed_at is None and self.closure_requested_at is None

    @property
    def pending_approval(self) -> str | None:
        if self.status == CaseStatus.closure_requested:
            return "closure"
        if self.plan is not None and self.plan.state == PlanState.submitted:
            return "plan"
        return None

    @property
    def pending_since(self) -> dt.datetime | None:
        if self.pending_approval == "closure":
            return self.closure_requested_at
        if self.pending_approval == "plan":
            assert self.plan is not None
            return self.plan.submitted_at
        return None

    @property
    def risk_level(self) -> RiskLevel | None:
        return self.assessment.risk_level if self.assessment else None

    def due(self, today: dt.date) -> Due:
        """The earliest open due date (services not finished, follow-ups scheduled) and how
        many are past it. A closed case has nothing due."""
        if self.is_closed:
            return Due(None, None, 0)
        items: list[tuple[dt.date, str]] = [
            (s.due_on, "service") for s in self.services if s.is_open
        ]
        items += [
            (f.due_on, str(f.kind)) for f in self.follow_ups if f.status == FollowUpStatus.scheduled
        ]
        if not items:
            return Due(None, None, 0)
        due_on, kind = min(items, key=lambda item: item[0])
        return Due(due_on, kind, sum(1 for on, _ in items if on < today))

    def service(self, service_id: uuid.UUID) -> Service:
        for service in self.services:
            if service.service_id == service_id:
                return service
        raise Missing("no such service on this case")

    def follow_up(self, follow_up_id: uuid.UUID) -> FollowUp:
        for follow_up in self.follow_ups:
            if follow_up.follow_up_id == follow_up_id:
                return follow_up
        raise Missing("no such follow-up on this case")

    def services_of(self, goal_id: uuid.UUID) -> list[Service]:
        return sorted((s for s in self.services if s.goal_id == goal_id), key=lambda s: s.position)

    # --- the child's record ------------------------------------------------------------

    SECTIONS = ("child", "contact", "family", "people", "safety")

    def update_section(self, section: str, data: Mapping[str, Any], by: Person) -> None:
        """Replace one section of the child's record (its JSON form, already validated)."""
        if self.is_closed:
            raise WrongState("a closed case is reopened before its record is changed")
        self._set_section(section, data)
        self._changed()

    def _set_section(self, section: str, data: Mapping[str, Any]) -> None:
        if section == "child":
            self.child = dict(data)
        elif section == "contact":
            self.contact = dict(data)
        elif section == "safety":
            self.safety = dict(data)
        elif section in ("family", "people"):
            members = [
                {**member, "person_id": member.get("person_id") or str(uuid.uuid4())}
                for member in data.get("members", [])
            ]
            setattr(self, section, members)
        else:
            raise InvalidField("section", f"No section {section!r}.")

    # --- assignment --------------------------------------------------------------------

    def assign(self, to: str, reason: str | None, by: Person, now: dt.datetime) -> None:
        """A supervisor hands the case to a social worker; every reassignment after the
        first says why."""
        if self.is_closed:
            raise WrongState("a closed case is not assigned")
        if to == self.assigned_to:
            raise InvalidField("assign_to", "The case is already assigned to this person.")
        if any(a.by_supervisor for a in self.assignments) and not reason:
            raise InvalidField("reason", "Say why the case is reassigned.")
        record = Assignment(to, by.user_id, now, reason, is_supervisor(by))
        self.assignments.append(record)
        self.new_records.append(record)
        self.assigned_to = to
        self.assigned_at = now
        self._changed()

    # --- assessment --------------------------------------------------------------------

    def record_assessment(
        self, submission: Mapping[str, Any], by: Person, now: dt.datetime
    ) -> Assessment:
        """Record an assessment (the loaded `AssessmentSubmissionSchema`): signed by its
        author, at `now`. The first one makes the case *assessed*."""
        if not self.is_open_for_work:
            raise WrongState("a closed case, or one waiting for closure, is not assessed")
        today = now.date()
        assessed_on = submission.get("assessed_on") or today
        if assessed_on > today:
            raise InvalidField("assessed_on", "An assessment is not dated in the future.")
        needs = {
            str(domain): {
                "level": str(need["level"]),
                "notes": need.get("notes"),
            }
            for domain, need in submission["needs"].items()
        }
        views_not_recorded = submission.get("child_views_not_recorded")
        draft = Assessment(
            assessment_id=uuid.uuid4(),
            assessed_on=assessed_on,
            risk_level=RiskLevel(submission["risk_level"]),
            needs=needs,
            summary=submission["summary"],
            child_views=submission.get("child_views"),
            child_views_not_recorded=(
                ViewsNotRecorded(views_not_recorded) if views_not_recorded else None
            ),
            recorded_by=by.user_id,
            recorded_at=now,
            digest="",
        )
        assessment = dataclasses.replace(
            draft, digest=Assessment.digest_of(draft.content(), by.user_id, now)
        )
        self.assessment = assessment
        self.assessments_count += 1
        self.new_records.append(assessment)
        if self.assessed_at is None:
            self.assessed_at = now
        self._changed()
        return assessment

    # --- the plan ----------------------------------------------------------------------

    def save_plan(self, goals: Sequence[Mapping[str, Any]], by: Person, now: dt.datetime) -> None:
        """Write the plan (the loaded `PlanSubmissionSchema` goals). A plan follows an
        assessment. Writing an approved plan starts a revision (a new version, a draft);
        writing a submitted one takes it back to draft."""
        if not self.is_open_for_work:
            raise WrongState("a closed case, or one waiting for closure, has no new plan")
        if self.assessed_at is None:
            raise WrongState("the child is assessed before a plan is written")
        today = now.date()
        known = {s.service_id: s for s in self.services}
        kept: set[uuid.UUID] = set()
        new_goals: list[Goal] = []
        position = 0
        for g, goal_in in enumerate(goals):
            goal = Goal(
                goal_in.get("goal_id") or uuid.uuid4(),
                NeedDomain(goal_in["domain"]),
                goal_in["description"],
            )
            new_goals.append(goal)
            for s, service_in in enumerate(goal_in.get("services") or []):
                where = f"goals.{g}.services.{s}"
                service_id = service_in.get("service_id")
                kind = ServiceKind(service_in["kind"])
                if service_id is not None and service_id not in known:
                    raise InvalidField(f"{where}.service_id", "No such service on this case.")
                existing = known.get(service_id) if service_id else None
                moved = existing is None or existing.due_on != service_in["due_on"]
                if moved and service_in["due_on"] < today:
                    raise InvalidField(f"{where}.due_on", "A due date is not in the past.")
                if existing is not None:
                    if existing.is_open:
                        changed = (existing.kind, existing.provider, existing.due_on) != (
                            kind,
                            service_in["provider"],
                            service_in["due_on"],
                        )
                        existing.kind = kind
                        existing.provider = service_in["provider"]
                        existing.due_on = service_in["due_on"]
                        if changed:
                            existing.updated_at, existing.updated_by = now, by.user_id
                    existing.goal_id = goal.goal_id
                    existing.position = position
                    kept.add(existing.service_id)
                else:
                    self.services.append(
                        Service(
                            service_id=uuid.uuid4(),
                            goal_id=goal.goal_id,
                            kind=kind,
                            provider=service_in["provider"],
                            due_on=service_in["due_on"],
                            updated_at=now,
                            updated_by=by.user_id,
                            position=position,
                        )
                    )
                position += 1
        for service in self.services:
            if service.service_id in known and service.service_id not in kept:
                if service.status == ServiceStatus.planned:
                    service.status = ServiceStatus.cancelled
                    service.status_note = "left out of the plan"
                    service.updated_at, service.updated_by = now, by.user_id
                elif service.is_open:
                    raise WrongState(
                        "a service already under way is cancelled, not left out of the plan"
                    )
        plan = self.plan
        if plan is None:
            self.plan = Plan(1, PlanState.draft, new_goals, by.user_id, now)
        elif plan.state == PlanState.approved:
            self.plan = Plan(
                plan.version + 1,
                PlanState.draft,
                new_goals,
                by.user_id,
                now,
                approved_version=plan.approved_version,
            )
        else:
            plan.goals = new_goals
            plan.state = PlanState.draft
            plan.written_by, plan.written_at = by.user_id, now
            plan.submitted_by = plan.submitted_at = None
        self._changed()

    def submit_plan(self, by: Person, now: dt.datetime) -> None:
        """Ask a supervisor to approve the plan."""
        plan = self._current_plan()
        if not self.is_open_for_work:
            raise WrongState("a closed case, or one waiting for closure, has no plan to approve")
        if plan.state not in (PlanState.draft, PlanState.returned):
            raise WrongState(f"the plan is {plan.state}, not a draft")
        goal_ids = {g.goal_id for g in plan.goals}
        if not any(s.is_open and s.goal_id in goal_ids for s in self.services):
            raise InvalidField("goals", "A plan has at least one service to deliver its goals.")
        plan.state = PlanState.submitted
        plan.submitted_by, plan.submitted_at = by.user_id, now
        plan.decided_by = plan.decided_at = plan.comment = None
        self._changed()

    def approve_plan(self, by: Person, now: dt.datetime, comment: str | None = None) -> None:
        """A supervisor other than its author approves the plan; its services may start."""
        plan = self._submitted_plan(by)
        plan.state = PlanState.approved
        plan.decided_by, plan.decided_at, plan.comment = by.user_id, now, comment
        plan.return_reason = None
        plan.approved_version = plan.version
        goal_ids = {g.goal_id for g in plan.goals}
        for service in self.services:
            if service.goal_id in goal_ids and service.status != ServiceStatus.cancelled:
                service.approved = True
        if self.plan_approved_at is None:
            self.plan_approved_at = now
        self._changed()

    def return_plan(self, by: Person, now: dt.datetime, reason: str) -> None:
        """A supervisor other than its author sends the plan back, saying why."""
        plan = self._submitted_plan(by)
        plan.state = PlanState.returned
        plan.decided_by, plan.decided_at, plan.return_reason = by.user_id, now, reason
        plan.comment = None
        self._changed()

    def _current_plan(self) -> Plan:
        if self.plan is None:
            raise WrongState("the case has no plan yet")
        return self.plan

    def _submitted_plan(self, by: Person) -> Plan:
        plan = self._current_plan()
        if plan.state != PlanState.submitted:
            raise WrongState(f"the plan is {plan.state}, not waiting for approval")
        if by.user_id in (plan.written_by, plan.submitted_by):
            raise FourEyes("another supervisor decides on a plan this supervisor wrote")
        return plan

    # --- services ----------------------------------------------------------------------

    def update_service(
        self, service_id: uuid.UUID, update: Mapping[str, Any], by: Person, now: dt.datetime
    ) -> Service:
        """Move a service on (planned → referred → in progress → delivered), cancel it, or
        change its provider or due date. Only the services of an approved plan move."""
        if not self.is_open_for_work:
            raise WrongState("a closed case, or one waiting for closure, has no service moving")
        service = self.service(service_id)
        if not service.approved:
            raise WrongState("the plan with this service is not approved yet")
        status = ServiceStatus(update["status"])
        if status != service.status:
            allowed = SERVICE_TRANSITIONS[service.status] | (
                {ServiceStatus.cancelled} if service.is_open else set()
            )
            if status not in allowed:
                raise WrongState(f"a {service.status} service does not become {status}")
        elif not service.is_open:
            raise WrongState(f"a {service.status} service does not change")
        today = now.date()
        delivered_on = update.get("delivered_on")
        if delivered_on is not None and delivered_on > today:
            raise InvalidField("delivered_on", "A delivery is not dated in the future.")
        due_on = update.get("due_on")
        if due_on is not None and due_on != service.due_on and due_on < today:
            raise InvalidField("due_on", "A due date is not in the past.")
        service.status = status
        service.delivered_on = delivered_on
        if update.get("status_note") is not None or status == ServiceStatus.cancelled:
            service.status_note = update.get("status_note")
        if update.get("provider"):
            service.provider = update["provider"]
        if due_on is not None:
            service.due_on = due_on
        service.updated_at, service.updated_by = now, by.user_id
        if status in STARTED_SERVICE and self.services_started_at is None:
            self.services_started_at = now
        self._changed()
        return service

    # --- follow-ups and reviews ---------------------------------------------------------

    def schedule_follow_up(
        self, kind: FollowUpKind, due_on: dt.date, by: Person, now: dt.datetime
    ) -> FollowUp:
        if self.is_closed:
            raise WrongState("a closed case has no follow-up")
        if due_on < now.date():
            raise InvalidField("due_on", "A due date is not in the past.")
        if sum(f.status == FollowUpStatus.scheduled for f in self.follow_ups) >= (
            MAX_OPEN_FOLLOW_UPS
        ):
            raise WrongState(f"at most {MAX_OPEN_FOLLOW_UPS} follow-ups are scheduled at once")
        follow_up = FollowUp(uuid.uuid4(), FollowUpKind(kind), due_on, by.user_id, now)
        self.follow_ups.append(follow_up)
        self._changed()
        return follow_up

    def record_follow_up(
        self, follow_up_id: uuid.UUID, outcome: Mapping[str, Any], by: Person, now: dt.datetime
    ) -> FollowUp:
        """Record what a visit, call or review found. A review records the child's own
        views (or why they could not be). `next_due_on` schedules the next one."""
        if self.is_closed:
            raise WrongState("a closed case has no follow-up")
        follow_up = self.follow_up(follow_up_id)
        if follow_up.status != FollowUpStatus.scheduled:
            raise WrongState(f"this follow-up is {follow_up.status}")
        today = now.date()
        if outcome["done_on"] > today:
            raise InvalidField("done_on", "A follow-up is not recorded before it happens.")
        views, not_recorded = outcome.get("child_views"), outcome.get("child_views_not_recorded")
        if follow_up.kind == FollowUpKind.review and not views and not not_recorded:
            raise InvalidField(
                "child_views", "A review records the child's own views, or why it could not."
            )
        next_due_on = outcome.get("next_due_on")
        if next_due_on is not None and next_due_on < today:
            raise InvalidField("next_due_on", "A due date is not in the past.")
        follow_up.status = FollowUpStatus.done
        follow_up.done_on = outcome["done_on"]
        follow_up.recorded_by, follow_up.recorded_at = by.user_id, now
        follow_up.summary = outcome["summary"]
        follow_up.child_views = views
        follow_up.child_views_not_recorded = (
            ViewsNotRecorded(not_recorded) if not_recorded else None
        )
        self._changed()
        if next_due_on is not None:
            self.schedule_follow_up(follow_up.kind, next_due_on, by, now)
        return follow_up

    def cancel_follow_up(
        self, follow_up_id: uuid.UUID, reason: str, by: Person, now: dt.datetime
    ) -> FollowUp:
        if self.is_closed:
            raise WrongState("a closed case has no follow-up")
        follow_up = self.follow_up(follow_up_id)
        if follow_up.status != FollowUpStatus.scheduled:
            raise WrongState(f"this follow-up is {follow_up.status}")
        follow_up.status = FollowUpStatus.cancelled
        follow_up.cancel_reason = reason
        follow_up.recorded_by, follow_up.recorded_at = by.user_id, now
        self._changed()
        return follow_up

    # --- closure -----------------------------------------------------------------------

    def request_closure(
        self,
        reason: ClosureReason,
        reason_text: str | None,
        by: Person,
        now: dt.datetime,
        partner_concerns: Iterable[ClosureWarning] = (),
    ) -> Closure:
        """Ask a supervisor to close the case. The request carries what closing would
        leave open (partners still at work, services, follow-ups) for the supervisor to
        weigh. A plan waiting for approval goes back to draft."""
        if self.is_closed:
            raise WrongState("the case is closed")
        if self.closure_requested_at is not None:
            raise WrongState("closure is already requested")
        if reason == ClosureReason.other and not reason_text:
            raise InvalidField("reason_text", "Explain the reason.")
        warnings = list(partner_concerns)
        if any(s.is_open for s in self.services):
            warnings.append(ClosureWarning.services_open)
        if any(f.status == FollowUpStatus.scheduled for f in self.follow_ups):
            warnings.append(ClosureWarning.follow_ups_open)
        if self.plan is not None and self.plan.state == PlanState.submitted:
            self.plan.state = PlanState.draft
            self.plan.submitted_by = self.plan.submitted_at = None
        self.closure = Closure(
            uuid.uuid4(), ClosureReason(reason), reason_text, by.user_id, now, warnings
        )
        self.closure_requested_at = now
        self._changed()
        return self.closure

    def approve_closure(self, by: Person, now: dt.datetime, comment: str | None = None) -> None:
        """A supervisor other than the requester closes the case. What was still open
        (services, scheduled follow-ups) is cancelled with it."""
        closure = self._requested_closure(by)
        closure.decision, closure.decided_by, closure.decided_at = "approved", by.user_id, now
        closure.comment = comment
        for service in self.services:
            if service.is_open:
                service.status = ServiceStatus.cancelled
                service.status_note = "the case was closed"
                service.updated_at, service.updated_by = now, by.user_id
        for follow_up in self.follow_ups:
            if follow_up.status == FollowUpStatus.scheduled:
                follow_up.status = FollowUpStatus.cancelled
                follow_up.cancel_reason = "the case was closed"
                follow_up.recorded_by, follow_up.recorded_at = by.user_id, now
        self.closed_at = now
        self._changed()

    def reject_closure(self, by: Person, now: dt.datetime, reason: str) -> None:
        """A supervisor other than the requester keeps the case open, saying why."""
        closure = self._requested_closure(by)
        closure.decision, closure.decided_by, closure.decided_at = "rejected", by.user_id, now
        closure.reject_reason = reason
        self.closure_requested_at = None
        self._changed()

    def reopen(self, reason: str, by: Person, now: dt.datetime) -> None:
        """A closed case opens again (a new concern): its status is what the work done
        makes it, without the closure."""
        if not self.is_closed:
            raise WrongState("only a closed case is reopened")
        record = Reopening(by.user_id, now, reason)
        self.reopenings.append(record)
        self.new_records.append(record)
        self.closed_at = None
        self.closure_requested_at = None
        self._changed()

    # --- the hub's decisions -----------------------------------------------------------

    @property
    def untouched(self) -> bool:
        """Nothing was done on the case since it opened: no change to it, no note."""
        return self.version == 1 and self.notes_count == 0

    def referral_withdrawn(self, decision: HubDecision, now: dt.datetime) -> Withdrawal | None:
        """The hub no longer routes the referral to social services (revoked, or declined
        at the hub). An untouched case closes with it; a case already worked on keeps
        going and carries the withdrawal for its people to decide. A closed case is left
        as it is (None: nothing changed)."""
        if decision.agency != AGENCY:
            raise ValueError(f"a decision about {decision.agency} is not this case's")
        if self.is_closed:
            return None
        closes = self.untouched
        self.withdrawal = Withdrawal(decision.kind, decision.reason, decision.at, closes)
        if closes:
            self.closed_at = now
        self._changed()
        return self.withdrawal

    @property
    def closed_by_withdrawal(self) -> bool:
        """Closed because the hub took the referral back before anyone worked on it."""
        return self.is_closed and self.withdrawal is not None and self.withdrawal.case_closed

    def accepted_again(self, by: Person, now: dt.datetime) -> bool:
        """Social services accept the referral again, the hub having routed it back after
        its withdrawal closed the case: the same case opens again (one case per referral),
        its reopening recorded, the withdrawal gone. True when it did."""
        if not self.closed_by_withdrawal:
            return False
        self.reopen(REOPENED_ROUTED_AGAIN, by, now)
        self.withdrawal = None
        return True

    def routed_again(self) -> bool:
        """The hub routed the referral to social services again, after a withdrawal the
        case kept working through: the mark goes. True when it did."""
        if self.withdrawal is None or self.withdrawal.case_closed:
            return False
        self.withdrawal = None
        self._changed()
        return True

    def _requested_closure(self, by: Person) -> Closure:
        if self.closure_requested_at is None or self.closure is None or self.is_closed:
            raise WrongState("no closure is waiting for a decision")
        if by.user_id == self.closure.requested_by:
            raise FourEyes("another supervisor decides on a closure this supervisor requested")
        return self.closure

    def _changed(self) -> None:
        self.version += 1


# --- from the hub's details -----------------------------------------------------------


class IncompleteDetails(Exception):
    """The hub's answer names another referral."""


CHILD_FIELDS_FROM_REFERRAL = ("given_name", "family_name", "date_of_birth", "age_years", "sex")


def child_record(coordination_id: uuid.UUID, details: Mapping[str, Any]) -> dict[str, Any]:
    """The child's record from a referral's pulled details (`ReferralDetailsSchema` JSON).

    A referral may know little of the child (a child's own report may give no name): the
    record then starts partial and the social worker completes it."""
    if str(details.get("coordination_id")) != str(coordination_id):
        raise IncompleteDetails("the details are of another referral")
    child = details.get("child")
    if child is not None and not isinstance(child, Mapping):
        raise IncompleteDetails("the details hold no readable child record")
    child = child or {}
    record = {name: child.get(name) for name in CHILD_FIELDS_FROM_REFERRAL}
    record.update({"languages": [], "interpreter_needed": False, "disabilities": []})
    return record


def age_on(child: Mapping[str, Any], today: dt.date) -> int | None:
    """The child's age today: from the date of birth when known, else the age recorded."""
    born = child.get("date_of_birth")
    if born:
        born = dt.date.fromisoformat(born) if isinstance(born, str) else born
        return today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    age = child.get("age_years")
    return int(age) if age is not None else None
