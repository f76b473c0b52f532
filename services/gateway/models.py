"""The gateway's own tables: people who sign in, and tokens revoked before they expire."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    # Stored lower-cased, so "Social" and "social" are one account.
    sa.Column("username", sa.String(150), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    # Values of concord_contracts.codes.Role and Organisation (checked in Python, so that a
    # new role needs no migration).
    sa.Column("role", sa.String(64), nullable=False),
    sa.Column("agency", sa.String(64), nullable=False),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("username", name="uq_users_username"),
)

# A token is valid until it expires; sign-out lists its jti here until then.
revoked_tokens = sa.Table(
    "revoked_tokens",
    metadata,
    sa.Column("jti", sa.String(64), primary_key=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
)
