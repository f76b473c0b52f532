"""The bus topology, derived from the contracts and declared before any service starts.

Each consuming service has one durable queue bound to the event types it consumes, a retry
queue whose messages wait out their per-message TTL and dead-letter back to the main queue,
and a parking queue for what can never be handled. Declaring everything up front means an
event published with `mandatory=True` always has somewhere to go.
"""

from __future__ import annotations

from kombu import Connection, Exchange, Queue

from concord_contracts.events import EVENTS

EVENTS_EXCHANGE = "concord.events"

CONSUMERS: dict[str, tuple[str, ...]] = {
    # referral keeps the pipeline: every partner status comes back to it.
    "referral": (
        "case.opened",
        "case.status_changed",
        "investigation.opened",
        "investigation.status_changed",
        "request.filed",
        "request.status_changed",
    ),
    # Each agency keeps a small local copy of its partners' statuses for the cases it holds.
    "case_management": (
        "referral.routed",
        "referral.accepted",
        "investigation.opened",
        "investigation.status_changed",
        "request.filed",
        "request.status_changed",
    ),
    "justice_liaison": (
        "referral.routed",
        "referral.accepted",
        "case.opened",
        "case.status_changed",
        "request.filed",
        "request.status_changed",
    ),
    "cross_border": (
        "referral.accepted",
        "case.opened",
        "case.status_changed",
        "investigation.opened",
        "investigation.status_changed",
    ),
}


# A bounded tap of every event, newest kept: what operators read with `concord events tail`
# and what the privacy test listens to. It also means an event type nobody consumes yet is
# kept for a while rather than refused by the broker.
MONITOR_QUEUE = "concord.monitor.events"
MONITOR_MAX_LENGTH = 100_000


def events_exchange() -> Exchange:
    return Exchange(EVENTS_EXCHANGE, type="topic", durable=True)


def queue_name(service: str) -> str:
    return f"concord.{service}.events"


def retry_queue_name(service: str) -> str:
    return f"{queue_name(service)}.retry"


def dead_queue_name(service: str) -> str:
    return f"{queue_name(service)}.dead"


def service_queues(service: str) -> tuple[Queue, Queue, Queue]:
    """The main, retry and parking queues of one consuming service."""
    exchange = events_exchange()
    main = Queue(
        queue_name(service),
        exchange=exchange,
        bindings=[],  # bound per event type in declare()
        durable=True,
    )
    retry = Queue(
        retry_queue_name(service),
        durable=True,
        # A message waits here for its own TTL (the back-off), then the broker moves it back
        # to the main queue through the default exchange.
        queue_arguments={
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": queue_name(service),
        },
    )
    dead = Queue(dead_queue_name(service), durable=True)
    return main, retry, dead


def check() -> None:
    """Every consumed event exists in the catalogue."""
    for service, event_types in CONSUMERS.items():
        for event_type in event_types:
            if event_type not in EVENTS:
                raise ValueError(f"{service} consumes unknown event {event_type}")


def declare(amqp_uri: str) -> list[str]:
    """Declare the exchange, every queue and every binding; returns what was declared."""
    check()
    declared = [EVENTS_EXCHANGE]
    with Connection(amqp_uri) as conn:
        channel = conn.channel()
        exchange = events_exchange()(channel)
        exchange.declare()
        monitor = Queue(
            MONITOR_QUEUE,
            exchange=exchange,
            routing_key="#",
            durable=True,
            queue_arguments={"x-max-length": MONITOR_MAX_LENGTH, "x-overflow": "drop-head"},
        )(channel)
        monitor.declare()
        declared.append(MONITOR_QUEUE)
        for service, event_types in CONSUMERS.items():
            for queue in service_queues(service):
                bound = queue(channel)
                bound.declare()
                declared.append(queue.name)
            main = service_queues(service)[0](channel)
            for event_type in event_types:
                main.bind_to(exchange=EVENTS_EXCHANGE, routing_key=event_type)
                declared.append(f"{queue_name(service)} <- {event_type}")
        channel.close()
    return declared
