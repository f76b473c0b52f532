"""The naive nameko peer: nameko's default EventDispatcher into an `event_handler` that
applies the same projection as Concord's consumer (but with no outbox, no inbox, and
nameko's own acknowledgement: a handler that raises loses its event)."""

from __future__ import annotations

import datetime as dt
import uuid

import bench_contract
import sqlalchemy as sa
from nameko.events import EventDispatcher, event_handler
from nameko.rpc import rpc

from bench_peer.models import partner_status
from concord_kit.db import Database
from concord_kit.partners import PartnerStatuses

SOURCE = "bench_peer_source"


class BenchPeerSource:
    """Dispatches events with nameko's EventDispatcher (persistent, one confirm each)."""

    name = SOURCE
    dispatch = EventDispatcher()

    @rpc
    def emit(self, count: int) -> int:
        template = bench_contract.sample_body()
        for _ in range(count):
            body = {**template, "event_id": str(uuid.uuid4()), "coordination_id": str(uuid.uuid4())}
            self.dispatch("noted", body)
        return count


class BenchPeer:
    name = "bench_peer"
    db = Database(publishes=False)

    @event_handler(SOURCE, "noted")
    def on_noted(self, body: dict) -> None:
        payload = dict(body["payload"])
        payload["opened_at"] = dt.datetime.fromisoformat(payload["opened_at"])
        with self.db.unit_of_work() as uow:
            PartnerStatuses(uow.session, partner_status).record(
                body["coordination_id"],
                body["producer"],
                body["sequence"],
                bench_contract.projection_update(payload),
            )

    @rpc
    def applied(self) -> int:
        with self.db.read() as session:
            count = sa.select(sa.func.count()).select_from(partner_status)
            return int(session.execute(count).scalar_one())
