"""The referral hub as a nameko service: thin entrypoints over `referral.domain`.

RPC (from the gateway and the agencies' services, with the caller's identity):
`submit_referral`, `intake_queue`, `pull_details`, `pipeline_row`.
Events consumed: the agencies' status events, projected onto the pipeline.
Events published (through the outbox): `referral.received`, `referral.routed`,
`referral.accepted`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from marshmallow import ValidationError
from nameko.rpc import rpc

from concord_contracts.envelope import Envelope
from concord_contracts.rpc import (
    IntakeItemSchema,
    PipelineRowSchema,
    ReferralDetailsSchema,
    ReferralSubmissionSchema,
    SubmissionReceiptSchema,
)
from concord_kit.errors import BadInput, Forbidden, NotFound
from concord_kit.events import on_event
from concord_kit.service import ConcordService
from referral import domain
from referral.repository import ReferralRepository

PULL_DETAILS = "referral.details_pulled"
SUBMITTED = "referral.submitted"


def parse_coordination_id(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        raise BadInput({"coordination_id": ["Not a valid UUID."]}) from None


def pipeline_row_dump(row: domain.Pipeline) -> dict[str, Any]:
    return PipelineRowSchema().dump(
        {
            "coordination_id": row.coordination_id,
            "stage": row.stage,
            "urgency": row.urgency,
            "channel": row.channel,
            "categories": list(row.categories),
            "received_at": row.received_at,
            "agencies": {
                agency: {"status": state.status, "since": state.since}
                for agency, state in row.agencies.items()
            },
            "flags": list(row.flags),
        }
    )


class ReferralService(ConcordService):
    name = "referral"

    # --- intake ---------------------------------------------------------------------

    @rpc
    def submit_referral(self, submission: dict) -> dict:
        """Register a referral, route it, and announce both: one transaction."""
        caller = self.identity.require(domain.SUBMITTER_ROLES)
        try:
            data = ReferralSubmissionSchema().load(submission)
        except ValidationError as exc:
            raise BadInput(exc.normalized_messages()) from None
        facts = domain.ReferralFacts(
            channel=data["channel"], categories=tuple(data["categories"]), urgency=data["urgency"]
        )
        decision = domain.route(facts)
        coordination_id = uuid.uuid4()
        received_at = dt.datetime.now(dt.UTC)
        row = domain.Pipeline.open(coordination_id, facts, decision, received_at)
        priority = domain.EVENT_PRIORITY[facts.urgency]
        codes = {
            "channel": facts.channel,
            "categories": list(facts.categories),
            "urgency": facts.urgency,
        }
        with self.db.unit_of_work() as uow:
            repository = ReferralRepository(uow.session)
            repository.add_referral(coordination_id, data, decision, received_at, caller.user_id)
            repository.add_pipeline(row)
            uow.audit(SUBMITTED, coordination_id, reason=f"routed by rule {decision.rule}")
            uow.publish(
                "referral.received",
                coordination_id,
                {**codes, "received_at": received_at},
                priority=priority,
            )
            uow.publish(
                "referral.routed",
                coordination_id,
                {
                    **codes,
                    "agencies": list(decision.agencies),
                    "rule": decision.rule,
                    "routed_at": received_at,
                },
                priority=priority,
            )
        self.log.info(
            "referral_submitted",
            coordination_id=str(coordination_id),
            urgency=str(facts.urgency),
            routed_to=[str(a) for a in decision.agencies],
            rule=decision.rule,
        )
        return SubmissionReceiptSchema().dump(
            {
                "coordination_id": coordination_id,
                "received_at": received_at,
                "urgency": facts.urgency,
                "routed_to": list(decision.agencies),
            }
        )

    @rpc
    def intake_queue(self) -> list[dict]:
        """The referrals routed to the caller's agency: codes and times only."""
        caller = self.identity.require()
        agency = domain.staff_agency(caller.role, caller.agency)
        if agency is None:
            raise Forbidden("only an agency's staff see the referrals routed to it")
        with self.db.read() as session:
            items = ReferralRepository(session).intake_queue(agency)
        return IntakeItemSchema(many=True).dump(items)

    # --- details, pulled by an agency it was routed to ----------------------------------

    @rpc
    def pull_details(self, coordination_id: str) -> dict:
        """The referral as reported, for an agency it was routed to; every pull, allowed or
        refused, is written to the audit trail before the answer leaves."""
        caller = self.identity.require()
        cid = parse_coordination_id(coordination_id)
        details = None
        with self.db.unit_of_work() as uow:
            repository = ReferralRepository(uow.session)
            row = repository.pipeline(cid)
            if row is None:
                permission = domain.Permission(False, "no such referral")
                uow.audit(PULL_DETAILS, cid, reason=permission.reason, outcome="not_found")
            else:
                permission = domain.may_pull_details(caller.role, caller.agency, row)
                outcome = "allowed" if permission.allowed else "refused"
                uow.audit(PULL_DETAILS, cid, reason=permission.reason, outcome=outcome)
                if permission.allowed:
                    details = repository.details(cid)
        self.log.info(
            "referral_details_pull",
            coordination_id=str(cid),
            role=str(caller.role),
            agency=str(caller.agency),
            allowed=permission.allowed,
        )
        if row is None:
            raise NotFound(f"no referral {cid}")
        if details is None:
            raise Forbidden(permission.reason)
        return ReferralDetailsSchema().dump(details)

    # --- the pipeline ---------------------------------------------------------------

    @rpc
    def pipeline_row(self, coordination_id: str) -> dict:
        """Where one referral stands: stage, and each agency's status since when."""
        caller = self.identity.require()
        cid = parse_coordination_id(coordination_id)
        with self.db.read() as session:
            row = ReferralRepository(session).pipeline(cid)
        if row is None:
            raise NotFound(f"no referral {cid}")
        if not domain.may_see_pipeline_row(caller.role, caller.agency, row):
            raise Forbidden("this referral's pipeline is not visible to this caller")
        return pipeline_row_dump(row)

    @on_event("case.opened")
    def on_case_opened(self, event: Envelope) -> None:
        self._project(event)

    @on_event("case.status_changed")
    def on_case_status_changed(self, event: Envelope) -> None:
        self._project(event)

    @on_event("investigation.opened")
    def on_investigation_opened(self, event: Envelope) -> None:
        self._project(event)

    @on_event("investigation.status_changed")
    def on_investigation_status_changed(self, event: Envelope) -> None:
        self._project(event)

    @on_event("request.filed")
    def on_request_filed(self, event: Envelope) -> None:
        self._project(event)

    @on_event("request.status_changed")
    def on_request_status_changed(self, event: Envelope) -> None:
        self._project(event)

    def _project(self, event: Envelope) -> None:
        """Apply an agency's status event to the pipeline, once, and only if it is newer."""
        report = domain.read_partner_report(event.event_type, event.payload)
        with self.db.unit_of_work() as uow:
            if not uow.first_delivery(event):
                return
            repository = ReferralRepository(uow.session)
            row = repository.pipeline(event.coordination_id, lock=True)
            if row is None:
                # The referral may still be committing, or the event came first: raising
                # rolls the inbox record back and sends the event to be retried (then parked).
                raise NotFound(f"no referral {event.coordination_id} (yet)")
            applied = row.apply(report, event.sequence)
            if applied.status_changed or applied.accepted:
                repository.save_pipeline(row)
            if applied.accepted:
                uow.publish(
                    "referral.accepted",
                    row.coordination_id,
                    {"agency": report.agency, "accepted_at": report.at},
                    priority=domain.EVENT_PRIORITY[row.urgency],
                )
        self.log.info(
            "partner_status_projected",
            event_type=event.event_type,
            sequence=event.sequence,
            agency=str(report.agency),
            applied=applied.status_changed,
            accepted=applied.accepted,
            stage=str(row.stage),
        )
