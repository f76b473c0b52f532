"""Reads and writes of the referral hub's tables, turning rows into domain objects.

The personal parts of a referral are sealed here on the way in and unsealed on the way
out; nothing above this module sees a ciphertext, nothing below it sees a name.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from concord_contracts.codes import (
    Agency,
    AgencyStatus,
    Category,
    Channel,
    ConsentGivenBy,
    ConsentStatus,
    Flag,
    LegalBasis,
    ReporterKind,
    Sex,
    Stage,
    Urgency,
)
from concord_contracts.rpc import ChildSchema, ContactSchema
from concord_kit import crypto
from referral.domain import URGENCY_RANK, AgencyState, Pipeline, RoutingDecision
from referral.models import agency_statuses, pipeline, referrals


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite hands times back without their offset; every time here was written in UTC."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def _aware_or_none(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else _aware(value)


def _optional(code_type, value):
    return None if value is None else code_type(value)


class ReferralRepository:
    def __init__(self, session: Session):
        self.session = session

    # --- writes ---------------------------------------------------------------------

    def add_referral(
        self,
        coordination_id: uuid.UUID,
        submission: dict[str, Any],
        decision: RoutingDecision,
        received_at: dt.datetime,
        submitted_by: str,
    ) -> None:
        """Store a referral as reported (`submission` as ReferralSubmissionSchema loads it)."""
        reporter, consent = submission["reporter"], submission["consent"]
        contact = reporter.get("contact")
        sealed = crypto.seal(
            {
                "child": ChildSchema().dump(submission["child"]),
                "reporter_contact": None if contact is None else ContactSchema().dump(contact),
                "summary": submission["summary"],
            }
        )
        self.session.execute(
            referrals.insert().values(
                coordination_id=str(coordination_id),
                received_at=received_at,
                channel=str(submission["channel"]),
                categories=[str(c) for c in submission["categories"]],
                urgency=str(submission["urgency"]),
                reporter_kind=str(reporter["kind"]),
                consent_status=str(consent["status"]),
                consent_by=str(consent["by"]),
                legal_basis=_optional(str, consent.get("legal_basis")),
                routing_rule=decision.rule,
                submitted_by=submitted_by,
                sealed_details=sealed,
            )
        )

    def add_pipeline(self, row: Pipeline) -> None:
        self.session.execute(
            pipeline.insert().values(
                coordination_id=str(row.coordination_id),
                stage=str(row.stage),
                urgency=str(row.urgency),
                channel=str(row.channel),
                categories=[str(c) for c in row.categories],
                received_at=row.received_at,
                flags=[str(f) for f in row.flags],
                updated_at=dt.datetime.now(dt.UTC),
            )
        )
        for state in row.agencies.values():
            self.session.execute(
                agency_statuses.insert().values(
                    coordination_id=str(row.coordination_id), **self._state_values(state)
                )
            )

    def save_pipeline(self, row: Pipeline) -> None:
        """Write back the stage, flags and every agency's state of a pipeline row."""
        cid = str(row.coordination_id)
        self.session.execute(
            pipeline.update()
            .where(pipeline.c.coordination_id == cid)
            .values(
                stage=str(row.stage),
                flags=[str(f) for f in row.flags],
                updated_at=dt.datetime.now(dt.UTC),
            )
        )
        for state in row.agencies.values():
            values = self._state_values(state)
            updated = self.session.execute(
                agency_statuses.update()
                .where(agency_statuses.c.coordination_id == cid)
                .where(agency_statuses.c.agency == values["agency"])
                .values(**values)
            )
            if cast(sa.CursorResult, updated).rowcount == 0:
                self.session.execute(agency_statuses.insert().values(coordination_id=cid, **values))

    @staticmethod
    def _state_values(state: AgencyState) -> dict[str, Any]:
        return {
            "agency": str(state.agency),
            "routed": state.routed,
            "rule": state.rule,
            "status": str(state.status),
            "since": state.since,
            "detail": state.detail,
            "accepted_at": state.accepted_at,
            "last_sequence": state.last_sequence,
        }

    # --- reads ----------------------------------------------------------------------

    def pipeline(self, coordination_id: uuid.UUID, *, lock: bool = False) -> Pipeline | None:
        """One pipeline row with its agencies; `lock` holds it until the transaction ends
        (PostgreSQL), so that two events about one referral are applied one after the other."""
        cid = str(coordination_id)
        query = sa.select(pipeline).where(pipeline.c.coordination_id == cid)
        if lock:
            query = query.with_for_update()
        found = self.session.execute(query).mappings().first()
        if found is None:
            return None
        states = self.session.execute(
            sa.select(agency_statuses).where(agency_statuses.c.coordination_id == cid)
        ).mappings()
        agencies = {}
        for state in states:
            agency = Agency(state["agency"])
            agencies[agency] = AgencyState(
                agency=agency,
                status=AgencyStatus(state["status"]),
                since=_aware(state["since"]),
                routed=bool(state["routed"]),
                rule=state["rule"],
                detail=state["detail"],
                accepted_at=_aware_or_none(state["accepted_at"]),
                last_sequence=int(state["last_sequence"]),
            )
        return Pipeline(
            coordination_id=uuid.UUID(found["coordination_id"]),
            stage=Stage(found["stage"]),
            urgency=Urgency(found["urgency"]),
            channel=Channel(found["channel"]),
            categories=tuple(Category(c) for c in found["categories"]),
            received_at=_aware(found["received_at"]),
            agencies={a: agencies[a] for a in Agency if a in agencies},
            flags=[Flag(f) for f in found["flags"]],
        )

    def details(self, coordination_id: uuid.UUID) -> dict[str, Any] | None:
        """The referral as reported, unsealed, in the shape ReferralDetailsSchema dumps."""
        row = (
            self.session.execute(
                sa.select(referrals).where(referrals.c.coordination_id == str(coordination_id))
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        personal = crypto.unseal(row["sealed_details"])
        child = dict(personal["child"])
        child["sex"] = Sex(child["sex"])
        if child.get("date_of_birth") is not None:
            child["date_of_birth"] = dt.date.fromisoformat(child["date_of_birth"])
        return {
            "coordination_id": uuid.UUID(row["coordination_id"]),
            "received_at": _aware(row["received_at"]),
            "channel": Channel(row["channel"]),
            "categories": [Category(c) for c in row["categories"]],
            "urgency": Urgency(row["urgency"]),
            "child": child,
            "reporter": {
                "kind": ReporterKind(row["reporter_kind"]),
                "contact": personal["reporter_contact"],
            },
            "summary": personal["summary"],
            "consent": {
                "status": ConsentStatus(row["consent_status"]),
                "by": ConsentGivenBy(row["consent_by"]),
                "legal_basis": _optional(LegalBasis, row["legal_basis"]),
            },
        }

    def intake_queue(self, agency: Agency) -> list[dict[str, Any]]:
        """The referrals routed to `agency`, most urgent first, then newest first."""
        urgency_rank = sa.case(
            {str(urgency): rank for urgency, rank in URGENCY_RANK.items()},
            value=pipeline.c.urgency,
            else_=len(URGENCY_RANK),
        )
        rows = self.session.execute(
            sa.select(
                pipeline.c.coordination_id,
                pipeline.c.received_at,
                pipeline.c.channel,
                pipeline.c.categories,
                pipeline.c.urgency,
                agency_statuses.c.status,
                agency_statuses.c.since,
            )
            .join(agency_statuses, agency_statuses.c.coordination_id == pipeline.c.coordination_id)
            .where(agency_statuses.c.agency == str(agency))
            .where(agency_statuses.c.routed.is_(True))
            .order_by(urgency_rank, pipeline.c.received_at.desc(), pipeline.c.coordination_id)
        ).mappings()
        return [
            {
                "coordination_id": uuid.UUID(row["coordination_id"]),
                "received_at": _aware(row["received_at"]),
                "channel": Channel(row["channel"]),
                "categories": [Category(c) for c in row["categories"]],
                "urgency": Urgency(row["urgency"]),
                "status": AgencyStatus(row["status"]),
                "since": _aware(row["since"]),
            }
            for row in rows
        ]
