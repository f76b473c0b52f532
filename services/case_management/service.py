"""The social services' nameko service: thin entrypoints over `case_management.domain`."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any, NoReturn

import sqlalchemy as sa
from nameko.rpc import rpc

from case_management import domain
from case_management.domain import Case
from case_management.repository import CaseRepository
from concord_contracts.codes import Sex
from concord_contracts.envelope import Envelope
from concord_contracts.rpc import CaseOpenedReceiptSchema, CaseSchema
from concord_kit.errors import Forbidden, NotFound, ServiceUnavailable, parse_uuid
from concord_kit.events import on_event
from concord_kit.partners import as_response, view
from concord_kit.rpc import ServiceCall
from concord_kit.service import ConcordService


class CaseManagementService(ConcordService):
    name = "case_management"

    referral = ServiceCall("referral")

    @rpc
    def accept_referral(self, coordination_id: str) -> dict:
        """Take a referral routed to social services on: open its case (once)."""
        caller = self.identity.require()
        cid = parse_uuid(coordination_id, "coordination_id")
        decision = domain.may_accept(caller)
        if not decision.allowed:
            self._refuse("case.accept", cid, decision.reason)

        existing = self._case_for(cid)
        if existing is not None:
            return self._receipt(existing)

        # The pull is an RPC: never inside a unit of work. The hub checks that the referral
        # was routed to social services and audits the pull.
        details = self.referral.pull_details(str(cid))
        try:
            child = domain.child_record(cid, details)
        except domain.IncompleteDetails as exc:
            raise ServiceUnavailable(f"referral answered without usable details: {exc}") from None

        case = Case.open(cid, child, caller, dt.datetime.now(dt.UTC))
        try:
            with self.db.unit_of_work() as uow:
                CaseRepository(uow.session).add(case)
                uow.audit("case.opened", case.case_id, reason=f"accepted referral {cid}")
                uow.publish(
                    "case.opened",
                    cid,
                    {"case_id": case.case_id, "status": case.status, "opened_at": case.opened_at},
                )
        except sa.exc.IntegrityError:
            # Accepted at the same moment by someone else: theirs is the case.
            existing = self._case_for(cid)
            if existing is None:
                raise
            return self._receipt(existing)
        self.log.info("case_opened", case_id=str(case.case_id), coordination_id=str(cid))
        return self._receipt(case)

    @rpc
    def get_case(self, case_id: str) -> dict:
        """A case as its assigned social worker or a supervisor sees it; audited, refusals too."""
        caller = self.identity.require()
        key = parse_uuid(case_id, "case_id")
        gate = domain.may_read_cases(caller)
        if not gate.allowed:
            self._refuse("case.read", key, gate.reason)

        with self.db.unit_of_work() as uow:
            cases = CaseRepository(uow.session)
            case = cases.get(key)
            if case is None:
                uow.audit("case.read", key, reason="no such case", outcome="not_found")
            else:
                decision = domain.may_read(caller, case)
                outcome = "allowed" if decision.allowed else "refused"
                uow.audit("case.read", key, reason=decision.reason, outcome=outcome)
                partners = view(cases.partners.of(case.coordination_id), exclude=domain.AGENCY)
        # Raised after the commit, so that the refusal stays in the audit trail.
        if case is None:
            raise NotFound("no such case")
        if not decision.allowed:
            raise Forbidden(decision.reason)
        return CaseSchema().dump(
            {
                "case_id": case.case_id,
                "coordination_id": case.coordination_id,
                "status": case.status,
                "opened_at": case.opened_at,
                "assigned_to": case.assigned_to,
                "child": _child_for_dump(case.child),
                "partners": as_response(partners),
            }
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
            CaseRepository(uow.session).partners.apply(event, domain.AGENCY)

    # --- helpers -------------------------------------------------------------------------

    def _case_for(self, coordination_id: uuid.UUID) -> Case | None:
        with self.db.read() as session:
            return CaseRepository(session).for_referral(coordination_id)

    def _refuse(self, action: str, subject: uuid.UUID, reason: str) -> NoReturn:
        with self.db.unit_of_work() as uow:
            uow.audit(action, subject, reason=reason, outcome="refused")
        raise Forbidden(reason)

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


def _child_for_dump(child: Mapping[str, Any]) -> dict[str, Any]:
    """The stored JSON form of the child's record, typed back for `ChildSchema` to dump
    (without re-validating it: a child who has turned 18 since intake still has a case)."""
    typed = dict(child)
    typed["sex"] = Sex(typed["sex"])
    if typed.get("date_of_birth"):
        typed["date_of_birth"] = dt.date.fromisoformat(typed["date_of_birth"])
    return typed
