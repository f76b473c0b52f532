"""Events per second through the same RabbitMQ, three ways, in one run:

- `raw_broker_msgs_per_s`: kombu, persistent messages of a Concord event's size, publisher
  confirms, consumer acknowledgements (benchmarks/broker.py): the physical limit;
- `nameko_dispatch_events_per_s`: nameko's default EventDispatcher into an `event_handler`
  that applies the same projection as Concord's consumer (the naive peer);
- `pipeline_events_per_s`: Concord's path, with the kit itself: the state change commits
  its events into the outbox, the relay publishes them with confirms, the kit's event
  queue hands each to the handler, which records it in the inbox and applies the kit's
  sequence-checked projection in one transaction, then acknowledges.

Each side runs in its own process (this machine has two cores), and every rate is measured
from the first message sent to the last one applied.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil
from kombu import Connection

from benchmarks import env
from benchmarks.services_path import ensure_services_path

RAW_QUEUE = "bench.raw"
WARM_UP = 200


@dataclass
class Sizes:
    raw: int
    nameko: int
    pipeline: int


QUICK = Sizes(raw=5_000, nameko=1_000, pipeline=2_000)
FULL = Sizes(raw=50_000, nameko=5_000, pipeline=20_000)


class CpuMeter:
    """How busy each process was over a measurement: CPU seconds per wall second (1.0 is a
    whole core). A side at 1.0 is what limits the rate; one well below it waits."""

    def __init__(self, pids: dict[str, int]):
        self._processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._start = {name: self._cpu(p) for name, p in self._processes.items()}

    @staticmethod
    def _cpu(process: psutil.Process) -> float:
        times = process.cpu_times()
        return times.user + times.system

    def busy(self, seconds: float) -> dict[str, float | None]:
        busy: dict[str, float | None] = {}
        for name, process in self._processes.items():
            try:
                busy[name] = round((self._cpu(process) - self._start[name]) / seconds, 2)
            except psutil.Error:  # it went away meanwhile
                busy[name] = None
        return busy


def broker_pid() -> dict[str, int]:
    """RabbitMQ's Erlang VM, when it runs on this machine (for its CPU share)."""
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "beam.smp" and "rabbit" in " ".join(
            process.info["cmdline"] or []
        ):
            return {"rabbitmq": process.pid}
    return {}


def postgres_cpu() -> float:
    """CPU seconds used so far by every PostgreSQL process (backends come and go)."""
    total = 0.0
    for process in psutil.process_iter(["name"]):
        if process.info["name"] == "postgres":
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
    return total


def raw_broker(count: int) -> dict:
    from benchmarks import broker

    broker.declare(env.AMQP_URI, RAW_QUEUE)
    module = [sys.executable, "-m", "benchmarks.broker"]
    args = [env.AMQP_URI, RAW_QUEUE, str(count)]
    consumer = subprocess.Popen(
        [*module, "consume", *args], cwd=env.REPO, stdout=subprocess.PIPE, text=True
    )
    assert consumer.stdout is not None
    if consumer.stdout.readline().strip() != "ready":
        raise RuntimeError("the raw consumer did not start")
    publisher = subprocess.run(
        [*module, "publish", *args], cwd=env.REPO, capture_output=True, text=True, check=True
    )
    consumed, _ = consumer.communicate(timeout=600)
    published = json.loads(publisher.stdout.strip().splitlines()[-1])
    result = json.loads(consumed.strip().splitlines()[-1])
    elapsed = result["last"] - published["started"]
    return {
        "raw_broker_msgs_per_s": round(count / elapsed),
        "raw_publish_confirmed_msgs_per_s": round(
            count / (published["published"] - published["started"])
        ),
        "message_bytes": published["bytes"],
        "raw_messages": count,
    }


def _topology_for(consumer: str, event_type: str) -> None:
    from concord_contracts import topology

    with Connection(env.AMQP_URI) as conn:
        channel = conn.channel()
        exchange = topology.events_exchange()(channel)
        exchange.declare()
        # Both lanes, as `concord topology declare` does for Concord's services: the kit
        # consumes the urgent queue too.
        for queue in topology.all_queues(consumer):
            bound = queue(channel)
            bound.declare()
            bound.purge()
        channel.queue_bind(topology.queue_name(consumer), topology.EVENTS_EXCHANGE, event_type)
        channel.queue_bind(
            topology.urgent_queue_name(consumer),
            topology.EVENTS_EXCHANGE,
            topology.routing_key(event_type, topology.URGENT_PRIORITY),
        )


