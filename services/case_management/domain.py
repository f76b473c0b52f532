"""Social services' work, in plain Python (no nameko, no SQL).

When the referral hub routes a referral to social services, a social worker (or a
supervisor) *accepts* it: the service pulls the referral's details from the hub and opens
a *case*, assigned to the person who accepted it. A case holds the child's record and,
as the work goes on, the assessment, the case plan, the services delivered, the reviews
and the closure (shared/DESIGN.md). Its workflow status is never typed in: it follows
from what has been done (`Case.status`).

Who sees a case: the social worker it is assigned to, and the supervisors of social
services. Nobody else, whatever their role; every read and every refusal is audited.

Beside its own cases, the service keeps where its partners stand on each referral (the
investigation, a request abroad), from their status events: see `concord_kit.partners`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from concord_contracts.codes import Agency, CaseStatus, Organisation, Role

AGENCY = Agency.social_services
"""The agency this service works for: the key of its own status in everyone's pipeline."""

ACCEPTING_ROLES = frozenset({Role.social_worker, Role.supervisor})
"""Who, in social services, may take a referral on (and open a case for it)."""


class Person(Protocol):
    """Whoever asks: the caller identity that travels with every call."""

    user_id: str
    role: Role
    agency: Organisation


@dataclass(frozen=True)
class Decision:
    """An answer to "may this person do this?", with the reason written to the audit trail."""

    allowed: bool
    reason: str


def is_staff(person: Person) -> bool:
    return person.agency == Organisation.social_services and person.role in ACCEPTING_ROLES


def may_accept(person: Person) -> Decision:
    """A social worker or a supervisor of social services accepts referrals for it."""
    if not is_staff(person):
        return Decision(False, f"{person.role} of {person.agency} does not accept for {AGENCY}")
    return Decision(True, f"{person.role} accepts for {AGENCY}")


@dataclass
class Case:
    """A social-services case: one per referral (coordination id) taken on.

    The milestones are the facts the workflow status is derived from; each is a time (UTC)
    once it happened. `child` is the child's record as pulled from the referral (the JSON
    form of `ChildSchema`): it is personal data and is stored sealed."""

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

    @classmethod
    def open(
        cls,
        coordination_id: uuid.UUID,
        child: Mapping[str, Any],
        accepted_by: Person,
        now: dt.datetime,
    ) -> Case:
        """The case a referral becomes when social services take it on: new, and assigned to
        the person who accepted it (a supervisor may hand it on later)."""
        return cls(
            case_id=uuid.uuid4(),
            coordination_id=coordination_id,
            opened_at=now,
            opened_by=accepted_by.user_id,
            assigned_to=accepted_by.user_id,
            child=dict(child),
        )

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


def may_read_cases(person: Person) -> Decision:
    """The first gate, before any case is looked up: only social services staff read cases
    (so that nobody else even learns whether a case exists)."""
    if not is_staff(person):
        return Decision(False, f"{person.role} of {person.agency} does not read cases")
    return Decision(True, "social services staff")


class IncompleteDetails(Exception):
    """The hub's answer lacks the child's record (or names another referral)."""


def child_record(coordination_id: uuid.UUID, details: Mapping[str, Any]) -> dict[str, Any]:
    """The child's record from a referral's pulled details (`ReferralDetailsSchema` JSON)."""
    if str(details.get("coordination_id")) != str(coordination_id):
        raise IncompleteDetails("the details are of another referral")
    child = details.get("child")
    if not isinstance(child, Mapping) or not child.get("given_name"):
        raise IncompleteDetails("the details hold no child record")
    return dict(child)
