"""The faults the fault suite injects, and the broker's own view of what it holds.

Each fault is what operations meet in a real deployment: a process killed with SIGKILL
(supervisor restarts it), RabbitMQ stopped and started, PostgreSQL restarted, the network
delivering an event twice or late and out of order, a message nobody can handle (poison),
a database refusing one change until an operator fixes the cause.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from kombu import Connection, Producer, Queue

from concord_contracts import topology
from tests.conftest import AMQP_URI, ARTIFACTS, REPO, VHOST
from tests.observe import wait_for

MANAGEMENT = os.environ.get("CONCORD_TEST_RABBITMQ_API", "http://127.0.0.1:15672/api")


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5):
    """`wait_for` while the system recovers from a fault: any error means "not yet"."""
    return wait_for(predicate, timeout, interval, what, retry_on=(Exception,))


# --- processes ------------------------------------------------------------------------


def processes(system) -> dict[str, dict]:
    """supervisor's view, by process name (`referral-0`, `gateway`...)."""
    result = system.concord("status", "--json", check=False)
    return {p["name"]: p for p in json.loads(result.stdout)["processes"]}


def kill_9(system, name: str, timeout: float = 60) -> int:
    """SIGKILL one service process mid-flow; returns once supervisor runs a new one."""
    before = processes(system)[name]["pid"]
    os.kill(before, signal.SIGKILL)
    wait_until(
        lambda: (
            (p := processes(system).get(name))
            and p["state"] == "RUNNING"
            and p["pid"] not in (None, before)
        ),
        timeout,
        f"{name} restarted after kill -9",
    )
    return before


def restart_rabbitmq(down_seconds: float = 2.0) -> None:
    """RabbitMQ stopped (the node stays, its listeners close) and started again."""
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=120)
    try:
        time.sleep(down_seconds)
    finally:
        start_rabbitmq()


def start_rabbitmq(timeout: float = 180) -> None:
    """start_app; a node that does not finish starting is replaced, so the tests after this
    one still have a broker (a node short of open files once never came back in CI)."""
    try:
        subprocess.run(
            ["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=timeout
        )
        subprocess.run(
            ["rabbitmqctl", "--timeout", str(int(timeout)), "await_startup"],
            check=True,
            capture_output=True,
            timeout=timeout + 10,
        )
    # Any failure: under eventlet's monkey patch, a timeout raises green subprocess's own
    # TimeoutExpired, which is not subprocess.TimeoutExpired.
    except Exception as exc:  # noqa: BLE001
        output = (getattr(exc, "stderr", None) or b"").decode(errors="replace")[-500:]
        warnings.warn(
            f"RabbitMQ did not start again ({exc}; {output}): replacing the node", stacklevel=2
        )
        subprocess.run(["pkill", "-9", "-f", "beam.smp.*rabbit"], capture_output=True)
        subprocess.run(
            ["bash", str(REPO / "deploy" / "local" / "ensure-services.sh")],
            check=True,
            timeout=300,
        )


def restart_postgresql() -> None:
    versions = sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(x) for x in v.split(".")])
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    wait_until(
        lambda: subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"]).returncode == 0,
        60,
        "PostgreSQL accepting connections",
    )


# --- the broker's view ----------------------------------------------------------------


def management(path: str) -> Any:
    request = urllib.request.Request(MANAGEMENT + path)
    request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def queues() -> dict[str, dict]:
    """Every queue of this test virtual host with its counts (RabbitMQ refreshes them every
    few seconds: poll, do not read once)."""
    vhost = urllib.parse.quote(VHOST, safe="")
    return {q["name"]: q for q in management(f"/queues/{vhost}")}


def concord_queues() -> dict[str, dict]:
    return {name: q for name, q in queues().items() if name.startswith("concord.")}


def settled(held: dict[str, dict]) -> dict[str, tuple[int, int]]:
    """Queues that still hold something they should not: unacknowledged anywhere, or ready
    outside the parking queues and the monitor tap. Empty when the bus has settled."""
    problems = {}
    for name, queue in held.items():
        unacked = int(queue.get("messages_unacknowledged", 0))
        ready = int(queue.get("messages_ready", 0))
        parked_or_tap = name.endswith(".dead") or name == topology.MONITOR_QUEUE
        if unacked or (ready and not parked_or_tap):
            problems[name] = (ready, unacked)
    return problems


def bindings(queue: str) -> list[tuple[str, str]]:
    vhost = urllib.parse.quote(VHOST, safe="")
    listed = management(f"/queues/{vhost}/{urllib.parse.quote(queue, safe='')}/bindings")
    return [(b["source"], b["routing_key"]) for b in listed if b["source"]]


# --- deliveries: late and out of order, twice, poison -------------------------------------