def pipeline(count: int, measuring: Callable[[dict[str, int]], None] | None = None) -> dict:
    """Concord's path; `measuring`, if given, is told the producer's and consumer's pids
    when the measured stream starts (the profiler attaches to these, not to any process
    of that name: another engineer's benchmark may be running)."""
    ensure_services_path()
    import bench_contract

    databases = {
        bench_contract.PRODUCER: env.fresh_database(bench_contract.PRODUCER),
        bench_contract.CONSUMER: env.fresh_database(bench_contract.CONSUMER),
    }
    _topology_for(bench_contract.CONSUMER, bench_contract.EVENT_TYPE)
    config = env.write_config("pipeline", databases)
    producer = env.Process(config, "bench_outbox.service:BenchOutbox", "bench_outbox")
    consumer = env.Process(config, "bench_inbox.service:BenchInbox", "bench_inbox")
    with env.processes(producer, consumer), env.rpc(databases) as rpc:
        env.wait_until(lambda: rpc.bench_inbox.applied() == 0, 60, "bench_inbox up")
        env.wait_until(lambda: rpc.bench_outbox.health(), 60, "bench_outbox up")
        rpc.bench_outbox.emit(WARM_UP)
        env.wait_until(lambda: rpc.bench_inbox.applied() >= WARM_UP, 120, "warm-up applied")
        cpu = CpuMeter({"producer": producer.pid, "consumer": consumer.pid, **broker_pid()})
        if measuring is not None:
            measuring({"producer": producer.pid, "consumer": consumer.pid})
        started = time.time()
        emitted = rpc.bench_outbox.emit(count)
        committed = time.time()
        env.wait_until(
            lambda: rpc.bench_inbox.applied() >= WARM_UP + emitted,
            600,
            "every event applied",
            interval=0.1,
        )
        finished = time.time()
        busy = cpu.busy(finished - started)
        pending = rpc.bench_outbox.health()["outbox_pending"]
    return {
        "pipeline_cpu_busy": busy,
        # CPU per event: what a change of the kit saves, less moved by other load on the
        # machine than the rate (which waits on a shared PostgreSQL).
        "pipeline_cpu_ms_per_event": {
            name: round(1000 * value * (finished - started) / emitted, 3)
            for name, value in busy.items()
            if value is not None
        },
        "pipeline_events_per_s": round(emitted / (finished - started)),
        "pipeline_outbox_commit_events_per_s": round(emitted / (committed - started)),
        "pipeline_events": emitted,
        "pipeline_outbox_pending_after": pending,
    }


def nameko_peer(count: int) -> dict:
    ensure_services_path()
    databases = {"bench_peer": env.fresh_database("bench_peer")}
    config = env.write_config("nameko_peer", databases)
    handler = env.Process(config, "bench_peer.service:BenchPeer", "bench_peer")
    source = env.Process(config, "bench_peer.service:BenchPeerSource", "bench_peer_source")
    with env.processes(handler, source), env.rpc(databases) as rpc:
        env.wait_until(lambda: rpc.bench_peer.applied() == 0, 60, "bench_peer up")
        env.wait_until(lambda: rpc.bench_peer_source.emit(0) == 0, 60, "source up")
        rpc.bench_peer_source.emit(WARM_UP)
        env.wait_until(lambda: rpc.bench_peer.applied() >= WARM_UP, 120, "warm-up applied")
        cpu = CpuMeter({"producer": source.pid, "consumer": handler.pid, **broker_pid()})
        started = time.time()
        rpc.bench_peer_source.emit(count)
        env.wait_until(
            lambda: rpc.bench_peer.applied() >= WARM_UP + count,
            600,
            "every event applied",
            interval=0.1,
        )
        finished = time.time()
        busy = cpu.busy(finished - started)
    return {
        "nameko_dispatch_events_per_s": round(count / (finished - started)),
        "nameko_cpu_busy": busy,
    }


def run(sizes: Sizes) -> dict:
    env.ensure_vhost()
    env.delete_queues()
    results: dict = {}
    results.update(raw_broker(sizes.raw))
    results.update(nameko_peer(sizes.nameko))
    results.update(pipeline(sizes.pipeline))
    results["throughput_ratio"] = round(
        results["pipeline_events_per_s"] / results["raw_broker_msgs_per_s"], 3
    )
    results["nameko_ratio"] = round(
        results["nameko_dispatch_events_per_s"] / results["raw_broker_msgs_per_s"], 3
    )
    return results
