"""The central authority's nameko service: thin entrypoints over `cross_border.domain`."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import NoReturn

from marshmallow import ValidationError
from nameko.rpc import rpc

from concord_contracts.envelope import Envelope
from concord_contracts.rpc import CrossBorderRequestSchema, RequestFiledReceiptSchema
from concord_kit.errors import BadInput, Forbidden, parse_uuid
from concord_kit.events import on_event
from concord_kit.service import ConcordService
from cross_border import domain
from cross_border.domain import Request
from cross_border.repository import RequestRepository


class CrossBorderService(ConcordService):
    name = "cross_border"

    @rpc
    def file_request(self, coordination_id: str, request: dict) -> dict:
        """File a request abroad about a referral; its legal deadline starts now."""
        caller = self.identity.require()
        cid = parse_uuid(coordination_id, "coordination_id")
        decision = domain.may_file(caller)
        if not decision.allowed:
            self._refuse("request.file", cid, decision.reason)
        try:
            body = CrossBorderRequestSchema().load(request)
        except ValidationError as exc:
            raise BadInput(exc.normalized_messages()) from None
        now = dt.datetime.now(dt.UTC)
        errors = domain.problems(body["instrument"], body["measures"], now)
        if errors:
            raise BadInput(errors)

        filed = Request.file(cid, filed_by=caller, now=now, **body)
        with self.db.unit_of_work() as uow:
            RequestRepository(uow.session).add(filed)
            uow.audit(
                "request.filed",
                filed.request_id,
                reason=f"{filed.instrument} to {filed.executing_country} for referral {cid}",
            )
            uow.publish(
                "request.filed",
                cid,
                {
                    "request_id": filed.request_id,
                    "instrument": filed.instrument,
                    "executing_country": filed.executing_country,
                    "status": filed.status,
                    "due_at": filed.deadline.due_at,
                    "filed_at": filed.filed_at,
                },
            )
        self.log.info(
            "request_filed",
            request_id=str(filed.request_id),
            coordination_id=str(cid),
            instrument=str(filed.instrument),
            emergency=filed.emergency,
        )
        return _receipt(filed)

    # One handler for every partner status this service follows (contracts' topology).
    @on_event("referral.accepted")
    @on_event("case.opened")
    @on_event("case.status_changed")
    @on_event("investigation.opened")
    @on_event("investigation.status_changed")
    def track_partner(self, event: Envelope) -> None:
        with self.db.unit_of_work() as uow:
            if not uow.first_delivery(event):
                return
            RequestRepository(uow.session).partners.apply(event, domain.AGENCY)

    def _refuse(self, action: str, subject: uuid.UUID, reason: str) -> NoReturn:
        with self.db.unit_of_work() as uow:
            uow.audit(action, subject, reason=reason, outcome="refused")
        raise Forbidden(reason)


def _receipt(request: Request) -> dict:
    return RequestFiledReceiptSchema().dump(
        {
            "request_id": request.request_id,
            "coordination_id": request.coordination_id,
            "instrument": request.instrument,
            "executing_country": request.executing_country,
            "emergency": request.emergency,
            "measures": list(request.measures),
            "status": request.status,
            "filed_at": request.filed_at,
            "clock": request.deadline.clock,
            "due_at": request.deadline.due_at,
            "silence_warning_at": request.deadline.silence_warning_at,
        }
    )
