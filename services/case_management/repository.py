"""Reads and writes of social services' tables, turning rows into domain objects.

The child's record is sealed here on the way in and unsealed on the way out: nothing above
this module sees a ciphertext.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from case_management.domain import Case
from case_management.models import cases, partner_status
from concord_kit import crypto
from concord_kit.partners import PartnerStatuses, as_utc

MILESTONES = (
    "assessed_at",
    "plan_approved_at",
    "services_started_at",
    "closure_requested_at",
    "closed_at",
)


class CaseRepository:
    def __init__(self, session: Session):
        self.session = session
        self.partners = PartnerStatuses(session, partner_status)

    def add(self, case: Case) -> None:
        """Insert a new case. Raises IntegrityError when the referral already has one."""
        self.session.execute(
            cases.insert().values(
                case_id=str(case.case_id),
                coordination_id=str(case.coordination_id),
                status=str(case.status),
                opened_at=case.opened_at,
                opened_by=case.opened_by,
                assigned_to=case.assigned_to,
                sealed_child=crypto.seal(dict(case.child)),
                **{name: getattr(case, name) for name in MILESTONES},
            )
        )

    def get(self, case_id: uuid.UUID) -> Case | None:
        return self._one(cases.c.case_id == str(case_id))

    def for_referral(self, coordination_id: uuid.UUID) -> Case | None:
        return self._one(cases.c.coordination_id == str(coordination_id))

    def _one(self, where) -> Case | None:
        row = self.session.execute(sa.select(cases).where(where)).mappings().first()
        if row is None:
            return None
        return Case(
            case_id=uuid.UUID(row["case_id"]),
            coordination_id=uuid.UUID(row["coordination_id"]),
            opened_at=as_utc(row["opened_at"]),  # type: ignore[arg-type]
            opened_by=row["opened_by"],
            assigned_to=row["assigned_to"],
            child=crypto.unseal(row["sealed_child"]),
            **{name: as_utc(row[name]) for name in MILESTONES},
        )
