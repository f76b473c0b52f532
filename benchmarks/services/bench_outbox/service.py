"""The producing side of Concord's path: state changes commit their events into the outbox;
the kit's relay publishes them (publisher confirms, in order, in batches)."""

from __future__ import annotations

import uuid

import bench_contract
import eventlet
from nameko.rpc import rpc

from concord_kit.service import ConcordService


class BenchOutbox(ConcordService):
    name = bench_contract.PRODUCER

    @rpc
    def emit(self, count: int, per_coordination: int = 2, writers: int = 4) -> int:
        """Commit `count` events: transactions of `per_coordination` events about one new
        coordination id each (as a referral's intake commits `received` and `routed`),
        from `writers` concurrent green threads (as concurrent requests would)."""
        transactions = max(1, count // per_coordination)
        pool = eventlet.GreenPool(writers)

        def commit(_):
            cid = uuid.uuid4()
            with self.db.unit_of_work() as uow:
                for sequence in range(1, per_coordination + 1):
                    uow.publish(bench_contract.EVENT_TYPE, cid, bench_contract.payload(sequence))

        for _ in pool.imap(commit, range(transactions)):
            pass
        return transactions * per_coordination
