"""The consuming side of Concord's path: the kit's event queue (ack after commit, retry and
park), the inbox, and the kit's sequence-checked partner-status projection."""

from __future__ import annotations

import bench_contract
import sqlalchemy as sa
from nameko.rpc import rpc

from bench_inbox.models import partner_status
from concord_contracts.envelope import Envelope
from concord_kit.events import on_event
from concord_kit.partners import PartnerStatuses
from concord_kit.service import ConcordService
from concord_kit.tables import inbox


class BenchInbox(ConcordService):
    name = bench_contract.CONSUMER

    @on_event(bench_contract.EVENT_TYPE)
    def on_noted(self, event: Envelope) -> None:
        with self.db.unit_of_work() as uow:
            if not uow.first_delivery(event):
                return
            PartnerStatuses(uow.session, partner_status).record(
                event.coordination_id,
                event.producer,
                event.sequence,
                bench_contract.projection_update(event.payload),
            )

    @rpc
    def applied(self) -> int:
        """Events applied so far (the inbox holds one row per event applied)."""
        with self.db.read() as session:
            return int(session.execute(sa.select(sa.func.count()).select_from(inbox)).scalar_one())
