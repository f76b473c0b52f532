"""Reads and writes of social services' tables, turning rows into domain objects.

Personal data and free text are sealed here on the way in and unsealed on the way out:
nothing above this module sees a ciphertext. A case is loaded and saved whole (its
plan, services, follow-ups, closure and history are small); the case row is locked while
a change is made, so two writers of one case take turns.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Session

from case_management.domain import (
    Assessment,
    Assignment,
    Case,
    Closure,
    FollowUp,
    Goal,
    Note,
    Plan,
    Reopening,
    RequestAbroad,
    Service,
    Withdrawal,
)
from case_management.models import (
    case_assessments,
    case_assignments,
    case_closures,
    case_follow_ups,
    case_notes,
    case_plans,
    case_reopenings,
    case_services,
    cases,
    partner_status,
    requests_abroad,
)
from concord_contracts.codes import (
    AgencyStatus,
    CaseOrigin,
    ClosureReason,
    ClosureWarning,
    FollowUpKind,
    FollowUpStatus,
    NeedDomain,
    PlanState,
    RiskLevel,
    ServiceKind,
    ServiceStatus,
    ViewsNotRecorded,
)
from concord_kit import crypto
from concord_kit.partners import PartnerStatuses, as_utc, is_newer

MILESTONES = (
    "assessed_at",
    "plan_approved_at",
    "services_started_at",
    "closure_requested_at",
    "closed_at",
)
# Cases with nothing due sort last: this date stands for "never" in the ordering.
NEVER = dt.date(9999, 12, 31)


class BadCursor(ValueError):
    """A pagination cursor this service did not make (or made for another query)."""


def _seal_or_none(value: Any) -> str | None:
    return None if value is None else crypto.seal(value)


def _unseal_or_none(token: str | None) -> Any:
    return None if token is None else crypto.unseal(token)


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps([v.isoformat() if hasattr(v, "isoformat") else v for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadCursor("not a cursor") from None
    if not isinstance(values, list) or len(values) != size:
        raise BadCursor("not a cursor")
    return values


@dataclass(frozen=True)
class CaseListRow:
    """One case as a list shows it (the child's name unsealed, nothing else personal)."""

    case_id: uuid.UUID
    coordination_id: uuid.UUID
    status: str
    origin: str
    version: int
    opened_at: dt.datetime
    assigned_to: str
    child: dict[str, Any]
    risk_level: str | None
    next_due_on: dt.date | None
    next_due_kind: str | None
    pending_approval: str | None
    pending_since: dt.datetime | None


class CaseRepository:
    def __init__(self, session: Session):
        self.session = session
        self.partners = PartnerStatuses(session, partner_status)

    # --- the case, whole --------------------------------------------------------------

    def add(self, case: Case, today: dt.date) -> None:
        """Insert a new case. Raises IntegrityError when the referral already has one."""
        self.session.execute(
            cases.insert().values(
                case_id=str(case.case_id),
                coordination_id=str(case.coordination_id),
                opened_at=case.opened_at,
                opened_by=case.opened_by,
                **self._case_values(case, today),
            )
        )
        self._save_parts(case)

    def save(self, case: Case, today: dt.date) -> None:
        """Write back a case loaded with `load(..., lock=True)` and changed by the domain."""
        self.session.execute(
            cases.update()
            .where(cases.c.case_id == str(case.case_id))
            .values(**self._case_values(case, today))
        )
        self._save_parts(case)

    def get(self, case_id: uuid.UUID, lock: bool = False) -> Case | None:
        return self._load(cases.c.case_id == str(case_id), lock)

    load = get

    def for_referral(self, coordination_id: uuid.UUID, lock: bool = False) -> Case | None:
        return self._load(cases.c.coordination_id == str(coordination_id), lock)

    def carries_withdrawal(self, coordination_id: uuid.UUID) -> bool:
        """Whether the referral's case carries a withdrawal it kept working through (one
        indexed look, so that a routing event need not load the case)."""
        found = self.session.execute(
            sa.select(cases.c.case_id).where(
                cases.c.coordination_id == str(coordination_id),
                cases.c.withdrawal_kind.is_not(None),
                cases.c.withdrawal_closed_case.is_(False),
            )
        ).first()
        return found is not None

    def _case_values(self, case: Case, today: dt.date) -> dict[str, Any]:
        due = case.due(today)
        return {
            "status": str(case.status),
            "assigned_to": case.assigned_to,
            "assigned_at": case.assigned_at,
            "origin": str(case.origin),
            "version": case.version,
            "risk_level": str(case.risk_level) if case.risk_level else None,
            "next_due_on": due.next_due_on,
            "next_due_kind": due.next_due_kind,
            "pending_approval": case.pending_approval,
            "pending_since": case.pending_since,
            "assessments_count": case.assessments_count,
            "sealed_child": crypto.seal(dict(case.child)),
            "sealed_contact": _seal_or_none(dict(case.contact) if case.contact else None),
            "sealed_family": crypto.seal({"members": list(case.family)}),
            "sealed_people": crypto.seal({"members": list(case.people)}),
            "sealed_safety": _seal_or_none(dict(case.safety) if case.safety else None),
            **{name: getattr(case, name) for name in MILESTONES},
            **_withdrawal_values(case.withdrawal),
        }

    def _save_parts(self, case: Case) -> None:
        cid = str(case.case_id)
        if case.plan is not None:
            self._upsert(
                case_plans,
                {"case_id": cid, "version": case.plan.version},
                self._plan_values(case.plan),
            )
        for service in case.services:
            self._upsert(
                case_services,
                {"service_id": str(service.service_id)},
                {"case_id": cid, **self._service_values(service)},
            )
        for follow_up in case.follow_ups:
            self._upsert(
                case_follow_ups,
                {"follow_up_id": str(follow_up.follow_up_id)},
                {"case_id": cid, **self._follow_up_values(follow_up)},
            )
        if case.closure is not None:
            self._upsert(
                case_closures,
                {"closure_id": str(case.closure.closure_id)},
                {"case_id": cid, **self._closure_values(case.closure)},
            )
        for record in case.new_records:
            if isinstance(record, Assessment):
                self.session.execute(
                    case_assessments.insert().values(case_id=cid, **_assessment_values(record))
                )
            elif isinstance(record, Reopening):
                self.session.execute(
                    case_reopenings.insert().values(
                        case_id=cid,
                        reopened_by=record.reopened_by,
                        reopened_at=record.reopened_at,
                        sealed_reason=crypto.seal({"reason": record.reason}),
                    )
                )
            elif isinstance(record, Assignment):
                self.session.execute(
                    case_assignments.insert().values(
                        case_id=cid,
                        assigned_to=record.assigned_to,
                        assigned_by=record.assigned_by,
                        assigned_at=record.assigned_at,
                        by_supervisor=record.by_supervisor,
                        sealed_reason=_seal_or_none(
                            {"reason": record.reason} if record.reason else None
                        ),
                    )
                )
        case.new_records.clear()

    def _upsert(self, table: sa.Table, key: dict[str, Any], values: dict[str, Any]) -> None:
        where = sa.and_(*(table.c[name] == value for name, value in key.items()))
        updated = self.session.execute(table.update().where(where).values(**values))
        if updated.rowcount == 0:  # type: ignore[attr-defined]
            self.session.execute(table.insert().values(**key, **values))

    @staticmethod
    def _plan_values(plan: Plan) -> dict[str, Any]:
        return {
            "state": str(plan.state),
            "written_by": plan.written_by,
            "written_at": plan.written_at,
            "submitted_by": plan.submitted_by,
            "submitted_at": plan.submitted_at,
            "decided_by": plan.decided_by,
            "decided_at": plan.decided_at,
            "approved_version": plan.approved_version,
            "sealed_content": crypto.seal(
                {
                    "goals": [
                        {
                            "goal_id": str(g.goal_id),
                            "domain": str(g.domain),
                            "description": g.description,
                        }
                        for g in plan.goals
                    ],
                    "comment": plan.comment,
                    "return_reason": plan.return_reason,
                }
            ),
        }

    @staticmethod
    def _service_values(service: Service) -> dict[str, Any]:
        return {
            "goal_id": str(service.goal_id),
            "position": service.position,
            "kind": str(service.kind),
            "status": str(service.status),
            "due_on": service.due_on,
            "delivered_on": service.delivered_on,
            "approved": service.approved,
            "updated_at": service.updated_at,
            "updated_by": service.updated_by,
            "sealed_content": crypto.seal(
                {"provider": service.provider, "status_note": service.status_note}
            ),
        }

    @staticmethod
    def _follow_up_values(follow_up: FollowUp) -> dict[str, Any]:
        return {
            "kind": str(follow_up.kind),
            "status": str(follow_up.status),
            "due_on": follow_up.due_on,
            "scheduled_by": follow_up.scheduled_by,
            "scheduled_at": follow_up.scheduled_at,
            "done_on": follow_up.done_on,
            "recorded_by": follow_up.recorded_by,
            "recorded_at": follow_up.recorded_at,
            "sealed_content": crypto.seal(
                {
                    "summary": follow_up.summary,
                    "child_views": follow_up.child_views,
                    "child_views_not_recorded": (
                        str(follow_up.child_views_not_recorded)
                        if follow_up.child_views_not_recorded
                        else None
                    ),
                    "cancel_reason": follow_up.cancel_reason,
                }
            ),
        }

    @staticmethod
    def _closure_values(closure: Closure) -> dict[str, Any]:
        return {
            "reason": str(closure.reason),
            "warnings": ",".join(str(w) for w in closure.warnings),
            "requested_by": closure.requested_by,
            "requested_at": closure.requested_at,
            "decision": closure.decision,
            "decided_by": closure.decided_by,
            "decided_at": closure.decided_at,
            "sealed_content": crypto.seal(
                {
                    "reason_text": closure.reason_text,
                    "comment": closure.comment,
                    "reject_reason": closure.reject_reason,
                }
            ),
        }

    def _load(self, where, lock: bool) -> Case | None:
        query = sa.select(cases).where(where)
        if lock:
            query = query.with_for_update()
        row = self.session.execute(query).mappings().first()
        if row is None:
            return None
        cid = row["case_id"]
        family = _unseal_or_none(row["sealed_family"]) or {"members": []}
        people = _unseal_or_none(row["sealed_people"]) or {"members": []}
        case = Case(
            case_id=uuid.UUID(cid),
            coordination_id=uuid.UUID(row["coordination_id"]),
            opened_at=as_utc(row["opened_at"]),  # type: ignore[arg-type]
            opened_by=row["opened_by"],
            assigned_to=row["assigned_to"],
            child=crypto.unseal(row["sealed_child"]),
            origin=CaseOrigin(row["origin"]),
            assigned_at=as_utc(row["assigned_at"]),
            version=int(row["version"]),
            contact=_unseal_or_none(row["sealed_contact"]),
            family=family["members"],
            people=people["members"],
            safety=_unseal_or_none(row["sealed_safety"]),
            assessments_count=int(row["assessments_count"]),
            notes_count=int(row["notes_count"]),
            withdrawal=_withdrawal(row),
        )
        for name in MILESTONES:
            setattr(case, name, as_utc(row[name]))
        case.assessment = self._latest_assessment(cid)
        case.plan = self._current_plan(cid)
        case.services = self._services(cid)
        case.follow_ups = self._follow_ups(cid)
        case.closure = self._last_closure(cid)
        case.reopenings = self._reopenings(cid)
        case.assignments = self._assignments(cid)
        return case

    def _newest(self, table: sa.Table, cid: str, newest_by, *ties) -> RowMapping | None:
        """The newest row of one of the case's history tables (by `newest_by`, then `ties`)."""
        query = (
            sa.select(table)
            .where(table.c.case_id == cid)
            .order_by(newest_by.desc(), *ties)
            .limit(1)
        )
        return self.session.execute(query).mappings().first()

    def _latest_assessment(self, cid: str) -> Assessment | None:
        row = self._newest(
            case_assessments, cid, case_assessments.c.recorded_at, case_assessments.c.assessment_id
        )
        return _assessment(row) if row else None

    def assessments(self, case_id: uuid.UUID) -> list[Assessment]:
        rows = self.session.execute(
            sa.select(case_assessments)
            .where(case_assessments.c.case_id == str(case_id))
            .order_by(case_assessments.c.recorded_at.desc(), case_assessments.c.assessment_id)
        ).mappings()
        return [_assessment(row) for row in rows]

    def _current_plan(self, cid: str) -> Plan | None:
        row = self._newest(case_plans, cid, case_plans.c.version)
        if row is None:
            return None
        content = crypto.unseal(row["sealed_content"])
        return Plan(
            version=int(row["version"]),
            state=PlanState(row["state"]),
            goals=[
                Goal(uuid.UUID(g["goal_id"]), NeedDomain(g["domain"]), g["description"])
                for g in content["goals"]
            ],
            written_by=row["written_by"],
            written_at=as_utc(row["written_at"]),  # type: ignore[arg-type]
            submitted_by=row["submitted_by"],
            submitted_at=as_utc(row["submitted_at"]),
            decided_by=row["decided_by"],
            decided_at=as_utc(row["decided_at"]),
            comment=content.get("comment"),
            return_reason=content.get("return_reason"),
            approved_version=row["approved_version"],
        )

    def _services(self, cid: str) -> list[Service]:
        rows = self.session.execute(
            sa.select(case_services)
            .where(case_services.c.case_id == cid)
            .order_by(case_services.c.position, case_services.c.service_id)
        ).mappings()
        services = []
        for row in rows:
            content = crypto.unseal(row["sealed_content"])
            services.append(
                Service(
                    service_id=uuid.UUID(row["service_id"]),
                    goal_id=uuid.UUID(row["goal_id"]),
                    kind=ServiceKind(row["kind"]),
                    provider=content["provider"],
                    due_on=row["due_on"],
                    updated_at=as_utc(row["updated_at"]),  # type: ignore[arg-type]
                    updated_by=row["updated_by"],
                    status=ServiceStatus(row["status"]),
                    delivered_on=row["delivered_on"],
                    status_note=content.get("status_note"),
                    approved=bool(row["approved"]),
                    position=int(row["position"]),
                )
            )
        return services

    def _follow_ups(self, cid: str) -> list[FollowUp]:
        rows = self.session.execute(
            sa.select(case_follow_ups)
            .where(case_follow_ups.c.case_id == cid)
            .order_by(case_follow_ups.c.scheduled_at, case_follow_ups.c.follow_up_id)
        ).mappings()
        follow_ups = []
        for row in rows:
            content = crypto.unseal(row["sealed_content"])
            not_recorded = content.get("child_views_not_recorded")
            follow_ups.append(
                FollowUp(
                    follow_up_id=uuid.UUID(row["follow_up_id"]),
                    kind=FollowUpKind(row["kind"]),
                    due_on=row["due_on"],
                    scheduled_by=row["scheduled_by"],
                    scheduled_at=as_utc(row["scheduled_at"]),  # type: ignore[arg-type]
                    status=FollowUpStatus(row["status"]),
                    done_on=row["done_on"],
                    recorded_by=row["recorded_by"],
                    recorded_at=as_utc(row["recorded_at"]),
                    summary=content.get("summary"),
                    child_views=content.get("child_views"),
                    child_views_not_recorded=ViewsNotRecorded(not_recorded)
                    if not_recorded
                    else None,
                    cancel_reason=content.get("cancel_reason"),
                )
            )
        return follow_ups

    def _last_closure(self, cid: str) -> Closure | None:
        row = self._newest(case_closures, cid, case_closures.c.requested_at)
        if row is None:
            return None
        content = crypto.unseal(row["sealed_content"])
        return Closure(
            closure_id=uuid.UUID(row["closure_id"]),
            reason=ClosureReason(row["reason"]),
            reason_text=content.get("reason_text"),
            requested_by=row["requested_by"],
            requested_at=as_utc(row["requested_at"]),  # type: ignore[arg-type]
            warnings=[ClosureWarning(w) for w in row["warnings"].split(",") if w],
            decision=row["decision"],
            decided_by=row["decided_by"],
            decided_at=as_utc(row["decided_at"]),
            comment=content.get("comment"),
            reject_reason=content.get("reject_reason"),
        )

    def _reopenings(self, cid: str) -> list[Reopening]:
        rows = self.session.execute(
            sa.select(case_reopenings)
            .where(case_reopenings.c.case_id == cid)
            .order_by(case_reopenings.c.id)
        ).mappings()
        return [
            Reopening(
                row["reopened_by"],
                as_utc(row["reopened_at"]),  # type: ignore[arg-type]
                crypto.unseal(row["sealed_reason"])["reason"],
            )
            for row in rows
        ]

    def _assignments(self, cid: str) -> list[Assignment]:
        rows = self.session.execute(
            sa.select(case_assignments)
            .where(case_assignments.c.case_id == cid)
            .order_by(case_assignments.c.id)
        ).mappings()
        return [
            Assignment(
                row["assigned_to"],
                row["assigned_by"],
                as_utc(row["assigned_at"]),  # type: ignore[arg-type]
                (_unseal_or_none(row["sealed_reason"]) or {}).get("reason"),
                bool(row["by_supervisor"]),
            )
            for row in rows
        ]

    # --- notes ------------------------------------------------------------------------

    def add_note(self, note: Note) -> None:
        self.session.execute(
            case_notes.insert().values(
                note_id=str(note.note_id),
                case_id=str(note.case_id),
                written_by=note.written_by,
                written_at=note.written_at,
                sealed_text=crypto.seal({"text": note.text}),
            )
        )
        self.session.execute(
            cases.update()
            .where(cases.c.case_id == str(note.case_id))
            .values(notes_count=cases.c.notes_count + 1)
        )

    def notes(
        self, case_id: uuid.UUID, before: str | None, limit: int
    ) -> tuple[list[Note], str | None]:
        """Newest first, `limit` at a time; the cursor is the last note's (time, id)."""
        t = case_notes
        query = sa.select(t).where(t.c.case_id == str(case_id))
        if before:
            at, note_id = decode_cursor(before, 2)
            try:
                at = dt.datetime.fromisoformat(at)
            except (TypeError, ValueError):
                raise BadCursor("not a cursor") from None
            query = query.where(
                sa.or_(t.c.written_at < at, sa.and_(t.c.written_at == at, t.c.note_id < note_id))
            )
        rows = list(
            self.session.execute(
                query.order_by(t.c.written_at.desc(), t.c.note_id.desc()).limit(limit + 1)
            ).mappings()
        )
        notes = [
            Note(
                uuid.UUID(row["note_id"]),
                case_id,
                crypto.unseal(row["sealed_text"])["text"],
                row["written_by"],
                as_utc(row["written_at"]),  # type: ignore[arg-type]
            )
            for row in rows[:limit]
        ]
        cursor = None
        if len(rows) > limit:
            last = notes[-1]
            cursor = encode_cursor([last.written_at, str(last.note_id)])
        return notes, cursor

    # --- lists ------------------------------------------------------------------------

    def list_cases(
        self,
        *,
        today: dt.date,
        assigned_to: str | None,
        statuses: Iterable[str] = (),
        state: str = "open",
        overdue: bool | None = None,
        risk_levels: Iterable[str] = (),
        origin: str | None = None,
        limit: int = 25,
        cursor: str | None = None,
    ) -> tuple[list[CaseListRow], str | None]:
        """Due and overdue first (by the next due date; nothing due last), then the oldest
        opened; keyset-paginated on (due date, opened at, case id)."""
        t = cases
        due_key = sa.func.coalesce(t.c.next_due_on, NEVER)
        query = sa.select(t)
        if assigned_to is not None:
            query = query.where(t.c.assigned_to == assigned_to)
        statuses = [str(s) for s in statuses]
        if statuses:
            query = query.where(t.c.status.in_(statuses))
        if state == "open":
            query = query.where(t.c.closed_at.is_(None))
        elif state == "closed":
            query = query.where(t.c.closed_at.is_not(None))
        if overdue is True:
            query = query.where(t.c.next_due_on < today)
        elif overdue is False:
            query = query.where(sa.or_(t.c.next_due_on.is_(None), t.c.next_due_on >= today))
        risk_levels = [str(r) for r in risk_levels]
        if risk_levels:
            query = query.where(t.c.risk_level.in_(risk_levels))
        if origin is not None:
            query = query.where(t.c.origin == str(origin))
        if cursor:
            due_on, opened_at, case_id = decode_cursor(cursor, 3)
            try:
                due_on = dt.date.fromisoformat(due_on)
                opened_at = dt.datetime.fromisoformat(opened_at)
                case_id = str(uuid.UUID(case_id))
            except (TypeError, ValueError, AttributeError):
                raise BadCursor("not a cursor") from None
            query = query.where(
                sa.or_(
                    due_key > due_on,
                    sa.and_(due_key == due_on, t.c.opened_at > opened_at),
                    sa.and_(due_key == due_on, t.c.opened_at == opened_at, t.c.case_id > case_id),
                )
            )
        query = query.order_by(due_key, t.c.opened_at, t.c.case_id).limit(limit + 1)
        rows = [self._list_row(row) for row in self.session.execute(query).mappings()]
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_cursor = encode_cursor(
                [last.next_due_on or NEVER, last.opened_at, str(last.case_id)]
            )
        return rows, next_cursor

    def pending_approvals(self, limit: int = 200) -> list[CaseListRow]:
        t = cases
        rows = self.session.execute(
            sa.select(t)
            .where(t.c.pending_approval.is_not(None))
            .order_by(t.c.pending_since, t.c.case_id)
            .limit(limit)
        ).mappings()
        return [self._list_row(row) for row in rows]

    @staticmethod
    def _list_row(row) -> CaseListRow:
        return CaseListRow(
            case_id=uuid.UUID(row["case_id"]),
            coordination_id=uuid.UUID(row["coordination_id"]),
            status=row["status"],
            origin=row["origin"],
            version=int(row["version"]),
            opened_at=as_utc(row["opened_at"]),  # type: ignore[arg-type]
            assigned_to=row["assigned_to"],
            child=crypto.unseal(row["sealed_child"]),
            risk_level=row["risk_level"],
            next_due_on=row["next_due_on"],
            next_due_kind=row["next_due_kind"],
            pending_approval=row["pending_approval"],
            pending_since=as_utc(row["pending_since"]),
        )

    def overdue_counts(self, case_ids: Iterable[uuid.UUID], today: dt.date) -> dict[str, int]:
        """How many open services and scheduled follow-ups are past due, per case."""
        ids = [str(c) for c in case_ids]
        counts: dict[str, int] = dict.fromkeys(ids, 0)
        if not ids:
            return counts
        open_services = [
            str(s)
            for s in (ServiceStatus.planned, ServiceStatus.referred, ServiceStatus.in_progress)
        ]
        for table, condition in (
            (case_services, case_services.c.status.in_(open_services)),
            (case_follow_ups, case_follow_ups.c.status == str(FollowUpStatus.scheduled)),
        ):
            rows = self.session.execute(
                sa.select(table.c.case_id, sa.func.count())
                .where(table.c.case_id.in_(ids), condition, table.c.due_on < today)
                .group_by(table.c.case_id)
            )
            for case_id, count in rows:
                counts[case_id] += int(count)
        return counts

    # --- requests abroad --------------------------------------------------------------

    def requests_abroad(self, coordination_id: uuid.UUID) -> list[RequestAbroad]:
        rows = self.session.execute(
            sa.select(requests_abroad)
            .where(requests_abroad.c.coordination_id == str(coordination_id))
            .order_by(requests_abroad.c.since)
        ).mappings()
        return [
            RequestAbroad(
                request_id=uuid.UUID(row["request_id"]),
                instrument=row["instrument"],
                executing_country=row["executing_country"],
                status=row["status"],
                since=as_utc(row["since"]),  # type: ignore[arg-type]
                due_at=as_utc(row["due_at"]),
            )
            for row in rows
        ]

    def track_request(
        self,
        *,
        coordination_id: uuid.UUID,
        request_id: uuid.UUID,
        sequence: int,
        status: str,
        since: dt.datetime,
        due_at: dt.datetime | None,
        instrument: str | None = None,
        executing_country: str | None = None,
    ) -> bool:
        """Apply one request's status if `sequence` is newer than the last applied to it;
        the instrument and the country (said once, when it was filed) are kept whatever
        order the events came in. False when nothing changed."""
        t = requests_abroad
        key = t.c.request_id == str(request_id)
        last = self.session.execute(
            sa.select(t.c.last_sequence).where(key).with_for_update()
        ).scalar()
        facts = {
            name: value
            for name, value in (
                ("instrument", instrument),
                ("executing_country", executing_country),
            )
            if value is not None
        }
        status_values = {
            "status": status,
            "since": since,
            "due_at": due_at,
            "last_sequence": sequence,
        }
        if last is None:
            try:
                with self.session.begin_nested():
                    self.session.execute(
                        t.insert().values(
                            request_id=str(request_id),
                            coordination_id=str(coordination_id),
                            **facts,
                            **status_values,
                        )
                    )
                return True
            except sa.exc.IntegrityError:
                last = self.session.execute(
                    sa.select(t.c.last_sequence).where(key).with_for_update()
                ).scalar()
        values: dict[str, Any] = dict(facts)
        if is_newer(sequence, last):
            values.update(status_values)
        if not values:
            return False
        self.session.execute(t.update().where(key).values(**values))
        return is_newer(sequence, last)


def _assessment_values(assessment: Assessment) -> dict[str, Any]:
    return {
        "assessment_id": str(assessment.assessment_id),
        "assessed_on": assessment.assessed_on,
        "risk_level": str(assessment.risk_level),
        "recorded_by": assessment.recorded_by,
        "recorded_at": assessment.recorded_at,
        "digest": assessment.digest,
        "sealed_content": crypto.seal(
            {
                "needs": {k: dict(v) for k, v in assessment.needs.items()},
                "summary": assessment.summary,
                "child_views": assessment.child_views,
                "child_views_not_recorded": (
                    str(assessment.child_views_not_recorded)
                    if assessment.child_views_not_recorded
                    else None
                ),
            }
        ),
    }


def _assessment(row) -> Assessment:
    content = crypto.unseal(row["sealed_content"])
    not_recorded = content.get("child_views_not_recorded")
    return Assessment(
        assessment_id=uuid.UUID(row["assessment_id"]),
        assessed_on=row["assessed_on"],
        risk_level=RiskLevel(row["risk_level"]),
        needs=content["needs"],
        summary=content["summary"],
        child_views=content.get("child_views"),
        child_views_not_recorded=ViewsNotRecorded(not_recorded) if not_recorded else None,
        recorded_by=row["recorded_by"],
        recorded_at=as_utc(row["recorded_at"]),  # type: ignore[arg-type]
        digest=row["digest"],
    )


def _withdrawal_values(withdrawal: Withdrawal | None) -> dict[str, Any]:
    return {
        "withdrawal_kind": str(withdrawal.kind) if withdrawal else None,
        "withdrawal_reason": withdrawal.reason if withdrawal else None,
        "withdrawal_decided_at": withdrawal.decided_at if withdrawal else None,
        "withdrawal_closed_case": withdrawal.case_closed if withdrawal else None,
    }


def _withdrawal(row: Any) -> Withdrawal | None:
    if row["withdrawal_kind"] is None:
        return None
    return Withdrawal(
        kind=AgencyStatus(row["withdrawal_kind"]),
        reason=row["withdrawal_reason"],
        decided_at=as_utc(row["withdrawal_decided_at"]),  # type: ignore[arg-type]
        case_closed=bool(row["withdrawal_closed_case"]),
    )
