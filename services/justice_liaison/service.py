"""The justice liaison nameko service: thin entrypoints over `justice_liaison.domain`."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import NoReturn

import sqlalchemy as sa
from nameko.rpc import rpc

from concord_contracts.envelope import Envelope
from concord_contracts.rpc import InvestigationOpenedReceiptSchema
from concord_kit import oversight
from concord_kit.errors import Forbidden, ServiceUnavailable, parse_uuid
from concord_kit.events import on_event
from concord_kit.partners import WithdrawnMeanwhile, hub_word
from concord_kit.rpc import ServiceCall
from concord_kit.service import ConcordService
from justice_liaison import domain
from justice_liaison.domain import Investigation
from justice_liaison.models import investigations
from justice_liaison.repository import InvestigationRepository


class JusticeLiaisonService(ConcordService):
    name = "justice_liaison"

    referral = ServiceCall("referral")

    @rpc
    def accept_referral(self, coordination_id: str) -> dict:
        """Take a referral routed to justice on: open its investigation record (once)."""
        caller = self.identity.require()
        cid = parse_uuid(coordination_id, "coordination_id")
        decision = domain.may_accept(caller)
        if not decision.allowed:
            self._refuse("investigation.accept", cid, decision.reason)

        existing = self._investigation_for(cid)
        if existing is not None:
            return self._receipt(existing)

        # The pull is an RPC: never inside a unit of work. The hub checks that the referral
        # was routed to justice and audits the pull.
        details = self.referral.pull_details(str(cid))
        try:
            word = hub_word(details, domain.AGENCY)
            investigation = Investigation.open(cid, details, caller, dt.datetime.now(dt.UTC))
        except (ValueError, domain.IncompleteDetails) as exc:
            raise ServiceUnavailable(f"referral answered without usable details: {exc}") from None
        try:
            with self.db.unit_of_work() as uow:
                repository = InvestigationRepository(uow.session)
                repository.add(investigation)
                # With the record: a hub decision older than this pull, arriving late, is
                # then older than the acceptance and changes nothing (concord_kit.partners).
                repository.partners.accepted_on(cid, word)
                uow.audit(
                    "investigation.opened",
                    investigation.investigation_id,
                    reason=f"accepted referral {cid}",
                )
                uow.publish(
                    "investigation.opened",
                    cid,
                    {
                        "investigation_id": investigation.investigation_id,
                        "status": investigation.status,
                        "opened_at": investigation.opened_at,
                    },
                )
        except WithdrawnMeanwhile as exc:
            self._refuse("investigation.accept", cid, str(exc))
        except sa.exc.IntegrityError:
            # Accepted at the same moment by another officer: theirs is the record.
            existing = self._investigation_for(cid)
            if existing is None:
                raise
            return self._receipt(existing)
        self.log.info(
            "investigation_opened",
            investigation_id=str(investigation.investigation_id),
            coordination_id=str(cid),
        )
        return self._receipt(investigation)

    @on_event("referral.declined")
    @on_event("referral.revoked")
    def follow_hub_decision(self, event: Envelope) -> None:
        """The hub took the referral back from an agency. Every one is a partner status;
        one about justice, newer than the hub's last word on it, is also applied to the
        investigation record (domain.Investigation.referral_withdrawn): audited, and a
        record it closes announces so, which brings the hub's pipeline along."""
        now = dt.datetime.now(dt.UTC)
        with self.db.unit_of_work() as uow:
            if not uow.first_delivery(event):
                return
            repository = InvestigationRepository(uow.session)
            decision = repository.partners.apply_hub_decision(event, domain.AGENCY)
            if decision is None:
                return
            investigation = repository.for_referral(event.coordination_id, lock=True)
            if investigation is None:
                return  # never accepted here: the hub's word is all there is to keep
            closed = investigation.referral_withdrawn(decision)
            why = f"hub: {decision.kind} ({decision.reason or 'no reason'})"
            uow.audit(
                "investigation.referral_withdrawn",
                investigation.investigation_id,
                reason=f"{why}; record closed"
                if closed
                else f"{why}; kept as {investigation.status}",
            )
            if closed:
                repository.set_status(investigation)
                uow.publish(
                    "investigation.status_changed",
                    event.coordination_id,
                    {
                        "investigation_id": investigation.investigation_id,
                        "status": investigation.status,
                        "changed_at": now,
                    },
                )
        self.log.info(
            "referral_withdrawn",
            investigation_id=str(investigation.investigation_id),
            kind=str(decision.kind),
            status=str(investigation.status),
        )

    # One handler for every partner status this service follows (contracts' topology).
    @on_event("referral.routed")
    @on_event("referral.accepted")
    @on_event("case.opened")
    @on_event("case.status_changed")
    @on_event("request.filed")
    @on_event("request.status_changed")
    def track_partner(self, event: Envelope) -> None:
        with self.db.unit_of_work() as uow:
            if not uow.first_delivery(event):
                return
            InvestigationRepository(uow.session).partners.apply(event, domain.AGENCY)

    @rpc
    def records_by_referral(self, coordination_ids: list) -> dict:
        """Oversight: the investigation records held per referral (ids, status codes, times;
        no identity), asked of the owner rather than read from the pipeline's copy."""
        oversight.require_oversight(self.identity)
        ids = oversight.coordination_ids(coordination_ids)
        with self.db.read() as session:
            return oversight.records_by_referral(session, investigations, "investigation_id", ids)

    # --- helpers -------------------------------------------------------------------------

    def _investigation_for(self, coordination_id: uuid.UUID) -> Investigation | None:
        with self.db.read() as session:
            return InvestigationRepository(session).for_referral(coordination_id)

    def _refuse(self, action: str, subject: uuid.UUID, reason: str) -> NoReturn:
        with self.db.unit_of_work() as uow:
            uow.audit(action, subject, reason=reason, outcome="refused")
        raise Forbidden(reason)

    @staticmethod
    def _receipt(investigation: Investigation) -> dict:
        return InvestigationOpenedReceiptSchema().dump(
            {
                "investigation_id": investigation.investigation_id,
                "coordination_id": investigation.coordination_id,
                "status": investigation.status,
                "opened_at": investigation.opened_at,
            }
        )
