"""Consuming events: one queue per service, one handler per event type, nothing lost.

    class CaseManagementService(ConcordService):
        @on_event("investigation.opened")
        def on_investigation_opened(self, event: Envelope): ...

A message is acknowledged only after its handler returned (its transaction committed), or
after a copy was confirmed into the retry queue (back-off, then back to the main queue) or,
when it can never succeed, into the parking queue with the reason. nameko's own event
handler acknowledges a failed message and the event is gone; this one does not.
"""

from __future__ import annotations

import datetime as dt
from functools import partial

import structlog
from kombu import Queue
from nameko.amqp.consume import Consumer as ConsumerCore
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import Entrypoint, ProviderCollector, SharedExtension

from concord_contracts.envelope import Envelope, InvalidEvent
from concord_contracts.events import read_event
from concord_contracts.topology import (
    dead_queue_name,
    queue_name,
    retry_queue_name,
    urgent_queue_name,
    urgent_retry_queue_name,
)
from concord_kit.bus import BusPublisher
from concord_kit.config import amqp_uri, setting
from concord_kit.errors import ConcordError
from concord_kit.identity import CORRELATION_ID

log = structlog.get_logger(__name__)

ATTEMPT_HEADER = "x-concord-attempt"
REASON_HEADER = "x-concord-reason"
FAILED_AT_HEADER = "x-concord-failed-at"
SERVICE_HEADER = "x-concord-service"
# Wait before attempts 2, 3, 4, 5; after the last, the message is parked.
DEFAULT_BACKOFF_SECONDS = (1, 5, 15, 60)
# The two lanes a service consumes (concord_contracts.topology, the urgent lane).
MAIN, URGENT = "main", "urgent"


def backoff_schedule() -> tuple[float, ...]:
    return tuple(setting("EVENT_RETRY_BACKOFF_SECONDS", DEFAULT_BACKOFF_SECONDS))


def backoff_seconds(attempt: int, schedule: tuple[float, ...] = DEFAULT_BACKOFF_SECONDS) -> float:
    """How long a message waits after its `attempt`-th failure before it is tried again."""
    return schedule[min(attempt, len(schedule)) - 1]


def failure_reason(exc: BaseException) -> str:
    """What goes into the parking queue's reason header: the error's kind, never its values
    (a database error quotes the row it refused, which may hold personal data)."""
    if isinstance(exc, InvalidEvent):
        return f"InvalidEvent: {_field_names(exc.errors)}"
    if isinstance(exc, ConcordError):
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    return type(exc).__name__


def _field_names(errors) -> str:
    if isinstance(errors, dict):
        return ", ".join(
            f"{k}({_field_names(v)})" if isinstance(v, dict) else str(k) for k, v in errors.items()
        )
    return "invalid"


