"""Social services' own tables (plus the kit's outbox, inbox and audit trail).

The child's record is one sealed column, encrypted with a key that is not in the database;
codes and times sit in plain columns.
"""

from __future__ import annotations

import sqlalchemy as sa

from concord_kit.partners import partner_status_table

metadata = sa.MetaData()

# One case per referral taken on: accepting twice opens nothing twice (the UNIQUE below).
cases = sa.Table(
    "cases",
    metadata,
    sa.Column("case_id", sa.String(36), primary_key=True),
    sa.Column("coordination_id", sa.String(36), nullable=False),
    # Derived from the milestones (domain.Case.status), kept here to be counted and queried.
    sa.Column("status", sa.String(64), nullable=False),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("opened_by", sa.String(64), nullable=False),
    sa.Column("assigned_to", sa.String(64), nullable=False),
    sa.Column("assessed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("plan_approved_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("services_started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("closure_requested_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
    # crypto.seal of the child's record (ChildSchema JSON)
    sa.Column("sealed_child", sa.Text, nullable=False),
    sa.UniqueConstraint("coordination_id", name="uq_cases_coordination_id"),
)
sa.Index("ix_cases_assigned_to", cases.c.assigned_to, cases.c.status)

# Where the partners stand on each referral, from their status events (concord_kit.partners).
partner_status = partner_status_table(metadata)
