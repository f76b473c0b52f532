"""The database of one service: engine, migrations on start, units of work, the relay.

    class ReferralService(ConcordService):
        ...
        with self.db.unit_of_work() as uow:
            if not uow.first_delivery(event):      # inbox: a redelivery changes nothing
                return
            uow.session.execute(...)               # the change
            uow.publish("referral.routed", cid, payload)   # outbox, same transaction

Never hold a unit of work open across an RPC call: do the call first, then the change.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from eventlet.semaphore import Semaphore
from nameko.extensions import DependencyProvider
from sqlalchemy.orm import Session, sessionmaker

from concord_contracts.envelope import Envelope
from concord_kit import audit, outbox, upsert
from concord_kit.bus import BusPublisher
from concord_kit.config import amqp_uri, database_url
from concord_kit.green import make_psycopg2_green
from concord_kit.identity import SYSTEM, CallContext, Caller
from concord_kit.migrations import upgrade
from concord_kit.tables import inbox

CAUSATION_ID = "causation_id"


def make_engine(url: str) -> sa.Engine:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection, _record):
            # Let SQLAlchemy's "begin" below decide when a transaction starts.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # Take the write lock up front: two processes upgrading a read lock deadlock.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() == "postgresql":
        make_psycopg2_green()  # else each query blocks every green thread of the process
    engine = sa.create_engine(url, pool_size=10, max_overflow=10)
    _ping_after_idle(engine)
    return engine


# A connection given back less than this ago was answering then: it is used without asking.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_after_idle(engine: sa.Engine) -> None:
    """SQLAlchemy's pre-ping (`SELECT 1` before use; a dead connection invalidates the
    pool, so a restarted database costs no transaction), for connections idle a while only.

    A busy process reuses its connections within milliseconds, and the ping was a round
    trip per transaction (a fifth of the benchmark producer's). A database that restarts
    within a second of a connection's last use fails the one transaction that meets it, as
    it fails those under way: handlers retry, the gateway answers 503, and the pool is
    invalidated then as by the ping."""

    @sa.event.listens_for(engine, "connect")
    def _connected(dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection, record, proxy):
        if time.monotonic() - record.info.get("idle_since", 0.0) < PING_AFTER_IDLE_SECONDS:
            return
        dialect = engine.dialect
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, dbapi_connection, None):
                # As pool_pre_ping does: this connection and every older one are replaced.
                raise sa.exc.InvalidatePoolError() from exc
            raise


class UnitOfWork:
    """One transaction: the change, its events (outbox), the inbox record and the audit."""

    def __init__(self, session: Session, producer: str, context: CallContext):
        self.session = session
        self._producer = producer
        self._context = context
        self.published: list[uuid.UUID] = []
        self._outgoing: list[outbox.Pending] = []
        self._audit: list[audit.Entry] = []

    def publish(
        self,
        event_type: str,
        coordination_id: uuid.UUID | str,
        payload: dict[str, Any],
        *,
        priority: int = 0,
    ) -> uuid.UUID:
        """Put an event in the outbox of this transaction; returns its event_id. The payload
        is checked now; the row and its `sequence` are written just before the commit, all
        of this unit of work's events in one insert (`flush`)."""
        pending = outbox.prepare(
            producer=self._producer,
            event_type=event_type,
            coordination_id=coordination_id,
            payload=payload,
            correlation_id=self._context.correlation_id,
            causation_id=self._context._data.get(CAUSATION_ID),
            priority=priority,
        )
        self._outgoing.append(pending)
        self.published.append(pending.envelope.event_id)
        return pending.envelope.event_id

    def publish_many(
        self, events: list[tuple[str, uuid.UUID | str, dict[str, Any], int]]
    ) -> list[uuid.UUID]:
        """`publish` for many events `(event_type, coordination_id, payload, priority)` of
        coordination ids minted in this transaction (a bulk intake): two inserts."""
        self._flush_events()  # the events published before these go before them
        event_ids = outbox.add_many(
            self.session,
            producer=self._producer,
            events=events,
            correlation_id=self._context.correlation_id,
            causation_id=self._context._data.get(CAUSATION_ID),
        )
        self.published.extend(event_ids)
        return event_ids

    def flush(self) -> None:
        """Write the events published and the audit entries so far (done before the
        commit). The audit trail's lock is taken here, last, and so held only for the
        commit: a unit of work that audits and then locks a row can never wait on one that
        holds that row and waits for the audit lock (a deadlock), and other writers of the
        service wait for the commit only, not for the rest of the work."""
        self._flush_events()
        entries, self._audit = self._audit, []
        audit.append(self.session, entries, self._context.correlation_id)

    def _flush_events(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        outbox.insert(self.session, outgoing)

    def first_delivery(self, event: Envelope) -> bool:
        """Record the event in the inbox; False when it was applied before (a redelivery)."""
        values = {
            "event_id": str(event.event_id),
            "event_type": event.event_type,
            "received_at": dt.datetime.now(dt.UTC),
        }
        if upsert.supported(self.session):
            # One statement. Two instances racing on one redelivered event: PostgreSQL makes
            # the second wait for the first's commit, then tells it the event is applied.
            return upsert.insert_unless_present(self.session, inbox, values, key=("event_id",))
        seen = self.session.execute(
            sa.select(inbox.c.event_id).where(inbox.c.event_id == str(event.event_id))
        ).first()
        if seen:
            return False
        # Two instances racing on one redelivered event: the primary key refuses the second
        # at commit, its handler fails, and on retry it finds the event here.
        self.session.execute(
            inbox.insert().values(
                event_id=str(event.event_id),
                event_type=event.event_type,
                received_at=dt.datetime.now(dt.UTC),
            )
        )
        return True

    def audit(
        self,
        action: str,
        subject: uuid.UUID | str,
        *,
        reason: str,
        outcome: str = "allowed",
        caller: Caller | None = None,
    ) -> None:
        """Note an entry for the audit trail, appended with this unit of work (`flush`):
        it commits with the change or not at all."""
        self._audit.append(
            audit.Entry(
                at=dt.datetime.now(dt.UTC),
                caller=caller or self._context.caller or SYSTEM,
                action=action,
                subject=str(subject),
                reason=reason,
                outcome=outcome,
            )
        )

    def audit_many(
        self, entries: list[tuple[str, uuid.UUID | str, str]], *, outcome: str = "allowed"
    ) -> None:
        """`audit` for many entries `(action, subject, reason)` by the same caller."""
        for action, subject, reason in entries:
            self.audit(action, subject, reason=reason, outcome=outcome)


class SharedTransaction:
    """One transaction in which the handlers of a batch of events run one after another
    (`concord_kit.events`): it commits once all of them succeeded, and only then are their
    messages acknowledged; a failure rolls all of it back."""

    def __init__(self, session: Session):
        self.session = session
        self.published = False


class DatabaseAccess:
    """What a worker holds as `self.db`."""

    def __init__(
        self, provider: Database, context: CallContext, shared: SharedTransaction | None = None
    ):
        self._provider = provider
        self._context = context
        self._shared = shared

    @contextlib.contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        if self._shared is not None:
            # An event of a batch: the batch's transaction, which commits (and wakes the
            # relay) once every event of the batch has been handled.
            uow = UnitOfWork(self._shared.session, self._provider.service_name, self._context)
            yield uow
            uow.flush()
            self._shared.published = self._shared.published or bool(uow.published)
            return
        with self._provider.transaction() as session:
            uow = UnitOfWork(session, self._provider.service_name, self._context)
            yield uow
            uow.flush()
        if uow.published:
            self._provider.wake_relay()

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        if self._shared is not None:
            yield self._shared.session  # sees what the batch's earlier events changed
            return
        with self._provider.transaction() as session:
            yield session

    def health(self) -> dict[str, Any]:
        try:
            with self.read() as session:
                pending = outbox.pending_count(session)
            database = "ok"
        except Exception:  # noqa: BLE001 - health reports, it does not raise
            pending, database = -1, "unreachable"
        return {
            "service": self._provider.service_name,
            "status": "ok" if database == "ok" else "degraded",
            "database": database,
            "outbox_pending": pending,
        }


class Database(DependencyProvider):
    """Engine and migrations per service; the outbox relay when `publishes` is true."""

    def __init__(self, publishes: bool = True):
        self.publishes = publishes
        self.engine: sa.Engine | None = None
        self._relay: outbox.Relay | None = None
        self._green_lock: Semaphore | None = None
        self._joined: dict[int, SharedTransaction] = {}

    @property
    def service_name(self) -> str:
        return self.container.service_name

    def setup(self) -> None:
        url = database_url(self.service_name)
        upgrade(self.service_name, url)
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if self.engine.dialect.name == "sqlite":
            # sqlite blocks the whole process while it waits for a lock; letting green
            # threads of one process queue here keeps one from blocking the holder.
            self._green_lock = Semaphore(1)

    def start(self) -> None:
        if self.publishes:
            self._relay = outbox.Relay(self.transaction, BusPublisher(amqp_uri()))
            self.container.spawn_managed_thread(self._relay.run, identifier="outbox_relay")

    def stop(self) -> None:
        if self._relay is not None:
            self._relay.stop()
        if self.engine is not None:
            self.engine.dispose()

    def kill(self) -> None:
        self.stop()

    def wake_relay(self) -> None:
        if self._relay is not None:
            self._relay.wake()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        lock = self._green_lock
        if lock is not None:
            lock.acquire()
        try:
            with self._sessions() as session, session.begin():
                yield session
        finally:
            if lock is not None:
                lock.release()

    @contextlib.contextmanager
    def shared_transaction(self) -> Iterator[SharedTransaction]:
        """A transaction for a batch of events (`apply_in` each one); commits on leaving."""
        with self.transaction() as session:
            shared = SharedTransaction(session)
            yield shared
        if shared.published:
            self.wake_relay()

    def apply_in(
        self, shared: SharedTransaction, event: object, handle: Callable[[], BaseException | None]
    ) -> BaseException | None:
        """Run `handle` (runs the worker of `event`; returns its error) in `shared`, the
        worker's units of work joining it. Returns the handler's error: the caller then rolls
        the whole transaction back."""
        self._joined[id(event)] = shared
        try:
            return handle()
        finally:
            del self._joined[id(event)]

    def get_dependency(self, worker_ctx) -> DatabaseAccess:
        # A worker of an event being applied in a batch's transaction (`apply_in`) finds it
        # by its event (the object itself: a message redelivered alongside is another one).
        shared = self._joined.get(id(worker_ctx.args[0])) if worker_ctx.args else None
        return DatabaseAccess(self, CallContext(worker_ctx.data), shared)
