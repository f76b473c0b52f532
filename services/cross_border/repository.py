"""Reads and writes of the central authority's tables, turning rows into domain objects."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from concord_contracts.codes import DeadlineClock, Instrument, Measure, Organisation, RequestStatus
from concord_kit.partners import PartnerStatuses, as_utc
from cross_border.domain import Deadline, Request
from cross_border.models import partner_status, requests


class RequestRepository:
    def __init__(self, session: Session):
        self.session = session
        self.partners = PartnerStatuses(session, partner_status)

    def add(self, request: Request) -> None:
        deadline = request.deadline
        self.session.execute(
            requests.insert().values(
                request_id=str(request.request_id),
                coordination_id=str(request.coordination_id),
                instrument=str(request.instrument),
                executing_country=request.executing_country,
                emergency=request.emergency,
                measures=[str(m) for m in request.measures],
                status=str(request.status),
                filed_at=request.filed_at,
                filed_by=request.filed_by,
                filed_by_agency=str(request.filed_by_agency),
                clock=None if deadline.clock is None else str(deadline.clock),
                due_at=deadline.due_at,
                deadline_source=deadline.source,
                silence_warning_at=deadline.silence_warning_at,
            )
        )

    def get(self, request_id: uuid.UUID) -> Request | None:
        row = (
            self.session.execute(
                sa.select(requests).where(requests.c.request_id == str(request_id))
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        return Request(
            request_id=uuid.UUID(row["request_id"]),
            coordination_id=uuid.UUID(row["coordination_id"]),
            instrument=Instrument(row["instrument"]),
            executing_country=row["executing_country"],
            emergency=bool(row["emergency"]),
            measures=tuple(Measure(m) for m in row["measures"]),
            status=RequestStatus(row["status"]),
            filed_at=as_utc(row["filed_at"]),  # type: ignore[arg-type]
            filed_by=row["filed_by"],
            filed_by_agency=Organisation(row["filed_by_agency"]),
            deadline=Deadline(
                clock=None if row["clock"] is None else DeadlineClock(row["clock"]),
                due_at=as_utc(row["due_at"]),
                source=row["deadline_source"],
                silence_warning_at=as_utc(row["silence_warning_at"]),
            ),
        )
