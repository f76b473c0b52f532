"""Consuming events: one queue per service, one handler per event type, nothing lost.

    class CaseManagementService(ConcordService):
        @on_event("investigation.opened")
        def on_investigation_opened(self, event: Envelope): ...

A message is acknowledged only after its handler returned (its transaction committed), or
after a copy was confirmed into the retry queue (back-off, then back to the main queue) or,
when it can never succeed, into the parking queue with the reason. nameko's own event
handler acknowledges a failed message and the event is gone; this one does not.

Events that arrive together are applied together: each lane hands the messages the broker
has delivered (up to `EVENT_BATCH_SIZE`) to their handlers one after another inside one
database transaction (`Database.shared_transaction`), then commits once and acknowledges
them. When a handler fails, or the commit does, the whole batch is rolled back (nothing of
it was acknowledged) and each event handled again alone, in its own transaction, as a
single delivery always is: the failing one is retried or parked, the others commit.
Handlers are written as before: their `self.db.unit_of_work()` joins the batch's
transaction.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from functools import partial
from typing import NamedTuple

import structlog
from kombu import Queue
from nameko.amqp.consume import Consumer as ConsumerCore
from nameko.containers import WorkerContext
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
from concord_kit.db import Database
from concord_kit.errors import ConcordError
from concord_kit.identity import CORRELATION_ID

log = structlog.get_logger(__name__)

ATTEMPT_HEADER = "x-concord-attempt"
REASON_HEADER = "x-concord-reason"
FAILED_AT_HEADER = "x-concord-failed-at"
SERVICE_HEADER = "x-concord-service"
# The lane a parked event came from, so that a replay sends it back to that lane.
LANE_HEADER = "x-concord-lane"
# Wait before attempts 2, 3, 4, 5; after the last, the message is parked.
DEFAULT_BACKOFF_SECONDS = (1, 5, 15, 60)
# The two lanes a service consumes (concord_contracts.topology, the urgent lane).
MAIN, URGENT = "main", "urgent"
# Messages the broker may hand a lane before their acknowledgements, and the most events
# applied in one transaction (measured: benchmarks/, docs/reliability.md).
DEFAULT_PREFETCH_COUNT = 100
DEFAULT_BATCH_SIZE = 50


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
        self.batch_size = max(1, int(setting("EVENT_BATCH_SIZE", DEFAULT_BATCH_SIZE)))
        self.database = next(
            (d for d in self.container.dependencies if isinstance(d, Database)), None
        )
        self._waiting: dict[str, deque[_Delivery]] = {MAIN: deque(), URGENT: deque()}
        self._applying = {MAIN: False, URGENT: False}
        self.consumer = self._consumer(self.queue_name, MAIN)
        self.urgent_consumer = self._consumer(urgent_queue_name(service), URGENT)

    def _consumer(self, name: str, lane: str) -> ConsumerCore:
        return _Consumer(
            partial(self.park_undecodable, lane=lane),
            amqp_uri(),
            queues=[Queue(name, durable=True, no_declare=True)],
            callbacks=[partial(self.handle_message, lane=lane)],
            heartbeat=setting("HEARTBEAT", 60),
            prefetch_count=setting("PREFETCH_COUNT", DEFAULT_PREFETCH_COUNT),
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
            self.park(message, body, failure_reason(exc), lane=lane)
            return
        handler = next((p for p in self._providers if p.event_type == event.event_type), None)
        if handler is None:
            self.park(message, body, f"NoHandler: {event.event_type}", lane=lane)
            return
        self._waiting[lane].append(_Delivery(handler, event, body, message))
        if not self._applying[lane]:
            # One applier per lane, in a managed thread: the consumer goes on taking in
            # messages (and sending heartbeats) while the database works.
            self._applying[lane] = True
            self.container.spawn_managed_thread(
                partial(self._apply_waiting, lane), identifier=f"event_queue_apply[{lane}]"
            )

    def _apply_waiting(self, lane: str) -> None:
        waiting = self._waiting[lane]
        try:
            # The consumer hands over every message it has read before this thread runs,
            # so what is waiting here is what the broker delivered meanwhile.
            while waiting:
                count = min(len(waiting), self.batch_size)
                self._apply([waiting.popleft() for _ in range(count)], lane)
        finally:
            self._applying[lane] = False

    def _apply(self, batch: list[_Delivery], lane: str) -> None:
        if len(batch) == 1 or self.database is None:
            for delivery in batch:
                self._apply_alone(delivery, lane)
            return
        # By coordination id (in delivery order within one: the order that matters), so two
        # instances' batches lock the rows of their coordination ids in the same order.
        batch = sorted(batch, key=lambda delivery: str(delivery.event.coordination_id))
        try:
            applied = self._apply_together(batch)
        except ContainerBeingKilled:
            for delivery in batch:  # nothing committed: the broker gives them out again
                self.consumer.requeue_message(delivery.message)
            return
        except Exception as exc:  # noqa: BLE001 - the batch as a whole failed; one by one
            log.warning("event_batch_failed", error=type(exc).__name__, events=len(batch))
            applied = False
        if not applied:
            # A handler failed (or the commit did): nothing of the batch was kept nor
            # acknowledged. Each event again in its own transaction, as a single delivery:
            # the failing one is retried or parked, the others commit.
            for delivery in batch:
                self._apply_alone(delivery, lane)
            return
        for delivery in batch:
            self._settle(delivery, lane, None)

    def _apply_together(self, batch: list[_Delivery]) -> bool:
        """Every event of `batch` in one transaction, committed at the end; False, and
        nothing committed, as soon as one handler fails."""
        assert self.database is not None
        database = self.database
        try:
            with database.shared_transaction() as shared:
                for delivery in batch:
                    error = database.apply_in(shared, delivery.event, partial(self._run, delivery))
                    if error is not None:
                        raise _RollBack
        except _RollBack:
            return False
        return True

    def _apply_alone(self, delivery: _Delivery, lane: str) -> None:
        """One event in its own transaction (its handler's unit of work)."""
        try:
            error = self._run(delivery)
        except ContainerBeingKilled:
            self.consumer.requeue_message(delivery.message)
            return
        self._settle(delivery, lane, error)

    @staticmethod
    def _run(delivery: _Delivery) -> BaseException | None:
        """Run the event's worker; its error, if it failed."""
        errors: list[BaseException] = []

        def handle_result(worker_ctx, result, exc_info):
            if exc_info is not None:
                errors.append(exc_info[1])
            return result, exc_info

        delivery.handler.run(delivery.event, handle_result)
        return errors[0] if errors else None

    def _settle(self, delivery: _Delivery, lane: str, error: BaseException | None) -> None:
        """Acknowledge a message whose change committed; retry or park a failed one."""
        if error is None:
            self.ack(delivery.message)
            return
        try:
            self.retry_or_park(delivery.message, delivery.body, error, lane)
        except Exception:  # noqa: BLE001 - could not republish: leave it unacked
            # The broker redelivers an unacknowledged message when this consumer's
            # connection goes; requeue now so the event is not stuck until then.
            self.consumer.requeue_message(delivery.message)

    def ack(self, message) -> None:
        # Acknowledging needs only the message's own channel, whichever lane it came from.
        self.consumer.ack_message(message)

    def retry_or_park(self, message, body, exc: BaseException, lane: str = MAIN) -> None:
        attempt = int((message.headers or {}).get(ATTEMPT_HEADER, 1))
        reason = failure_reason(exc)
        schedule = backoff_schedule()
        if attempt > len(schedule):
            self.park(message, body, reason, attempt=attempt, lane=lane)
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

    def park_undecodable(self, message, exc: Exception, lane: str = MAIN) -> None:
        """A body that is not even text in its declared encoding (kombu would log it and
        acknowledge it: the message would be gone) is parked like any other poison."""
        try:
            self.park(message, message.body, f"UndecodableBody: {type(exc).__name__}", lane=lane)
        except Exception:  # noqa: BLE001 - could not park it: leave it to be redelivered
            self.consumer.requeue_message(message)

    def park(
        self, message, body, reason: str, attempt: int | None = None, lane: str = MAIN
    ) -> None:
        headers = {
            **(message.headers or {}),
            REASON_HEADER: reason,
            FAILED_AT_HEADER: dt.datetime.now(dt.UTC).isoformat(),
            SERVICE_HEADER: self.container.service_name,
            LANE_HEADER: lane,
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

    def run(self, event: Envelope, handle_result) -> None:
        """Handle `event` in a worker run in the calling green thread (the lane's applier);
        raises ContainerBeingKilled.

        Not through `spawn_worker`: the applier would wait for a free slot of the worker
        pool while its batch's transaction holds locks, and a pool full of RPC workers
        waiting for those locks (on SQLite, for the database itself) would never free one.
        Each lane applies one event at a time anyway. The worker's life is nameko's own
        (`_run_worker`: dependencies injected, `handle_result`, teardown)."""
        container = self.container
        if container._being_killed:
            raise ContainerBeingKilled()
        context_data = {
            CORRELATION_ID: event.correlation_id,
            "causation_id": str(event.event_id),
            "coordination_id": str(event.coordination_id),
        }
        worker_ctx = WorkerContext(
            container, container.service_cls(), self, (event,), {}, data=context_data
        )
        container._run_worker(worker_ctx, handle_result)


class _RollBack(Exception):
    """Leave a batch's transaction without committing it."""


class _Delivery(NamedTuple):
    """A message read from a lane, waiting for its handler."""

    handler: EventHandler
    event: Envelope
    body: dict
    message: object


on_event = EventHandler.decorator
