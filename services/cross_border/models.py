"""The central authority's own tables (plus the kit's outbox, inbox and audit trail).

A request abroad holds codes, a country and times in this version: the persons and
identifiers it concerns come later, minimal, pseudonymised and sealed.
"""

from __future__ import annotations

import sqlalchemy as sa

from concord_kit.partners import partner_status_table

metadata = sa.MetaData()

# Requests to other jurisdictions; a referral may have several.
requests = sa.Table(
    "requests",
    metadata,
    sa.Column("request_id", sa.String(36), primary_key=True),
    sa.Column("coordination_id", sa.String(36), nullable=False),
    sa.Column("instrument", sa.String(64), nullable=False),
    sa.Column("executing_country", sa.String(2), nullable=False),
    sa.Column("emergency", sa.Boolean, nullable=False),
    sa.Column("measures", sa.JSON, nullable=False),
    sa.Column("status", sa.String(64), nullable=False),
    sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("filed_by", sa.String(64), nullable=False),
    sa.Column("filed_by_agency", sa.String(64), nullable=False),
    # The legal deadline (domain.deadline): what is due, when, under which article.
    sa.Column("clock", sa.String(64), nullable=True),
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("deadline_source", sa.String(100), nullable=True),
    sa.Column("silence_warning_at", sa.DateTime(timezone=True), nullable=True),
)
sa.Index("ix_requests_coordination_id", requests.c.coordination_id)
sa.Index("ix_requests_due_at", requests.c.status, requests.c.due_at)

# Where the partners stand on each referral, from their status events (concord_kit.partners).
partner_status = partner_status_table(metadata)
