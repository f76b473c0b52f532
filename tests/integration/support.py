"""Helpers the integration tests share: waiting for what the bus brings, publishing an
event as its producer's relay would (the same body may be sent twice, or out of order), and
holding a service's events back so that they arrive late."""

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from kombu import Connection

from concord_contracts.events import EVENTS
from concord_contracts.topology import (
    EVENTS_EXCHANGE,
    URGENT_PRIORITY,
    queue_name,
    routing_key,
    urgent_queue_name,
)
from concord_kit.bus import BusPublisher
from concord_kit.tables import inbox
from tests.conftest import AMQP_URI


def publish_event(
    event_type, producer, cid, sequence, payload, event_id=None, correlation_id="it-test"
) -> dict:
    """Publish an event in its envelope; returns the body (send it again to duplicate it).
    `payload` is in its JSON form and must satisfy the contract."""
    EVENTS[event_type].schema().load(payload)
    body = {
        "event_id": str(event_id or uuid.uuid4()),
        "event_type": event_type,
        "schema_version": EVENTS[event_type].version,
        "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
        "producer": producer,
        "coordination_id": str(cid),
        "sequence": sequence,
        "correlation_id": correlation_id,
        "causation_id": None,
        "payload": payload,
    }
    return send(body)


def send(body: dict) -> dict:
    publisher = BusPublisher(AMQP_URI)
    try:
        publisher.publish(
            body,
            exchange=EVENTS_EXCHANGE,
            routing_key=body["event_type"],
            message_id=body["event_id"],
        )
    finally:
        publisher.close()
    return body


def in_inbox(engine: sa.Engine, event_id: str) -> bool:
    """Whether the service of that database has applied (recorded) the event."""
    with engine.connect() as conn:
        return bool(
            conn.execute(
                sa.select(sa.func.count()).select_from(inbox).where(inbox.c.event_id == event_id)
            ).scalar()
        )


@contextmanager
def held_back(service: str, *event_types: str) -> Iterator[None]:
    """While inside, the broker routes no event of these types to `service` (either lane):
    what the producers publish meanwhile never reaches it, unless the test sends it later
    (from a bus tap: a late delivery). Its bindings are back on leaving."""
    bindings = [
        (queue, key)
        for event_type in event_types
        for queue, key in (
            (queue_name(service), routing_key(event_type)),
            (urgent_queue_name(service), routing_key(event_type, URGENT_PRIORITY)),
        )
    ]
    with Connection(AMQP_URI) as connection:
        channel = connection.channel()
        for queue, key in bindings:
            channel.queue_unbind(queue, EVENTS_EXCHANGE, key)
        try:
            yield
        finally:
            for queue, key in bindings:
                channel.queue_bind(queue, EVENTS_EXCHANGE, key)
