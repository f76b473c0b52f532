"""The parking queues `concord.<service>.events.dead`: list what is parked, replay it.

Listing is non-destructive: messages are fetched without acknowledgement and handed back
(rejected with requeue), so they stay parked in their order. Replay publishes a copy to
the service's own queue of the lane the event was parked from (`concord.<service>.events`,
or `concord.<service>.events.urgent` for the urgent lane: an urgent event replayed never
waits behind a bulk import) through the default exchange (so only that service sees it
again), waits for the broker's confirm, and only then acknowledges the parked original: a
crash in between leaves a duplicate, which the inbox ignores, never a loss.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

REASON = "x-concord-reason"
ATTEMPT = "x-concord-attempt"
FAILED_AT = "x-concord-failed-at"
REPLAYED_AT = "x-concord-replayed-at"
# Written by concord_kit.events park(): "main" or "urgent".
LANE = "x-concord-lane"
MAIN, URGENT = "main", "urgent"
# Headers of the failure that a replayed copy leaves behind. Without x-concord-attempt the
# consumer counts the next delivery as attempt 1 (concord_kit.events); x-death is
# RabbitMQ's own record of the trips through the retry queue.
FAILURE_HEADERS = (
    REASON,
    FAILED_AT,
    ATTEMPT,
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
)

# Properties copied from a parked message to its replayed copy.
COPIED_PROPERTIES = ("message_id", "correlation_id", "priority", "timestamp", "type", "app_id")

DEFAULT_LIMIT = 1000


@dataclass(frozen=True)
class Parked:
    """What an operator sees of a parked event: identifiers and failure, never the payload."""

    service: str
    event_id: str | None
    event_type: str | None
    reason: str | None
    attempt: int | None
    failed_at: str | None
    lane: str = MAIN


def describe(
    service: str,
    body: bytes | str,
    headers: Mapping[str, Any] | None,
    properties: Mapping[str, Any] | None = None,
) -> Parked:
    """Read a parked message's identifiers. The body may be anything (an invalid envelope is
    one reason to be parked); fall back to the AMQP message id."""
    headers = headers or {}
    envelope: Any = None
    with suppress(ValueError, TypeError):
        envelope = json.loads(body)
    if not isinstance(envelope, dict):
        envelope = {}
    event_id = envelope.get("event_id") or (properties or {}).get("message_id")
    attempt = headers.get(ATTEMPT)
    try:
        attempt = int(attempt) if attempt is not None else None
    except (TypeError, ValueError):
        attempt = None
    return Parked(
        service=service,
        event_id=_text(event_id),
        event_type=_text(envelope.get("event_type")),
        reason=_text(headers.get(REASON)),
        attempt=attempt,
        failed_at=_text(headers.get(FAILED_AT)),
        lane=lane_of(service, headers),
    )


def lane_of(service: str, headers: Mapping[str, Any]) -> str:
    """The lane a parked event came from: the header park() writes; for an event parked
    before that header existed, its trips through the urgent retry queue (RabbitMQ's
    x-death) say it; otherwise the main lane."""
    lane = _text(headers.get(LANE))
    if lane in (MAIN, URGENT):
        return lane
    from concord_contracts.topology import urgent_retry_queue_name

    deaths = headers.get("x-death")
    queues = {_text(d.get("queue")) for d in deaths or () if isinstance(d, Mapping)}
    return URGENT if urgent_retry_queue_name(service) in queues else MAIN


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def replay_headers(headers: Mapping[str, Any] | None, now: datetime | None = None) -> dict:
    """The headers of a replayed copy: the failure and the attempt count forgotten."""
    kept = {k: v for k, v in (headers or {}).items() if k not in FAILURE_HEADERS}
    kept[REPLAYED_AT] = (now or datetime.now(UTC)).isoformat()
    return kept


def as_dict(parked: Parked) -> dict[str, Any]:
    return asdict(parked)


@contextmanager
def _connection(amqp_uri: str) -> Iterator[Any]:
    from kombu import Connection

    # confirm_publish: every publish on this connection waits for the broker's ack.
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as conn:
        conn.ensure_connection(max_retries=1)
        yield conn


def _fetch(conn: Any, service: str, limit: int) -> tuple[Any, list[Any]] | None:
    """Take up to `limit` messages of a parking queue without acknowledging them.
    None when the queue does not exist (the service consumes nothing)."""
    from amqp.exceptions import NotFound
    from kombu import Queue

    from concord_contracts.topology import dead_queue_name

    channel = conn.channel()
    queue = Queue(dead_queue_name(service), no_declare=True).bind(channel)
    try:
        queue.queue_declare(passive=True)
    except NotFound:
        return None  # the broker closed that channel
    messages: list[Any] = []
    while len(messages) < limit:
        message = queue.get(no_ack=False, accept=None)
        if message is None:
            break
        messages.append(message)
    return channel, messages


def _give_back(channel: Any, messages: Iterable[Any]) -> None:
    for message in messages:
        message.reject(requeue=True)
    channel.close()


def list_parked(amqp_uri: str, services: Iterable[str], limit: int = DEFAULT_LIMIT) -> list[Parked]:
    parked: list[Parked] = []
    with _connection(amqp_uri) as conn:
        for service in services:
            fetched = _fetch(conn, service, limit)
            if fetched is None:
                continue
            channel, messages = fetched
            try:
                parked += [describe(service, m.body, m.headers, m.properties) for m in messages]
            finally:
                _give_back(channel, messages)
    return parked


def replay(
    amqp_uri: str,
    services: Iterable[str],
    event_id: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[Parked]:
    """Move parked messages back to their service's queue of the lane they were parked
    from: the one with `event_id`, or all (event_id None). Returns what was replayed."""
    from kombu import Producer

    from concord_contracts.topology import queue_name, urgent_queue_name

    replayed: list[Parked] = []
    with _connection(amqp_uri) as conn:
        for service in services:
            fetched = _fetch(conn, service, limit)
            if fetched is None:
                continue
            channel, messages = fetched
            # The default exchange routes by queue name: only this service gets it again.
            producer = Producer(conn.channel(), auto_declare=False)
            try:
                for message in messages:
                    parked = describe(service, message.body, message.headers, message.properties)
                    if event_id is not None and parked.event_id != event_id:
                        continue
                    properties = {
                        k: message.properties[k]
                        for k in COPIED_PROPERTIES
                        if message.properties.get(k) is not None
                    }
                    lane_queue = urgent_queue_name if parked.lane == URGENT else queue_name
                    producer.publish(
                        message.body,
                        routing_key=lane_queue(service),
                        headers=replay_headers(message.headers),
                        content_type=message.content_type,
                        content_encoding=message.content_encoding,
                        delivery_mode=2,
                        **properties,
                    )  # returns once confirmed
                    message.ack()
                    replayed.append(parked)
            finally:
                # Anything not acknowledged (kept, or after a failure) goes back, in order.
                _give_back(channel, [m for m in messages if not m.acknowledged])
                producer.channel.close()
    return replayed
