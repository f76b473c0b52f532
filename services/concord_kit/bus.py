"""Publishing to RabbitMQ with publisher confirms and `mandatory=True`.

One connection per publisher, guarded by a green lock: the relay and the event consumer
(retry and parking) both publish through it. A publish returns only once the broker has
confirmed it; a message the broker could not route raises `Unroutable`.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from eventlet.semaphore import Semaphore
from kombu import Connection, Producer


class Unroutable(Exception):
    """The broker had no queue for this message: the topology is not declared."""


class BusPublisher:
    def __init__(self, amqp_uri: str):
        self.amqp_uri = amqp_uri
        self._lock = Semaphore(1)
        self._connection: Connection | None = None
        self._producer: Producer | None = None
        self._returned: list[Any] = []

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
