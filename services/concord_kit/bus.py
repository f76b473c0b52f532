"""Publishing to RabbitMQ with publisher confirms and `mandatory=True`.

One connection per publisher, guarded by a green lock: the relay and the event consumer
(retry and parking) both publish through it. A publish returns only once the broker has
confirmed it; a message the broker could not route raises `Unroutable`.

`publish_many` is the relay's: it sends a whole batch, then waits once for the broker's
confirms of all of it (one round trip per batch instead of one per message), and says how
many messages, from the first, were confirmed and routed.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eventlet.semaphore import Semaphore
from kombu import Connection, Producer


class Unroutable(Exception):
    """The broker had no queue for this message: the topology is not declared."""


class NotConfirmed(Exception):
    """The broker refused (nacked) a message, or did not confirm it in time."""


@dataclass(frozen=True)
class Outgoing:
    """One message of a batch (`BusPublisher.publish_many`)."""

    body: dict[str, Any]
    exchange: str
    routing_key: str
    headers: dict[str, Any] = field(default_factory=dict)
    message_id: str | None = None
    priority: int = 0


class PartlyPublished(Exception):
    """A batch stopped short: the first `confirmed` messages are confirmed and routed, the
    rest are not known to be (the cause is chained)."""

    def __init__(self, confirmed: int, cause: Exception):
        super().__init__(f"{confirmed} confirmed before {type(cause).__name__}: {cause}")
        self.confirmed = confirmed
        self.cause = cause


CONFIRM_TIMEOUT_SECONDS = 30.0


class BusPublisher:
    def __init__(self, amqp_uri: str):
        self.amqp_uri = amqp_uri
        self._lock = Semaphore(1)
        self._connection: Connection | None = None
        self._producer: Producer | None = None
        self._returned: list[Any] = []
        self._batch_channel: Any = None
        self._batch_tag = 0  # delivery tags the broker gave on the batch channel so far
        self._acked = 0  # every tag up to this one is acknowledged
        self._acked_above: set[int] = set()  # acknowledged one by one past `_acked`
        self._nacked: set[int] = set()
        self._batch_returned: set[str | None] = set()

    def _ensure(self) -> Producer:
        if self._producer is None:
            conn = Connection(self.amqp_uri, transport_options={"confirm_publish": True})
            conn.connect()
            self._connection = conn
            self._producer = Producer(conn.channel(), on_return=self._on_return)
        return self._producer

    def _on_return(self, exception, exchange, routing_key, message):
        self._returned.append(routing_key)

    def close(self) -> None:
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        if self._connection is not None:
            # A broken connection may fail to close; it is dropped all the same.
            with contextlib.suppress(Exception):
                self._connection.release()
        self._connection = None
        self._producer = None
        self._batch_channel = None

    # --- batches ---------------------------------------------------------------------

    def _ensure_batch_channel(self) -> Any:
        """A channel of this publisher's connection in confirm mode, with its own count of
        delivery tags (the broker numbers the messages of each channel from 1)."""
        self._ensure()
        if self._batch_channel is None:
            assert self._connection is not None
            channel = self._connection.channel()
            channel.confirm_select()
            channel._confirm_selected = True
            channel.events["basic_ack"].add(self._on_batch_ack)
            channel.events["basic_nack"].add(self._on_batch_nack)
            channel.events["basic_return"].add(self._on_batch_return)
            self._batch_channel = channel
            self._batch_tag = self._acked = 0
            self._acked_above.clear()
            self._nacked.clear()
        return self._batch_channel

    def _on_batch_ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self._acked = max(self._acked, delivery_tag)
        else:
            self._acked_above.add(delivery_tag)
        while self._acked + 1 in self._acked_above:
            self._acked += 1
            self._acked_above.discard(self._acked)

    def _on_batch_nack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self._nacked.update(range(self._acked + 1, delivery_tag + 1))
        else:
            self._nacked.add(delivery_tag)
        self._on_batch_ack(delivery_tag, multiple)  # answered, if not the answer we wanted

    def _on_batch_return(self, exception, exchange, routing_key, message) -> None:
        # RabbitMQ returns an unroutable message before it confirms it.
        self._batch_returned.add(getattr(message, "properties", {}).get("message_id"))

    def publish_many(
        self, messages: Sequence[Outgoing], timeout: float = CONFIRM_TIMEOUT_SECONDS
    ) -> int:
        """Publish `messages` in order (persistent, `mandatory`), then wait for the broker
        to confirm every one of them. Returns how many were published (all of them).

        Raises `PartlyPublished` when some message was returned (no queue: `Unroutable`),
        refused or not confirmed in time; its `confirmed` counts the messages, from the
        first, that the broker did confirm and route, which the caller may mark as sent.
        The rest are to be published again (consumers' inboxes ignore a duplicate)."""
        if not messages:
            return 0
        with self._lock:
            first = 0
            try:
                channel = self._ensure_batch_channel()
                assert self._connection is not None
                self._batch_returned.clear()
                first = self._batch_tag + 1
                for outgoing in messages:
                    message = channel.prepare_message(
                        json.dumps(outgoing.body),
                        outgoing.priority,
                        "application/json",
                        "utf-8",
                        outgoing.headers,
                        {"delivery_mode": 2, "message_id": outgoing.message_id},
                    )
                    channel._basic_publish(
                        message,
                        exchange=outgoing.exchange,
                        routing_key=outgoing.routing_key,
                        mandatory=True,
                    )
                    self._batch_tag += 1
                deadline = time.monotonic() + timeout
                while self._acked < self._batch_tag:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise NotConfirmed(f"no confirm within {timeout:g} s")
                    self._connection.drain_events(timeout=remaining)
            except Exception as exc:
                confirmed = self._confirmed_prefix(messages, first)
                self._reset()
                raise PartlyPublished(confirmed, exc) from exc
            confirmed = self._confirmed_prefix(messages, first)
            if confirmed < len(messages):
                failed = messages[confirmed]
                cause: Exception = (
                    Unroutable(f"no queue for {failed.exchange}/{failed.routing_key}")
                    if failed.message_id in self._batch_returned
                    else NotConfirmed("the broker refused a message")
                )
                raise PartlyPublished(confirmed, cause)
            return len(messages)

    def _confirmed_prefix(self, messages: Sequence[Outgoing], first: int) -> int:
        """How many of `messages` (delivery tags from `first`), from the first one, were
        acknowledged, not refused and not returned."""
        count = 0
        for offset, outgoing in enumerate(messages):
            tag = first + offset
            acked = tag <= self._acked or tag in self._acked_above
            if (
                first == 0
                or not acked
                or tag in self._nacked
                or outgoing.message_id in self._batch_returned
            ):
                break
            count += 1
        return count

    def publish(
        self,
        body: dict[str, Any],
        *,
        exchange: str,
        routing_key: str,
        headers: dict[str, Any] | None = None,
        message_id: str | None = None,
        expiration: float | None = None,
        priority: int = 0,
    ) -> None:
        with self._lock:
            try:
                producer = self._ensure()
                self._returned.clear()
                producer.publish(
                    json.dumps(body),
                    exchange=exchange,
                    routing_key=routing_key,
                    content_type="application/json",
                    content_encoding="utf-8",
                    delivery_mode=2,
                    mandatory=True,
                    headers=headers or {},
                    message_id=message_id,
                    expiration=expiration,
                    priority=priority,
                    retry=False,
                )
            except Exception:
                self._reset()
                raise
            if self._returned:
                raise Unroutable(f"no queue for {exchange}/{routing_key}")
