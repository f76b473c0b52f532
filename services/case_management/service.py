"""The social services' nameko service: thin entrypoints over `case_management.domain`.

RPC (from the gateway, with the caller's identity): docs/interfaces/case_management.md.
Events consumed: the partners' status events (kept per coordination id).
Events published (through the outbox): `case.opened`, `case.status_changed`, carrying the
derived workflow status only: the child's record, texts and notes never leave.

Every read and change of a case is written to the audit trail (who, when, what, why); a
refusal too, committed before the refusal is answered.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn

import sqlalchemy as sa
from marshmallow import Schema, ValidationError
from nameko.rpc import rpc

from case_management import domain
from case_management.domain import Case
from case_management.models import cases as cases_table
from case_management.repository import BadCursor, CaseListRow, CaseRepository
from concord_contracts import cases as contract
from concord_contracts.codes import (
    Agency,
    CaseOrigin,
    ClosureReason,
    FollowUpKind,
    FollowUpStatus,
    ServiceStatus,
)
from concord_contracts.envelope import Envelope
from concord_contracts.fields import Text
from concord_contracts.rpc import CaseOpenedReceiptSchema
from concord_kit import oversight
from concord_kit.db import UnitOfWork
from concord_kit.errors import (
    BadInput,
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    parse_uuid,
)
from concord_kit.events import on_event
from concord_kit.identity import Caller
from concord_kit.partners import HUB, HubWord, WithdrawnMeanwhile, hub_word, view
from concord_kit.rpc import ServiceCall
from concord_kit.service import ConcordService

READ_REASON = Text(max_length=200, load_default=None, allow_none=True)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def load(schema: Schema, data: Any) -> Any:
    """What a caller sent, once `schema` accepts it (BadInput naming each field otherwise)."""
    if not isinstance(data, Mapping):
        raise BadInput({"_schema": ["An object is expected."]})
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise BadInput(exc.normalized_messages()) from None


def version_of(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadInput({"expected_version": ["A positive whole number."]})
    return value


@contextlib.contextmanager
def rules() -> Iterator[None]:
    """The domain's refusals as the answers callers handle (raised inside a unit of work,
    they roll it back: nothing is half-written)."""
    try:
        yield
    except domain.InvalidField as exc:
        raise BadInput(exc.as_errors()) from None
    except domain.FourEyes as exc:
        raise Conflict(contract.ConflictCode.four_eyes.value, str(exc)) from None
    except domain.WrongState as exc:
        raise Conflict(contract.ConflictCode.wrong_state.value, str(exc)) from None
    except domain.Missing as exc:
        raise NotFound(str(exc)) from None


Operation = Callable[[Case, Caller, dt.datetime, CaseRepository, UnitOfWork], str]
"""Changes a loaded case through the domain; returns the reason written to the audit trail."""


class CaseManagementService(ConcordService):
    name = "case_management"

    referral = ServiceCall("referral")

    # The clock of every rule that depends on today (overdue, due dates): one place, so
    # that a test can move time.
    clock: Callable[[], dt.datetime] = staticmethod(utc_now)

    # --- opening a case -------------------------------------------------------------

    @rpc
    def accept_referral(self, coordination_id: str) -> dict:
        """Take a referral routed to social services on: open its case (once)."""
        caller = self.identity.require()
        cid = parse_uuid(coordination_id, "coordination_id")
        decision = domain.may_accept(caller)
        if not decision.allowed:
            self._refuse("case.accept", cid, decision.reason)

        existing = self._case_for(cid)
        if existing is not None and not existing.closed_by_withdrawal:
            return self._receipt(existing)

        # The pull is an RPC: never inside a unit of work. The hub checks that the referral
        # was routed to social services and audits the pull.
        details = self.referral.pull_details(str(cid))
        try:
            word = hub_word(details, domain.AGENCY)
            child = domain.child_record(cid, details)
        except (ValueError, domain.IncompleteDetails) as exc:
            raise ServiceUnavailable(f"referral answered without usable details: {exc}") from None
        if existing is not None:
            return self._accept_again(existing.case_id, caller, word)

        now = self.clock()
        case = Case.open(cid, child, caller, now)
        try:
            with self.db.unit_of_work() as uow:
                repository = CaseRepository(uow.session)
                repository.add(case, now.date())
                # With the case: a hub decision older than this pull, arriving late, is
                # then older than the acceptance and changes nothing (concord_kit.partners).
                repository.partners.accepted_on(cid, word)
                uow.audit("case.opened", case.case_id, reason=f"accepted referral {cid}")
                self._announce_opening(uow, case)
        except WithdrawnMeanwhile as exc:
            self._refuse("case.accept", cid, str(exc))
        except sa.exc.IntegrityError:
            # Accepted at the same moment by someone else: theirs is the case.
            existing = self._case_for(cid)
            if existing is None:
                raise
            return self._receipt(existing)
        self.log.info("case_opened", case_id=str(case.case_id), coordination_id=str(cid))
        return self._receipt(case)

    def _accept_again(self, case_id: uuid.UUID, caller: domain.Person, word: HubWord) -> dict:
        """The hub routed the referral here again after its withdrawal closed the case
        (the pull just checked it, as of the hub's `word`): the same case opens again
        (domain.Case.accepted_again)."""
        now = self.clock()
        try:
            with self.db.unit_of_work() as uow:
                case = self._reaccept(uow, case_id, caller, word, now)
        except WithdrawnMeanwhile as exc:
            self._refuse("case.accept", case_id, str(exc))
        return self._receipt(case)

    def _reaccept(
        self,
        uow: UnitOfWork,
        case_id: uuid.UUID,
        caller: domain.Person,
        word: HubWord,
        now: dt.datetime,
    ) -> Case:
        repository = CaseRepository(uow.session)
        case = repository.get(case_id, lock=True)
        if case is None:
            raise NotFound("no such case")
        repository.partners.accepted_on(case.coordination_id, word)
        before = case.status
        if case.accepted_again(caller, now):
            repository.save(case, now.date())
            uow.audit("case.reopened", case.case_id, reason=domain.REOPENED_ROUTED_AGAIN)
            uow.publish(
                "case.status_changed",
                case.coordination_id,
                {"case_id": case.case_id, "status": case.status, "changed_at": now},
            )
            self.log.info("case_reopened", case_id=str(case.case_id), was=str(before))
        return case

    @rpc
    def register_case(self, registration: dict) -> dict:
        """A case registered directly by a social worker: the hub gives it a coordination
        id from codes alone (the child's record stays here), and it is assigned to them."""
        caller = self.identity.require()
        decision = domain.may_register(caller)
        if not decision.allowed:
            self._refuse("case.register", caller.user_id, decision.reason)
        data = load(contract.CaseRegistrationSchema(), registration)
        case_id = data["registration_id"] or uuid.uuid4()
        replay = self._registered(caller, case_id)
        if replay is not None:
            return replay
        codes = contract.CaseRegistrationCodesSchema().dump(
            {
                "registration_id": case_id,
                "categories": data["categories"],
                "urgency": data["urgency"],
            }
        )
        # Before any unit of work: the hub records the referral and announces it.
        answer = self.referral.register_direct(codes)
        cid = parse_uuid((answer or {}).get("coordination_id"), "coordination_id")
        sections = {
            name: contract.SECTION_SCHEMAS[name]().dump(data[name])
            for name in ("contact", "family", "people", "safety")
            if data.get(name) is not None
        }
        child = contract.CaseChildSchema().dump(data["child"])
        now = self.clock()
        case = Case.open(
            cid,
            child,
            caller,
            now,
            origin=CaseOrigin.direct,
            case_id=case_id,
            sections=sections,
        )
        try:
            with self.db.unit_of_work() as uow:
                repository = CaseRepository(uow.session)
                repository.add(case, now.date())
                uow.audit("case.registered", case.case_id, reason=f"registered directly as {cid}")
                self._announce_opening(uow, case)
                record = self._record(repository, case, now)
        except sa.exc.IntegrityError:
            # The same registration sent twice at once: the first one is the case.
            replay = self._registered(caller, case_id)
            if replay is None:
                raise
            return replay
        self.log.info("case_registered", case_id=str(case.case_id), coordination_id=str(cid))
        return record

    # --- reading --------------------------------------------------------------------

    @rpc
    def get_case(self, case_id: str, reason: str | None = None) -> dict:
        """A case as its assigned social worker or a supervisor sees it; audited (with the
        reason the caller gives, if any), refusals too."""
        caller = self.identity.require()
        key = parse_uuid(case_id, "case_id")
        purpose = self._purpose(reason)
        gate = domain.may_read_cases(caller)
        if not gate.allowed:
            self._refuse("case.read", key, gate.reason)

        record = None
        with self.db.unit_of_work() as uow:
            repository = CaseRepository(uow.session)
            case = repository.get(key)
            if case is None:
                uow.audit("case.read", key, reason="no such case", outcome="not_found")
            else:
                decision = domain.may_read(caller, case)
                outcome = "allowed" if decision.allowed else "refused"
                uow.audit("case.read", key, reason=_why(decision.reason, purpose), outcome=outcome)
                if decision.allowed:
                    record = self._record(repository, case, self.clock())
        # Raised after the commit, so that the refusal stays in the audit trail.
        if case is None:
            raise NotFound("no such case")
        if record is None:
            raise Forbidden(decision.reason)
        return record

    @rpc
    def list_cases(self, query: dict | None = None) -> dict:
        """Cases due and overdue first: a social worker's own, a supervisor's agency's."""
        caller = self.identity.require()
        filters = load(contract.CaseListQuerySchema(), query or {})
        decision = domain.may_list(caller, filters["assigned_to"])
        if not decision.allowed:
            self._refuse("case.list", caller.user_id, decision.reason)
        today = self.clock().date()
        with self.db.unit_of_work() as uow:
            repository = CaseRepository(uow.session)
            try:
                rows, cursor = repository.list_cases(
                    today=today,
                    assigned_to=domain.scoped_assignee(caller, filters["assigned_to"]),
                    statuses=filters["status"],
                    state=filters["state"],
                    overdue=filters["overdue"],
                    risk_levels=filters["risk_level"],
                    origin=filters["origin"],
                    limit=filters["limit"],
                    cursor=filters["cursor"],
                )
            except BadCursor:
                raise BadInput({"cursor": ["Not a cursor of this list."]}) from None
            overdue = repository.overdue_counts([r.case_id for r in rows], today)
            uow.audit(
                "case.list",
                caller.user_id,
                reason=f"{len(rows)} cases listed ({decision.reason})",
            )
        items = [
            {
                **self._summary(row, today),
                "status": row.status,
                "origin": row.origin,
                "version": row.version,
                "opened_at": row.opened_at,
                "risk_level": row.risk_level,
                "next_due_on": row.next_due_on,
                "next_due_kind": row.next_due_kind,
                "overdue": overdue[str(row.case_id)] > 0,
                "overdue_count": overdue[str(row.case_id)],
                "pending_approval": row.pending_approval,
            }
            for row in rows
        ]
        return contract.CaseListSchema().dump({"items": items, "next_cursor": cursor})

    @rpc
    def approvals_queue(self) -> list[dict]:
        """Plans and closures waiting for a supervisor, oldest first."""
        caller = self.identity.require()
        decision = domain.may_supervise(caller)
        if not decision.allowed:
            self._refuse("case.approvals_read", caller.user_id, decision.reason)
        today = self.clock().date()
        items = []
        with self.db.unit_of_work() as uow:
            repository = CaseRepository(uow.session)
            for row in repository.pending_approvals():
                case = repository.get(row.case_id)
                if case is None or case.pending_approval is None:
                    continue
                item = {
                    **self._summary(row, today),
                    "kind": case.pending_approval,
                    "status": case.status,
                    "version": case.version,
                    "plan_version": None,
                    "closure_reason": None,
                    "warnings": [],
                }
                if case.pending_approval == "plan":
                    assert case.plan is not None and case.plan.submitted_at is not None
                    item["requested_by"] = case.plan.submitted_by
                    item["requested_at"] = case.plan.submitted_at
                    item["plan_version"] = case.plan.version
                    item["own_request"] = caller.user_id in (
                        case.plan.written_by,
                        case.plan.submitted_by,
                    )
                else:
                    assert case.closure is not None
                    item["requested_by"] = case.closure.requested_by
                    item["requested_at"] = case.closure.requested_at
                    item["closure_reason"] = case.closure.reason
                    item["warnings"] = case.closure.warnings
                    item["own_request"] = caller.user_id == case.closure.requested_by
                items.append(item)
            uow.audit(
                "case.approvals_read", caller.user_id, reason=f"{len(items)} waiting for approval"
            )
        return contract.ApprovalItemSchema(many=True).dump(items)

    @rpc
    def list_assessments(self, case_id: str) -> list[dict]:
        """Every assessment of a case, newest first, each with its signature checked."""
        key = parse_uuid(case_id, "case_id")
        found: list[domain.Assessment] = []

        def read(case, caller, now, repository, uow) -> str:
            found.extend(repository.assessments(case.case_id))
            return f"{len(found)} assessments read"

        self._with_case(key, "case.assessments_read", read, change=False)
        return contract.AssessmentSchema(many=True).dump([_assessment(a) for a in found])

    @rpc
    def list_notes(self, case_id: str, query: dict | None = None) -> dict:
        """A case's notes, newest first, a page at a time."""
        key = parse_uuid(case_id, "case_id")
        options = load(contract.NotesQuerySchema(), query or {})
        page: dict[str, Any] = {}

        def read(case, caller, now, repository, uow) -> str:
            try:
                notes, cursor = repository.notes(case.case_id, options["before"], options["limit"])
            except BadCursor:
                raise BadInput({"before": ["Not a cursor of these notes."]}) from None
            page.update(items=[_note(n) for n in notes], next_cursor=cursor)
            return f"{len(notes)} notes read"

        self._with_case(key, "case.notes_read", read, change=False)
        return contract.NotesPageSchema().dump(page)

    # --- changing a case ------------------------------------------------------------

    @rpc
    def update_section(
        self, case_id: str, section: str, data: dict, expected_version: int | None = None
    ) -> dict:
        """Replace one section of the child's record: child, contact, family, people, safety."""
        key = parse_uuid(case_id, "case_id")
        schema = contract.SECTION_SCHEMAS.get(section) if isinstance(section, str) else None
        if schema is None:
            raise BadInput({"section": [f"One of {', '.join(contract.SECTION_SCHEMAS)}."]})
        loaded = load(schema(), data)
        stored = schema().dump(loaded)

        def change(case, caller, now, repository, uow) -> str:
            case.update_section(section, stored, caller)
            return f"section {section} updated"

        return self._change(key, "case.section_updated", change, expected_version)

    @rpc
    def assign_case(
        self, case_id: str, assignment: dict, expected_version: int | None = None
    ) -> dict:
        """A supervisor assigns the case to a social worker (a reassignment says why)."""
        key = parse_uuid(case_id, "case_id")
        data = load(contract.AssignmentSchema(), assignment)

        def change(case, caller, now, repository, uow) -> str:
            previous = case.assigned_to
            case.assign(data["assign_to"], data["reason"], caller, now)
            return f"assigned from {previous} to {case.assigned_to}"

        return self._change(key, "case.assigned", change, expected_version, supervise=True)

    @rpc
    def record_assessment(
        self, case_id: str, assessment: dict, expected_version: int | None = None
    ) -> dict:
        key = parse_uuid(case_id, "case_id")
        data = load(contract.AssessmentSubmissionSchema(), assessment)

        def change(case, caller, now, repository, uow) -> str:
            recorded = case.record_assessment(data, caller, now)
            return f"assessment {recorded.assessment_id} signed, risk {recorded.risk_level}"

        return self._change(key, "case.assessment_recorded", change, expected_version)

    @rpc
    def save_plan(self, case_id: str, plan: dict, expected_version: int | None = None) -> dict:
        key = parse_uuid(case_id, "case_id")
        data = load(contract.PlanSubmissionSchema(), plan)

        def change(case, caller, now, repository, uow) -> str:
            case.save_plan(data["goals"], caller, now)
            assert case.plan is not None
            return f"plan version {case.plan.version} saved as draft"

        return self._change(key, "case.plan_saved", change, expected_version)

    @rpc
    def submit_plan(self, case_id: str, expected_version: int | None = None) -> dict:
        key = parse_uuid(case_id, "case_id")

        def change(case, caller, now, repository, uow) -> str:
            case.submit_plan(caller, now)
            assert case.plan is not None
            return f"plan version {case.plan.version} submitted for approval"

        return self._change(key, "case.plan_submitted", change, expected_version)

    @rpc
    def approve_plan(
        self, case_id: str, decision: dict | None = None, expected_version: int | None = None
    ) -> dict:
        key = parse_uuid(case_id, "case_id")
        data = load(contract.CommentSchema(), decision or {})

        def change(case, caller, now, repository, uow) -> str:
            case.approve_plan(caller, now, data["comment"])
            assert case.plan is not None
            return f"plan version {case.plan.version} approved"

        return self._change(key, "case.plan_approved", change, expected_version, supervise=True)

    @rpc
    def return_plan(
        self, case_id: str, decision: dict, expected_version: int | None = None
    ) -> dict:
        key = parse_uuid(case_id, "case_id")
        data = load(contract.ReasonSchema(), decision)

        def change(case, caller, now, repository, uow) -> str:
            case.return_plan(caller, now, data["reason"])
            assert case.plan is not None
            return f"plan version {case.plan.version} returned"

        return self._change(key, "case.plan_returned", change, expected_version, supervise=True)

    @rpc
    def update_service(
        self, case_id: str, service_id: str, update: dict, expected_version: int | None = None
    ) -> dict:
        key = parse_uuid(case_id, "case_id")
        sid = parse_uuid(service_id, "service_id")
        data = load(contract.ServiceUpdateSchema(), update)

        def change(case, caller, now, repository, uow) -> str:
            service = case.update_service(sid, data, caller, now)
            return f"service {sid} {service.status}"

        return self._change(key, "case.service_updated", change, expected_version)

    @rpc
    def schedule_follow_up(
        self, case_id: str, follow_up: dict, expected_version: int | None = None
    ) -> dict:
        key = parse_uuid(case_id, "case_id")
        data = load(contract.FollowUpRequestSchema(), follow_up)

        def change(case, caller, now, repository, uow) -> str:
            scheduled = case.schedule_follow_up(
                FollowUpKind(data["kind"]), data["due_on"], caller, now
            )
            return f"{scheduled.kind} {scheduled.follow_up_id} due {scheduled.due_on}"

        return self._change(key, "case.follow_up_scheduled", change, expected_version)

    @rpc
    def record_follow_up(
        self, case_id: str, follow_up_id: str, outcome: dict, expected_version: int | None = None
    ) -> dict:
        key = parse_uuid(case_id, "case_id")
        fid = parse_uuid(follow_up_id, "follow_up_id")
        data = load(contract.FollowUpOutcomeSchema(), outcome)

        def change(case, caller, now, repository, uow) -> str:
            done = case.record_follow_up(fid, data, caller, now)
            return f"{done.kind} {fid} recorded"

        return self._change(key, "case.follow_up_recorded", change, expected_version)

    @rpc
    def cancel_follow_up(
        self,
        case_id: str,
        follow_up_id: str,
        cancellation: dict,
        expected_version: int | None = None,
    ) -> dict:
        key = parse_uuid(case_id, "case_id")
        fid = parse_uuid(follow_up_id, "follow_up_id")
        data = load(contract.ReasonSchema(), cancellation)

        def change(case, caller, now, repository, uow) -> str:
            case.cancel_follow_up(fid, data["reason"], caller, now)
            return f"follow-up {fid} cancelled"

        return self._change(key, "case.follow_up_cancelled", change, expected_version)

    @rpc
    def add_note(self, case_id: str, note: dict) -> dict:
        """A note: kept here, never published; it does not change the case's version."""
        key = parse_uuid(case_id, "case_id")
        data = load(contract.NoteInputSchema(), note)
        written: list[domain.Note] = []

        def change(case, caller, now, repository, uow) -> str:
            written.append(domain.Note.write(case, data["text"], caller, now))
            repository.add_note(written[0])
            return f"note {written[0].note_id} written"

        self._with_case(key, "case.note_added", change, change=False)
        return contract.NoteSchema().dump(_note(written[0]))

    @rpc
    def request_closure(
        self, case_id: str, request: dict, expected_version: int | None = None
    ) -> dict:
        key = parse_uuid(case_id, "case_id")
        data = load(contract.ClosureRequestSchema(), request)

        def change(case, caller, now, repository, uow) -> str:
            statuses = view(repository.partners.of(case.coordination_id), exclude=domain.AGENCY)
            concerns = domain.partner_warnings(
                {agency: s.status for agency, s in statuses.items()},
                repository.requests_abroad(case.coordination_id),
            )
            closure = case.request_closure(
                ClosureReason(data["reason"]), data["reason_text"], caller, now, concerns
            )
            warned = ", ".join(str(w) for w in closure.warnings) or "none"
            return f"closure requested: {closure.reason}; warnings: {warned}"

        return self._change(key, "case.closure_requested", change, expected_version)

    @rpc
    def approve_closure(
        self, case_id: str, decision: dict | None = None, expected_version: int | None = None
    ) -> dict:
        key = parse_uuid(case_id, "case_id")
        data = load(contract.CommentSchema(), decision or {})

        def change(case, caller, now, repository, uow) -> str:
            case.approve_closure(caller, now, data["comment"])
            assert case.closure is not None
            return f"closure approved: {case.closure.reason}"

        return self._change(key, "case.closure_approved", change, expected_version, supervise=True)

    @rpc
    def reject_closure(
        self, case_id: str, decision: dict, expected_version: int | None = None
    ) -> dict:
        key = parse_uuid(case_id, "case_id")
        data = load(contract.ReasonSchema(), decision)

        def change(case, caller, now, repository, uow) -> str:
            case.reject_closure(caller, now, data["reason"])
            return "closure rejected"

        return self._change(key, "case.closure_rejected", change, expected_version, supervise=True)

    @rpc
    def reopen_case(
        self, case_id: str, reopening: dict, expected_version: int | None = None
    ) -> dict:
        key = parse_uuid(case_id, "case_id")
        data = load(contract.ReasonSchema(), reopening)

        def change(case, caller, now, repository, uow) -> str:
            case.reopen(data["reason"], caller, now)
            return f"reopened as {case.status}"

        return self._change(key, "case.reopened", change, expected_version)

    # --- partners -------------------------------------------------------------------

    @on_event("referral.declined")
    @on_event("referral.revoked")
    def follow_hub_decision(self, event: Envelope) -> None:
        """The hub took the referral back from an agency. Every one is a partner status;
        one about social services, newer than the hub's last word on it, is also applied
        to the case (domain.Case.referral_withdrawn): audited, and a case it closes
        announces so, which brings the hub's pipeline along."""
        now = self.clock()
        with self.db.unit_of_work() as uow:
            if not uow.first_delivery(event):
                return
            repository = CaseRepository(uow.session)
            decision = repository.partners.apply_hub_decision(event, domain.AGENCY)
            if decision is None:
                return
            case = repository.for_referral(event.coordination_id, lock=True)
            if case is None:
                return  # never accepted here: the hub's word is all there is to keep
            before = case.status
            withdrawal = case.referral_withdrawn(decision, now)
            if withdrawal is None:
                return
            repository.save(case, now.date())
            outcome = "case closed" if withdrawal.case_closed else "case kept open, flagged"
            uow.audit(
                "case.referral_withdrawn",
                case.case_id,
                reason=f"hub: {decision.kind} ({decision.reason or 'no reason'}); {outcome}",
            )
            if case.status != before:
                uow.publish(
                    "case.status_changed",
                    case.coordination_id,
                    {"case_id": case.case_id, "status": case.status, "changed_at": now},
                )
        self.log.info(
            "referral_withdrawn",
            case_id=str(case.case_id),
            kind=str(decision.kind),
            status=str(case.status),
        )

    # One handler for every partner status this service follows (contracts' topology).
    @on_event("referral.routed")
    @on_event("referral.accepted")
    @on_event("investigation.opened")
    @on_event("investigation.status_changed")
    @on_event("request.filed")
    @on_event("request.status_changed")
    def track_partner(self, event: Envelope) -> None:
        with self.db.unit_of_work() as uow:
            if not uow.first_delivery(event):
                return
            repository = CaseRepository(uow.session)
            applied = repository.partners.apply(event, domain.AGENCY)
            if applied and event.event_type == "referral.routed":
                self._routed_again(uow, repository, event)
            if event.event_type in ("request.filed", "request.status_changed"):
                payload = event.payload
                filed = event.event_type == "request.filed"
                repository.track_request(
                    coordination_id=event.coordination_id,
                    request_id=payload["request_id"],
                    sequence=event.sequence,
                    status=str(payload["status"]),
                    since=payload["filed_at" if filed else "changed_at"],
                    due_at=payload.get("due_at"),
                    instrument=str(payload["instrument"]) if filed else None,
                    executing_country=payload["executing_country"] if filed else None,
                )

    def _routed_again(self, uow: UnitOfWork, repository: CaseRepository, event: Envelope) -> None:
        """A routing to social services newer than the hub's last word on it lifts a
        withdrawal the case kept working through. (The event may have been newer only for
        the other agencies it names: a later decision about ours then still stands.)"""
        if not repository.carries_withdrawal(event.coordination_id):
            return  # nearly always: nothing to lift
        ours = [
            s
            for s in repository.partners.of(event.coordination_id)
            if s.agency == domain.AGENCY and s.producer == HUB
        ]
        if not ours or ours[0].last_sequence != event.sequence:
            return
        case = repository.for_referral(event.coordination_id, lock=True)
        now = self.clock()
        if case is not None and case.routed_again():
            repository.save(case, now.date())
            uow.audit("case.referral_routed_again", case.case_id, reason="hub routed it again")

    # --- how every case operation runs ----------------------------------------------

    def _change(
        self,
        key: uuid.UUID,
        action: str,
        operation: Operation,
        expected_version: Any = None,
        *,
        supervise: bool = False,
    ) -> dict:
        """Load the case (locked), check who asks and the version they saw, let the domain
        change it, save, audit, announce a new status: one transaction. Answers the record."""
        expected = version_of(expected_version)
        record: dict[str, Any] = {}

        def write(case, caller, now, repository, uow) -> str:
            if expected is not None and expected != case.version:
                raise Conflict(
                    contract.ConflictCode.stale_version.value,
                    f"the case changed since it was read (version {case.version}, "
                    f"not {expected}): read it again",
                )
            before = case.status
            with rules():
                reason = operation(case, caller, now, repository, uow)
            repository.save(case, now.date())
            if case.status != before:
                uow.publish(
                    "case.status_changed",
                    case.coordination_id,
                    {"case_id": case.case_id, "status": case.status, "changed_at": now},
                )
            record.update(self._record(repository, case, now))
            self.log.info(
                "case_changed",
                action=action,
                case_id=str(case.case_id),
                status=str(case.status),
                version=case.version,
            )
            return reason

        self._with_case(key, action, write, change=True, supervise=supervise)
        return record

    def _with_case(
        self,
        key: uuid.UUID,
        action: str,
        operation: Operation,
        *,
        change: bool,
        supervise: bool = False,
    ) -> None:
        """Run `operation` on one case for the caller, if they may: inside one unit of
        work, audited. A refusal (or an unknown case) is audited and committed first, then
        answered; a rule the operation breaks rolls everything back."""
        caller = self.identity.require()
        gate = domain.may_supervise(caller) if supervise else domain.may_read_cases(caller)
        if not gate.allowed:
            self._refuse(action, key, gate.reason)
        refusal: str | None = None
        missing = False
        now = self.clock()
        with self.db.unit_of_work() as uow:
            repository = CaseRepository(uow.session)
            case = repository.get(key, lock=change)
            if case is None:
                missing = True
                uow.audit(action, key, reason="no such case", outcome="not_found")
            else:
                decision = domain.may_change(caller, case)
                if not decision.allowed:
                    refusal = decision.reason
                    uow.audit(action, key, reason=decision.reason, outcome="refused")
                else:
                    reason = operation(case, caller, now, repository, uow)
                    uow.audit(action, key, reason=_why(decision.reason, reason))
        if missing:
            raise NotFound("no such case")
        if refusal is not None:
            raise Forbidden(refusal)

    @rpc
    def records_by_referral(self, coordination_ids: list) -> dict:
        """Oversight: the cases held per referral (ids, status codes, times; no identity),
        asked of the owner rather than read from the pipeline's copy."""
        oversight.require_oversight(self.identity)
        ids = oversight.coordination_ids(coordination_ids)
        with self.db.read() as session:
            return oversight.records_by_referral(session, cases_table, "case_id", ids)

    def _announce_opening(self, uow: UnitOfWork, case: Case) -> None:
        uow.publish(
            "case.opened",
            case.coordination_id,
            {"case_id": case.case_id, "status": case.status, "opened_at": case.opened_at},
        )

    def _registered(self, caller: Caller, case_id: uuid.UUID) -> dict | None:
        """The case a registration already made (a form sent twice), as its reader sees
        it; None when there is none."""
        with self.db.read() as session:
            exists = CaseRepository(session).get(case_id) is not None
        return self.get_case(str(case_id), "registration sent again") if exists else None

    def _case_for(self, coordination_id: uuid.UUID) -> Case | None:
        with self.db.read() as session:
            return CaseRepository(session).for_referral(coordination_id)

    def _refuse(self, action: str, subject: uuid.UUID | str, reason: str) -> NoReturn:
        with self.db.unit_of_work() as uow:
            uow.audit(action, subject, reason=reason, outcome="refused")
        raise Forbidden(reason)

    @staticmethod
    def _purpose(reason: Any) -> str | None:
        """The reason a caller gives for reading (to the audit trail): short, one line."""
        if reason is None:
            return None
        try:
            return READ_REASON.deserialize(reason)
        except ValidationError as exc:
            raise BadInput({"reason": exc.messages}) from None

    @staticmethod
    def _receipt(case: Case) -> dict:
        return CaseOpenedReceiptSchema().dump(
            {
                "case_id": case.case_id,
                "coordination_id": case.coordination_id,
                "status": case.status,
                "opened_at": case.opened_at,
            }
        )

    @staticmethod
    def _summary(row: CaseListRow, today: dt.date) -> dict[str, Any]:
        return {
            "case_id": row.case_id,
            "coordination_id": row.coordination_id,
            "assigned_to": row.assigned_to,
            "child": {
                "given_name": row.child.get("given_name"),
                "family_name": row.child.get("family_name"),
                "age_years": domain.age_on(row.child, today),
            },
        }

    def _record(self, repository: CaseRepository, case: Case, now: dt.datetime) -> dict:
        """The whole record, as its social worker and supervisors read it."""
        today = now.date()
        due = case.due(today)
        plan = case.plan
        return contract.CaseRecordSchema().dump(
            {
                "case_id": case.case_id,
                "coordination_id": case.coordination_id,
                "status": case.status,
                "origin": case.origin,
                "version": case.version,
                "opened_at": case.opened_at,
                "opened_by": case.opened_by,
                "assigned_to": case.assigned_to,
                "assigned_at": case.assigned_at,
                "workflow": [{"status": step, "reached_at": at} for step, at in case.workflow()],
                "child": dict(case.child),
                "contact": case.contact,
                "family": list(case.family),
                "people": list(case.people),
                "safety": case.safety,
                "assessment": _assessment(case.assessment) if case.assessment else None,
                "assessments_count": case.assessments_count,
                "plan": (
                    {
                        "version": plan.version,
                        "state": plan.state,
                        "goals": [
                            {
                                "goal_id": goal.goal_id,
                                "domain": goal.domain,
                                "description": goal.description,
                                "services": [
                                    _service(s, today) for s in case.services_of(goal.goal_id)
                                ],
                            }
                            for goal in plan.goals
                        ],
                        "written_by": plan.written_by,
                        "written_at": plan.written_at,
                        "submitted_by": plan.submitted_by,
                        "submitted_at": plan.submitted_at,
                        "decided_by": plan.decided_by,
                        "decided_at": plan.decided_at,
                        "comment": plan.comment,
                        "return_reason": plan.return_reason,
                        "approved_version": plan.approved_version,
                    }
                    if plan
                    else None
                ),
                "services": [
                    _service(s, today)
                    for s in sorted(
                        case.services,
                        key=lambda s: (s.status == ServiceStatus.cancelled, s.position),
                    )
                ],
                "follow_ups": [
                    _follow_up(f, today)
                    for f in sorted(
                        case.follow_ups,
                        key=lambda f: (
                            f.status != FollowUpStatus.scheduled,
                            f.due_on,
                            f.scheduled_at,
                        ),
                    )
                ],
                "due": {
                    "next_due_on": due.next_due_on,
                    "overdue": due.overdue,
                    "overdue_count": due.overdue_count,
                },
                "pending_approval": case.pending_approval,
                "closure": _closure(case.closure) if case.closure else None,
                "withdrawal": _withdrawal(case.withdrawal) if case.withdrawal else None,
                "reopenings": [
                    {"reopened_by": r.reopened_by, "reopened_at": r.reopened_at, "reason": r.reason}
                    for r in case.reopenings
                ],
                "assignments": [
                    {
                        "assigned_to": a.assigned_to,
                        "assigned_by": a.assigned_by,
                        "assigned_at": a.assigned_at,
                        "reason": a.reason,
                    }
                    for a in case.assignments
                ],
                "notes_count": case.notes_count,
                "partners": self._partners(repository, case, now),
            }
        )

    @staticmethod
    def _partners(repository: CaseRepository, case: Case, now: dt.datetime) -> dict:
        """The partners' statuses under the agency keys (our own left out), each with
        whether its deadline passed; for the central authority, every request abroad."""
        statuses = view(repository.partners.of(case.coordination_id), exclude=domain.AGENCY)
        requests = repository.requests_abroad(case.coordination_id)
        partners: dict[Agency, dict[str, Any]] = {
            agency: {
                "status": s.status,
                "since": s.since,
                "due_at": s.due_at,
                "overdue": domain.partner_overdue(agency, s.status, s.due_at, now),
            }
            for agency, s in statuses.items()
        }
        if requests:
            entry = partners.setdefault(
                Agency.cross_border,
                {"status": requests[-1].status, "since": requests[-1].since, "due_at": None},
            )
            entry["requests"] = [
                {
                    "request_id": r.request_id,
                    "instrument": r.instrument,
                    "executing_country": r.executing_country,
                    "status": r.status,
                    "since": r.since,
                    "due_at": r.due_at,
                    "overdue": r.overdue(now),
                }
                for r in requests
            ]
            entry["overdue"] = entry.get("overdue", False) or any(r.overdue(now) for r in requests)
        return partners


def _why(decision: str, detail: str | None) -> str:
    return decision if not detail else f"{decision}: {detail}"


def _assessment(a: domain.Assessment) -> dict[str, Any]:
    return {
        "assessment_id": a.assessment_id,
        "assessed_on": a.assessed_on,
        "risk_level": a.risk_level,
        "needs": {domain_: dict(need) for domain_, need in a.needs.items()},
        "summary": a.summary,
        "child_views": a.child_views,
        "child_views_not_recorded": a.child_views_not_recorded,
        "recorded_at": a.recorded_at,
        "signature": {"signed_by": a.recorded_by, "signed_at": a.recorded_at, "digest": a.digest},
    }


def _service(s: domain.Service, today: dt.date) -> dict[str, Any]:
    return {
        "service_id": s.service_id,
        "goal_id": s.goal_id,
        "kind": s.kind,
        "provider": s.provider,
        "due_on": s.due_on,
        "status": s.status,
        "delivered_on": s.delivered_on,
        "status_note": s.status_note,
        "approved": s.approved,
        "overdue": s.overdue(today),
        "updated_at": s.updated_at,
        "updated_by": s.updated_by,
    }


def _follow_up(f: domain.FollowUp, today: dt.date) -> dict[str, Any]:
    return {
        "follow_up_id": f.follow_up_id,
        "kind": f.kind,
        "due_on": f.due_on,
        "status": f.status,
        "overdue": f.overdue(today),
        "scheduled_by": f.scheduled_by,
        "scheduled_at": f.scheduled_at,
        "done_on": f.done_on,
        "recorded_by": f.recorded_by,
        "recorded_at": f.recorded_at,
        "summary": f.summary,
        "child_views": f.child_views,
        "child_views_not_recorded": f.child_views_not_recorded,
        "cancel_reason": f.cancel_reason,
    }


def _closure(c: domain.Closure) -> dict[str, Any]:
    return {
        "reason": c.reason,
        "reason_text": c.reason_text,
        "requested_by": c.requested_by,
        "requested_at": c.requested_at,
        "warnings": c.warnings,
        "decision": c.decision,
        "decided_by": c.decided_by,
        "decided_at": c.decided_at,
        "comment": c.comment,
        "reject_reason": c.reject_reason,
    }


def _withdrawal(w: domain.Withdrawal) -> dict[str, Any]:
    return {
        "kind": w.kind,
        "reason": w.reason,
        "decided_at": w.decided_at,
        "case_closed": w.case_closed,
    }


def _note(n: domain.Note) -> dict[str, Any]:
    return {
        "note_id": n.note_id,
        "text": n.text,
        "written_by": n.written_by,
        "written_at": n.written_at,
    }
