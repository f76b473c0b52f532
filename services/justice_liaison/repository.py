"""Reads and writes of justice's tables, turning rows into domain objects.

The pulled details are sealed here on the way in and unsealed on the way out: nothing
above this module sees a ciphertext.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from concord_contracts.codes import InvestigationStatus
from concord_kit import crypto
from concord_kit.partners import PartnerStatuses, as_utc
from justice_liaison.domain import Investigation
from justice_liaison.models import investigations, partner_status


class InvestigationRepository:
    def __init__(self, session: Session):
        self.session = session
        self.partners = PartnerStatuses(session, partner_status)

    def add(self, investigation: Investigation) -> None:
        """Insert a new record. Raises IntegrityError when the referral already has one."""
        self.session.execute(
            investigations.insert().values(
                investigation_id=str(investigation.investigation_id),
                coordination_id=str(investigation.coordination_id),
                status=str(investigation.status),
                opened_at=investigation.opened_at,
                opened_by=investigation.opened_by,
                sealed_details=crypto.seal(dict(investigation.details)),
            )
        )

    def set_status(self, investigation: Investigation) -> None:
        self.session.execute(
            investigations.update()
            .where(investigations.c.investigation_id == str(investigation.investigation_id))
            .values(status=str(investigation.status))
        )

    def for_referral(self, coordination_id: uuid.UUID, lock: bool = False) -> Investigation | None:
        query = sa.select(investigations).where(
            investigations.c.coordination_id == str(coordination_id)
        )
        if lock:
            query = query.with_for_update()
        row = self.session.execute(query).mappings().first()
        if row is None:
            return None
        return Investigation(
            investigation_id=uuid.UUID(row["investigation_id"]),
            coordination_id=uuid.UUID(row["coordination_id"]),
            status=InvestigationStatus(row["status"]),
            opened_at=as_utc(row["opened_at"]),  # type: ignore[arg-type]
            opened_by=row["opened_by"],
            details=crypto.unseal(row["sealed_details"]),
        )
