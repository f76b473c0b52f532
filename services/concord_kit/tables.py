"""The kit's own tables, created in every service's database by its first migration."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# Events waiting to be published, in the order they were committed (id).
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("event_id", sa.String(36), nullable=False, unique=True),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("coordination_id", sa.String(36), nullable=False),
    sa.Column("sequence", sa.Integer, nullable=False),
    sa.Column("priority", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
)
sa.Index("ix_outbox_pending", outbox.c.sent_at, outbox.c.id)

# The last sequence number given per coordination id: the envelope's `sequence`.
outbox_sequence = sa.Table(
    "outbox_sequence",
    metadata,
    sa.Column("coordination_id", sa.String(36), primary_key=True),
    sa.Column("last_sequence", sa.Integer, nullable=False),
)

# Every event this service applied, recorded in the same transaction as its effect.
inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("event_id", sa.String(36), primary_key=True),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
)

# Append-only, hash-chained record of every read and change of personal data.
audit_trail = sa.Table(
    "audit_trail",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("role", sa.String(64), nullable=False),
    sa.Column("agency", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("correlation_id", sa.String(64), nullable=False),
    sa.Column("previous_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)


URGENT_OUTBOX_INDEX = "ix_outbox_urgent_pending"


def create_urgent_outbox_index(op) -> None:
    """A partial index of the urgent rows still to publish, for a service whose outbox can
    hold a large backlog (a bulk import): the relay finds its urgent rows without reading
    the backlog. Call from one of the service's own Alembic revisions."""
    where = sa.text("sent_at IS NULL AND priority >= 9")
    op.create_index(
        URGENT_OUTBOX_INDEX, "outbox", ["id"], postgresql_where=where, sqlite_where=where
    )


def drop_urgent_outbox_index(op) -> None:
    op.drop_index(URGENT_OUTBOX_INDEX, table_name="outbox")


def create_kit_tables(op) -> None:
    """Call from a service's first Alembic revision."""
    metadata.create_all(bind=op.get_bind())


def drop_kit_tables(op) -> None:
    metadata.drop_all(bind=op.get_bind())
