"""The raw broker baseline: kombu publishing and consuming persistent messages of the size
of a Concord event through the same RabbitMQ, the physical limit of this machine.

Both sides use the guarantees Concord's path has: the publisher waits for the broker's
confirms (per window of `WINDOW` messages, the best kombu/py-amqp can do), the consumer
acknowledges each message after it has it. Run as two processes:

    python -m benchmarks.broker consume AMQP_URI QUEUE COUNT
    python -m benchmarks.broker publish AMQP_URI QUEUE COUNT
"""

from __future__ import annotations

import json
import sys
import time

from kombu import Connection, Queue

from benchmarks.services_path import ensure_services_path

WINDOW = 200


def body_bytes() -> bytes:
    ensure_services_path()
    import bench_contract

    return json.dumps(bench_contract.sample_body()).encode()


def declare(amqp_uri: str, queue: str) -> None:
    with Connection(amqp_uri) as conn:
        bound = Queue(queue, durable=True)(conn.channel())
        bound.declare()
        bound.purge()


def publish(amqp_uri: str, queue: str, count: int) -> dict:
    body = body_bytes()
    with Connection(amqp_uri) as conn:
        channel = conn.default_channel
        channel.confirm_select()
        confirmed = {"upto": 0}

        def on_ack(tag, multiple):
            confirmed["upto"] = max(confirmed["upto"], tag)

        channel.events["basic_ack"].add(on_ack)
        started = time.time()
        sent = 0
        while sent < count:
            window = min(WINDOW, count - sent)
            for _ in range(window):
                message = channel.prepare_message(
                    body, 0, "application/json", "utf-8", {}, {"delivery_mode": 2}
                )
                channel._basic_publish(message, exchange="", routing_key=queue)
            sent += window
            while confirmed["upto"] < sent:
                conn.drain_events(timeout=30)
        return {"started": started, "published": time.time(), "bytes": len(body)}


def consume(amqp_uri: str, queue: str, count: int) -> dict:
    received = 0
    first = last = None
    with Connection(amqp_uri) as conn:
        channel = conn.channel()
        channel.basic_qos(0, WINDOW, False)

        def on_message(message):
            nonlocal received, first, last
            received += 1
            now = time.time()
            first = first or now
            last = now
            channel.basic_ack(message.delivery_tag)

        channel.basic_consume(queue, callback=on_message)
        print("ready", flush=True)
        while received < count:
            conn.drain_events(timeout=120)
    return {"first": first, "last": last, "received": received}


if __name__ == "__main__":
    role, uri, queue_name, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    result = (publish if role == "publish" else consume)(uri, queue_name, n)
    print(json.dumps(result), flush=True)