class _Consumer(ConsumerCore):
    """nameko's consumer, with kombu's decode-error default (log, acknowledge: the message
    is lost) replaced by a callback that parks the message."""

    def __init__(self, on_undecodable, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._on_undecodable = on_undecodable

    def on_decode_error(self, message, exc) -> None:
        self._on_undecodable(message, exc)


class EventQueue(SharedExtension, ProviderCollector):
    """The consumers of a service's two queues (the main one and the urgent lane); hands
    each event to the handler of its type.

    Each lane has its own connection and prefetch, so an urgent event is delivered at once
    even while the main queue holds a bulk import: it waits at most for a free worker, never
    for the messages queued before it in the main lane."""

    consumer: ConsumerCore
    urgent_consumer: ConsumerCore
    publisher: BusPublisher

    def setup(self) -> None:
        service = self.container.service_name
        self.queue_name = queue_name(service)
        self.publisher = BusPublisher(amqp_uri())
        self.consumer = self._consumer(self.queue_name, MAIN)
        self.urgent_consumer = self._consumer(urgent_queue_name(service), URGENT)

    def _consumer(self, name: str, lane: str) -> ConsumerCore:
        return _Consumer(
            self.park_undecodable,
            amqp_uri(),
            queues=[Queue(name, durable=True, no_declare=True)],
            callbacks=[partial(self.handle_message, lane=lane)],
            heartbeat=setting("HEARTBEAT", 60),
            prefetch_count=setting("PREFETCH_COUNT", 10),
            accept=["json"],
        )

    def start(self) -> None:
        self.container.spawn_managed_thread(self.consumer.run, identifier="event_queue")
        self.container.spawn_managed_thread(
            self.urgent_consumer.run, identifier="event_queue_urgent"
        )
        self.consumer.wait_until_consumer_ready()
        self.urgent_consumer.wait_until_consumer_ready()

    def stop(self) -> None:
        self.consumer.stop()
        self.urgent_consumer.stop()
        self.wait_for_providers()

    def kill(self) -> None:
        self.consumer.stop()
        self.urgent_consumer.stop()
        self.publisher.close()

    def handle_message(self, body, message, lane: str = MAIN) -> None:
        try:
            event = read_event(body)
        except InvalidEvent as exc:
            self.park(message, body, failure_reason(exc))
            return
        handler = next((p for p in self._providers if p.event_type == event.event_type), None)
        if handler is None:
            self.park(message, body, f"NoHandler: {event.event_type}")
            return
        handler.handle(event, body, message, lane)

    def ack(self, message) -> None:
        # Acknowledging needs only the message's own channel, whichever lane it came from.
        self.consumer.ack_message(message)

    def retry_or_park(self, message, body, exc: BaseException, lane: str = MAIN) -> None:
        attempt = int((message.headers or {}).get(ATTEMPT_HEADER, 1))
        reason = failure_reason(exc)
        schedule = backoff_schedule()
        if attempt > len(schedule):
            self.park(message, body, reason, attempt=attempt)
            return
        headers = {**(message.headers or {}), ATTEMPT_HEADER: attempt + 1, REASON_HEADER: reason}
        service = self.container.service_name
        self.publisher.publish(
            body,
            exchange="",
            routing_key=(
                urgent_retry_queue_name(service) if lane == URGENT else retry_queue_name(service)
            ),
            headers=headers,
            message_id=message.properties.get("message_id"),
            expiration=backoff_seconds(attempt, schedule),
        )
        self.ack(message)
        log.warning("event_retry_scheduled", reason=reason, attempt=attempt)

    def park_undecodable(self, message, exc: Exception) -> None:
        """A body that is not even text in its declared encoding (kombu would log it and
        acknowledge it: the message would be gone) is parked like any other poison."""
        try:
            self.park(message, message.body, f"UndecodableBody: {type(exc).__name__}")
        except Exception:  # noqa: BLE001 - could not park it: leave it to be redelivered
            self.consumer.requeue_message(message)

    def park(self, message, body, reason: str, attempt: int | None = None) -> None:
        headers = {
            **(message.headers or {}),
            REASON_HEADER: reason,
            FAILED_AT_HEADER: dt.datetime.now(dt.UTC).isoformat(),
            SERVICE_HEADER: self.container.service_name,
            ATTEMPT_HEADER: attempt or int((message.headers or {}).get(ATTEMPT_HEADER, 1)),
        }
        self.publisher.publish(
            body if isinstance(body, dict) else {"unparseable": str(body)[:1000]},
            exchange="",
            routing_key=dead_queue_name(self.container.service_name),
            headers=headers,
            message_id=message.properties.get("message_id"),
        )
        self.ack(message)
        log.error("event_parked", reason=reason)


class EventHandler(Entrypoint):
    queue = EventQueue()

    def __init__(self, event_type: str, **kwargs):
        self.event_type = event_type
        super().__init__(**kwargs)

    def setup(self) -> None:
        self.queue.register_provider(self)

    def stop(self) -> None:
        self.queue.unregister_provider(self)

    def handle(self, event: Envelope, body: dict, message, lane: str = MAIN) -> None:
        context_data = {
            CORRELATION_ID: event.correlation_id,
            "causation_id": str(event.event_id),
            "coordination_id": str(event.coordination_id),
        }
        handle_result = partial(self._handle_result, message, body, lane)

        def spawn():
            try:
                self.container.spawn_worker(
                    self, (event,), {}, context_data=context_data, handle_result=handle_result
                )
            except ContainerBeingKilled:
                self.queue.consumer.requeue_message(message)

        # Spawn from a managed thread so a full worker pool never blocks the consumer
        # (it must keep sending heartbeats), as nameko's own consumers do.
        self.container.spawn_managed_thread(spawn, identifier=f"event[{self.event_type}]")

    def _handle_result(self, message, body, lane, worker_ctx, result, exc_info):
        if exc_info is None:
            self.queue.ack(message)
        else:
            try:
                self.queue.retry_or_park(message, body, exc_info[1], lane)
            except Exception:  # noqa: BLE001 - could not republish: leave it unacked
                # The broker redelivers an unacknowledged message when this consumer's
                # connection goes; requeue now so the event is not stuck until then.
                self.queue.consumer.requeue_message(message)
        return result, exc_info


on_event = EventHandler.decorator
