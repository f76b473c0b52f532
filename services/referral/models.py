"""The referral hub's own tables (plus the kit's outbox, inbox and audit trail).

Codes sit in plain columns so they can be counted and queried; the personal parts of a
referral (the child, the reporter's contact, the summary) are one sealed column, encrypted
with a key that is not in the database.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# One row per referral, as reported.
referrals = sa.Table(
    "referrals",
    metadata,
    sa.Column("coordination_id", sa.String(36), primary_key=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("categories", sa.JSON, nullable=False),
    sa.Column("urgency", sa.String(64), nullable=False),
    sa.Column("reporter_kind", sa.String(64), nullable=False),
    sa.Column("consent_status", sa.String(64), nullable=False),
    sa.Column("consent_by", sa.String(64), nullable=False),
    sa.Column("legal_basis", sa.String(64), nullable=True),
    sa.Column("routing_rule", sa.String(64), nullable=False),
    sa.Column("submitted_by", sa.String(64), nullable=False),
    # crypto.seal of {"child": ..., "reporter_contact": ..., "summary": ...}
    sa.Column("sealed_details", sa.Text, nullable=False),
)

# The coordinated status of each referral: what coordinators watch. Never an identity.
pipeline = sa.Table(
    "pipeline",
    metadata,
    sa.Column(
        "coordination_id",
        sa.String(36),
        sa.ForeignKey("referrals.coordination_id"),
        primary_key=True,
    ),
    sa.Column("stage", sa.String(64), nullable=False),
    sa.Column("urgency", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("categories", sa.JSON, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("flags", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("ix_pipeline_stage", pipeline.c.stage)

# One row per agency involved in a referral: its routing (when the hub sent it there) and
# its status in the pipeline, with the last sequence applied from that agency's service.
agency_statuses = sa.Table(
    "agency_statuses",
    metadata,
    sa.Column(
        "coordination_id",
        sa.String(36),
        sa.ForeignKey("pipeline.coordination_id"),
        primary_key=True,
    ),
    sa.Column("agency", sa.String(64), primary_key=True),
    sa.Column("routed", sa.Boolean, nullable=False),
    sa.Column("rule", sa.String(64), nullable=True),
    sa.Column("status", sa.String(64), nullable=False),
    sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    sa.Column("detail", sa.String(64), nullable=True),
    sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_sequence", sa.Integer, nullable=False),
)
sa.Index("ix_agency_statuses_agency", agency_statuses.c.agency, agency_statuses.c.status)
