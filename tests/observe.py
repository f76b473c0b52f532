"""Watching the running system from outside, as every suite does: waiting until something
holds, and tapping the bus for what actually crossed it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kombu import Connection, Queue

from concord_contracts.topology import EVENTS_EXCHANGE, events_exchange
from tests.conftest import AMQP_URI


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 20.0,
    interval: float = 0.05,
    what: str = "condition",
    retry_on: tuple[type[BaseException], ...] = (),
) -> Any:
    """The predicate's first truthy value; fails the test when none comes in time. An error
    of a kind in `retry_on` (the system is recovering) counts as "not yet"."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except retry_on as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not met within {timeout:.0f} s (last: {last!r})")


class BusTap:
    """The events that crossed the bus on the tapped routing keys, in arrival order."""

    def __init__(self, queue: Queue):
        self._queue = queue
        self.seen: list[dict] = []
        self.routing_keys: dict[str, str] = {}  # event id -> the routing key it travelled on

    def events(self, cid: str | None = None, event_type: str | None = None) -> list[dict]:
        """Everything that arrived so far, of one coordination id and type when given."""
        while (message := self._queue.get(no_ack=True)) is not None:
            body = json.loads(message.body)
            self.routing_keys[body["event_id"]] = message.delivery_info["routing_key"]
            self.seen.append(body)
        return [
            e
            for e in self.seen
            if cid in (None, e["coordination_id"]) and event_type in (None, e["event_type"])
        ]

    __call__ = events


@contextmanager
def bus_tap(*routing_keys: str) -> Iterator[BusTap]:
    """An exclusive queue on the events exchange, bound to each routing key pattern (`#` for
    everything; urgent referrals' events travel as `urgent.<event type>`)."""
    connection = Connection(AMQP_URI)
    try:
        queue = Queue(
            f"test.tap.{uuid.uuid4()}",
            exchange=events_exchange(),
            routing_key=routing_keys[0],
            exclusive=True,
            auto_delete=True,
        )(connection.channel())
        queue.declare()
        for key in routing_keys[1:]:
            queue.bind_to(exchange=EVENTS_EXCHANGE, routing_key=key)
        yield BusTap(queue)
    finally:
        connection.release()


# Every event of the referral hub, both lanes.
REFERRAL_EVENTS = ("referral.*", "urgent.referral.*")
