"""The transactional outbox and its relay.

`prepare` checks an event against its contract; `insert` writes prepared events into the
outbox inside the caller's transaction, with the next `sequence`s for their coordination
ids (a unit of work's `publish` prepares, and it inserts them all just before it commits;
`add` does both at once). The relay, a managed thread in every service process, publishes
pending rows in commit order, in batches, each confirmed by the broker, then marks them
sent. When the broker is away the rows wait and the relay retries with back-off.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, replace
from typing import Any

import eventlet
import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session

from concord_contracts.envelope import Envelope, new_envelope
from concord_contracts.events import dump_payload
from concord_contracts.topology import EVENTS_EXCHANGE, URGENT_PRIORITY, routing_key
from concord_kit import upsert
from concord_kit.bus import BusPublisher, Outgoing, PartlyPublished
from concord_kit.tables import outbox, outbox_sequence

log = structlog.get_logger(__name__)

BATCH_SIZE = 200
POLL_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 10.0


def next_sequences(session: Session, coordination_id: str, count: int = 1) -> int:
    """Take `count` sequence numbers for this coordination id under its row lock; returns
    the last one (the numbers are `last - count + 1` to `last`)."""
    if upsert.supported(session):
        return upsert.increment(
            session,
            outbox_sequence,
            {"coordination_id": coordination_id},
            "last_sequence",
            step=count,
        )
    updated = session.execute(
        outbox_sequence.update()
        .where(outbox_sequence.c.coordination_id == coordination_id)
        .values(last_sequence=outbox_sequence.c.last_sequence + count)
        .returning(outbox_sequence.c.last_sequence)
    ).scalar()
    if updated is not None:
        return int(updated)
    session.execute(
        outbox_sequence.insert().values(coordination_id=coordination_id, last_sequence=count)
    )
    return count


def last_sequence(session: Session, coordination_id: uuid.UUID | str) -> int:
    """The last sequence number committed for this coordination id (0 before its first
    event): every event of it up to this number is committed. Read it before the state it
    vouches for (each statement sees what was committed when it began), so that the state
    read holds every event up to it."""
    found = session.execute(
        sa.select(outbox_sequence.c.last_sequence).where(
            outbox_sequence.c.coordination_id == str(coordination_id)
        )
    ).scalar()
    return int(found or 0)


@dataclass(frozen=True)
class Pending:
    """An event checked against its contract, waiting for its sequence and its row
    (`prepare`, then `insert`)."""

    envelope: Envelope
    priority: int


def prepare(
    *,
    producer: str,
    event_type: str,
    coordination_id: uuid.UUID | str,
    payload: dict[str, Any],
    correlation_id: str,
    causation_id: uuid.UUID | str | None = None,
    priority: int = 0,
    sequence: int = 0,
    occurred_at: dt.datetime | None = None,
) -> Pending:
    """An event for the outbox, its payload checked now (a contract refusal raises at the
    caller's line); its sequence is given by `insert`."""
    version, body_payload = dump_payload(event_type, payload)
    envelope = new_envelope(
        event_type=event_type,
        schema_version=version,
        producer=producer,
        coordination_id=uuid.UUID(str(coordination_id)),
        sequence=sequence,
        correlation_id=correlation_id,
        causation_id=uuid.UUID(str(causation_id)) if causation_id else None,
        payload=body_payload,
        occurred_at=occurred_at,
    )
    return Pending(envelope, priority)


def _row(pending: Pending) -> dict[str, Any]:
    envelope = pending.envelope
    return {
        "event_id": str(envelope.event_id),
        "event_type": envelope.event_type,
        "coordination_id": str(envelope.coordination_id),
        "sequence": envelope.sequence,
        "priority": pending.priority,
        "body": envelope.to_message(),
        "created_at": envelope.occurred_at,
    }


def insert(session: Session, events: list[Pending]) -> None:
    """Write prepared events into the outbox of the current transaction, in order: one
    sequence increment per coordination id (the numbers follow the order of `events`) and
    one insert for all the rows. A unit of work calls it once, just before it commits, so
    the sequence rows stay locked for the commit only."""
    if not events:
        return
    counts: dict[str, int] = {}
    for pending in events:
        cid = str(pending.envelope.coordination_id)
        counts[cid] = counts.get(cid, 0) + 1
    # Lock the sequence rows in one order, whatever order the events came in: two
    # transactions about the same coordination ids never wait for each other in a circle.
    next_of = {
        cid: next_sequences(session, cid, counts[cid]) - counts[cid] + 1 for cid in sorted(counts)
    }
    rows = []
    for pending in events:
        cid = str(pending.envelope.coordination_id)
        rows.append(
            _row(replace(pending, envelope=replace(pending.envelope, sequence=next_of[cid])))
        )
        next_of[cid] += 1
    session.execute(outbox.insert(), rows)


def add(
    session: Session,
    *,
    producer: str,
    event_type: str,
    coordination_id: uuid.UUID | str,
    payload: dict[str, Any],
    correlation_id: str,
    causation_id: uuid.UUID | str | None = None,
    priority: int = 0,
) -> uuid.UUID:
    """Put one event in the outbox of the current transaction now; returns its event_id.
    (A unit of work's `publish` prepares its events and inserts them all at its commit.)"""
    pending = prepare(
        producer=producer,
        event_type=event_type,
        coordination_id=coordination_id,
        payload=payload,
        correlation_id=correlation_id,
        causation_id=causation_id,
        priority=priority,
    )
    insert(session, [pending])
    return pending.envelope.event_id


def add_many(
    session: Session,
    *,
    producer: str,
    events: list[tuple[str, uuid.UUID | str, dict[str, Any], int]],
    correlation_id: str,
    causation_id: uuid.UUID | str | None = None,
) -> list[uuid.UUID]:
    """Put many events `(event_type, coordination_id, payload, priority)` in the outbox of
    the current transaction, in order, with two inserts (a bulk intake's chunk).

    Only for coordination ids minted in this transaction (nothing was published for them
    before): their sequences start at 1 here. Returns the event ids, in order."""
    counts: dict[str, int] = {}
    rows = []
    ids = []
    occurred_at = dt.datetime.now(dt.UTC)
    for event_type, coordination_id, payload, priority in events:
        cid = str(coordination_id)
        counts[cid] = counts.get(cid, 0) + 1
        pending = prepare(
            producer=producer,
            event_type=event_type,
            coordination_id=cid,
            payload=payload,
            correlation_id=correlation_id,
            causation_id=causation_id,
            priority=priority,
            sequence=counts[cid],
            occurred_at=occurred_at,
        )
        rows.append(_row(pending))
        ids.append(pending.envelope.event_id)
    if not rows:
        return ids
    session.execute(
        outbox_sequence.insert(),
        [{"coordination_id": cid, "last_sequence": n} for cid, n in counts.items()],
    )
    session.execute(outbox.insert(), rows)
    return ids


def pending_count(session: Session) -> int:
    return int(
        session.execute(
            sa.select(sa.func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
        ).scalar_one()
    )


def _pending(session: Session, limit: int, *, urgent: bool) -> list[Any]:
    query = sa.select(
        outbox.c.id, outbox.c.event_id, outbox.c.event_type, outbox.c.body, outbox.c.priority
    ).where(outbox.c.sent_at.is_(None))
    query = query.where(
        outbox.c.priority >= URGENT_PRIORITY if urgent else outbox.c.priority < URGENT_PRIORITY
    )
    query = query.order_by(outbox.c.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.execute(query).all())


def publish_batch(session: Session, publisher: BusPublisher, limit: int = BATCH_SIZE) -> int:
    """Publish up to `limit` pending events and mark them sent; returns how many.

    Urgent rows (priority at least `URGENT_PRIORITY`) go first, in commit order, on the
    urgent lane (`concord_contracts.topology.routing_key`); then the others, in commit
    order. So an urgent referral's events are never published behind a bulk import's
    backlog. (A service with large backlogs indexes its urgent pending rows:
    `concord_kit.tables.create_urgent_outbox_index`.)

    Rows are locked with SKIP LOCKED on PostgreSQL so that two instances of a service
    never publish the same row at the same time. A row published but not yet marked (a crash
    between the two) is published again: consumers' inboxes make that harmless.
    """
    rows = _pending(session, limit, urgent=True)
    if len(rows) < limit:
        rows += _pending(session, limit - len(rows), urgent=False)
    sent: list[int] = []
    # One batch on the bus, one wait for the broker's confirms of all of it; only the rows
    # confirmed from the first on are marked sent, the others are published again later.
    outgoing = [
        Outgoing(
            row.body,
            exchange=EVENTS_EXCHANGE,
            routing_key=routing_key(row.event_type, row.priority),
            headers={"event_type": row.event_type},
            message_id=row.event_id,
            priority=row.priority,
        )
        for row in rows
    ]
    try:
        publisher.publish_many(outgoing)
        sent = [row.id for row in rows]
    except PartlyPublished as partly:
        sent = [row.id for row in rows[: partly.confirmed]]
        raise partly.cause from None
    finally:
        if sent:
            session.execute(
                outbox.update().where(outbox.c.id.in_(sent)).values(sent_at=dt.datetime.now(dt.UTC))
            )
    return len(sent)


class Relay:
    """The loop that drains the outbox; woken at once after a commit that added events."""

    def __init__(self, transaction, publisher: BusPublisher):
        self._transaction = transaction  # a context manager factory yielding a Session
        self._publisher = publisher
        self._wake = eventlet.event.Event()
        self._running = True

    def wake(self) -> None:
        if not self._wake.ready():
            self._wake.send(True)

    def stop(self) -> None:
        self._running = False
        self.wake()
        self._publisher.close()

    def drain(self) -> int:
        total = 0
        while True:
            with self._transaction() as session:
                n = publish_batch(session, self._publisher)
            total += n
            if n < BATCH_SIZE:
                return total

    def run(self) -> None:
        backoff = 0.5
        while self._running:
            # A fresh event before draining: a commit during the drain wakes the next wait.
            self._wake = eventlet.event.Event()
            try:
                self.drain()
                backoff = 0.5
            except Exception as exc:  # noqa: BLE001 - the broker or database is away; retry
                log.warning("outbox_relay_retrying", error=type(exc).__name__, in_seconds=backoff)
                eventlet.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            with eventlet.Timeout(POLL_SECONDS, False):
                self._wake.wait()
