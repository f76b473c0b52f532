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
    # Each agency keeps a small local copy of its partners' statuses for the cases it holds,
    # and follows the hub's decisions to take a referral back (declined, revoked).
    "case_management": (
        "referral.routed",
        "referral.accepted",
        "referral.declined",
        "referral.revoked",
        "investigation.opened",
        "investigation.status_changed",
        "request.filed",
        "request.status_changed",
    ),
    "justice_liaison": (
        "referral.routed",
        "referral.accepted",
        "referral.declined",
        "referral.revoked",
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


# The urgent lane. An event the producer marks urgent (an outbox row whose priority is at
# least URGENT_PRIORITY: a child in immediate danger) is published with the routing key
# `urgent.<event_type>` and lands in each consumer's `concord.<service>.events.urgent`
# queue, which the kit's EventQueue consumes on a connection and prefetch of its own: it
# never waits behind a bulk import queued in the main queue. Anything binding `#` (the
# monitor tap) sees both lanes.
URGENT_PREFIX = "urgent."
URGENT_PRIORITY = 9


def routing_key(event_type: str, priority: int = 0) -> str:
    """The routing key an event is published with: its type, prefixed in the urgent lane."""
    return f"{URGENT_PREFIX}{event_type}" if priority >= URGENT_PRIORITY else event_type


def event_type_of(key: str) -> str:
    return key.removeprefix(URGENT_PREFIX)


def events_exchange() -> Exchange:
    return Exchange(EVENTS_EXCHANGE, type="topic", durable=True)


def queue_name(service: str) -> str:
    return f"concord.{service}.events"


def retry_queue_name(service: str) -> str:
    return f"{queue_name(service)}.retry"


def dead_queue_name(service: str) -> str:
    return f"{queue_name(service)}.dead"


def urgent_queue_name(service: str) -> str:
    return f"{queue_name(service)}.urgent"


def urgent_retry_queue_name(service: str) -> str:
    return f"{urgent_queue_name(service)}.retry"


def urgent_queues(service: str) -> tuple[Queue, Queue]:
    """The urgent lane of one consuming service: its queue and its retry queue (a failed
    urgent event waits out its back-off and comes back to the urgent queue, not behind the
    main one). Parked urgent events share the service's parking queue."""
    urgent = Queue(
        urgent_queue_name(service), exchange=events_exchange(), bindings=[], durable=True
    )
    retry = Queue(
        urgent_retry_queue_name(service),
        durable=True,
        queue_arguments={
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": urgent_queue_name(service),
        },
    )
    return urgent, retry


def all_queues(service: str) -> tuple[Queue, ...]:
    """Every queue of one consuming service, both lanes."""
    return (*service_queues(service), *urgent_queues(service))


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
            for queue in all_queues(service):
                bound = queue(channel)
                bound.declare()
                declared.append(queue.name)
            main = service_queues(service)[0](channel)
            urgent = urgent_queues(service)[0](channel)
            for event_type in event_types:
                main.bind_to(exchange=EVENTS_EXCHANGE, routing_key=event_type)
                declared.append(f"{queue_name(service)} <- {event_type}")
                key = routing_key(event_type, URGENT_PRIORITY)
                urgent.bind_to(exchange=EVENTS_EXCHANGE, routing_key=key)
                declared.append(f"{urgent_queue_name(service)} <- {key}")
        channel.close()
    return declared