class Hold:
    """Delays every event on its way to a service and then delivers it out of order: the
    service's queue is unbound and a holding queue takes its bindings; `release` rebinds
    the service's queue and hands it the held events in reverse order. Nothing is lost (the
    holding queue is durable and drained after the rebinding: an event caught by both
    arrives twice, which is also a fault the service must bear)."""

    def __init__(self, service: str):
        self.service = service
        self.queue = topology.queue_name(service)
        self.holding = f"test.fault.hold.{service}"
        self.keys = bindings(self.queue)
        self.released = 0

    def start(self) -> Hold:
        with Connection(AMQP_URI) as conn:
            channel = conn.channel()
            Queue(self.holding, durable=True)(channel).declare()
            for exchange, key in self.keys:
                channel.queue_bind(self.holding, exchange, key)
            for exchange, key in self.keys:
                channel.queue_unbind(self.queue, exchange, key)
        return self

    def release(self) -> int:
        with Connection(AMQP_URI, transport_options={"confirm_publish": True}) as conn:
            channel = conn.channel()
            for exchange, key in self.keys:
                channel.queue_bind(self.queue, exchange, key)
            for exchange, key in self.keys:
                channel.queue_unbind(self.holding, exchange, key)
            holding = Queue(self.holding, no_declare=True)(channel)
            held = []
            while (message := holding.get(no_ack=False, accept=None)) is not None:
                held.append(message)
            producer = Producer(conn.channel(), auto_declare=False)
            for message in reversed(held):
                producer.publish(
                    message.body,
                    routing_key=self.queue,
                    headers=message.headers,
                    content_type=message.content_type,
                    content_encoding=message.content_encoding,
                    delivery_mode=2,
                    message_id=message.properties.get("message_id"),
                )  # confirmed before the held original is let go
            for message in held:
                message.ack()
            holding.delete()
        self.released = len(held)
        return self.released


class Tap:
    """A durable queue bound to every event: copies to deliver a second time."""

    NAME = "test.fault.tap"

    def __init__(self) -> None:
        with Connection(AMQP_URI) as conn:
            queue = Queue(
                self.NAME, exchange=topology.events_exchange(), routing_key="#", durable=True
            )(conn.channel())
            queue.declare()
            queue.purge()

    def take(self, limit: int) -> list[tuple[dict, dict]]:
        """Up to `limit` events seen so far: (body, headers), removed from the tap."""
        taken = []
        with Connection(AMQP_URI) as conn:
            queue = Queue(self.NAME, no_declare=True)(conn.channel())
            while len(taken) < limit and (message := queue.get(no_ack=True)) is not None:
                taken.append((json.loads(message.body), dict(message.headers or {})))
        return taken

    def delete(self) -> None:
        with Connection(AMQP_URI) as conn:
            Queue(self.NAME, no_declare=True)(conn.channel()).delete()


def consumers_of(event_type: str) -> list[str]:
    return [s for s, types in topology.CONSUMERS.items() if event_type in types]


def deliver_again(events: Iterable[tuple[dict, dict]]) -> int:
    """Publish each event again, unchanged (same event_id), straight into the queue of every
    service that consumes it, as a redelivery would."""
    count = 0
    with Connection(AMQP_URI, transport_options={"confirm_publish": True}) as conn:
        producer = Producer(conn.channel(), auto_declare=False)
        for body, headers in events:
            for service in consumers_of(body["event_type"]):
                producer.publish(
                    json.dumps(body),
                    routing_key=topology.queue_name(service),
                    headers=headers,
                    content_type="application/json",
                    content_encoding="utf-8",
                    delivery_mode=2,
                    message_id=body["event_id"],
                )
                count += 1
    return count


def poison(service: str) -> list[tuple[str, bytes | str, str]]:
    """Two messages the service can never handle, for its own queue: a valid envelope with
    an impossible payload, and something that is not an envelope at all. Returns
    (message_id, body, what) for each."""
    event_type = topology.CONSUMERS[service][0]
    impossible = {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": "2026-11-23T10:00:00+00:00",
        "producer": _producer(event_type),
        "coordination_id": str(uuid.uuid4()),
        "sequence": 1,
        "correlation_id": "fault-suite",
        "causation_id": None,
        "payload": {"status": "on_the_moon", "agencies": "everyone", "extra": [1, 2, 3]},
    }
    not_envelope_id = str(uuid.uuid4())
    return [
        (impossible["event_id"], json.dumps(impossible), "impossible payload"),
        (not_envelope_id, json.dumps(["not", "an", "envelope"]), "invalid envelope"),
    ]


def _producer(event_type: str) -> str:
    from concord_contracts.events import EVENTS

    return EVENTS[event_type].producer


def publish_poison(service: str) -> list[str]:
    ids = []
    with Connection(AMQP_URI, transport_options={"confirm_publish": True}) as conn:
        producer = Producer(conn.channel(), auto_declare=False)
        for message_id, body, _ in poison(service):
            producer.publish(
                body,
                routing_key=topology.queue_name(service),
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                message_id=message_id,
            )
            ids.append(message_id)
    return ids


def write_artifact(name: str, data: Any) -> Path:
    path = ARTIFACTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path
