"""The referral hub's own tables (plus the kit's outbox, inbox and audit trail).

Codes sit in plain columns so they can be counted and queried; the personal parts of a
referral (the child, the reporter's contact, the summary) are one sealed column, encrypted
with a key that is not in the database. The duplicate check compares keyed digests
(`child_keys`), never names.

The pipeline is built to be filtered and paged at a million rows (PostgreSQL): the board's
orders are covered by composite indexes ending in the coordination id (keyset pages), by
stage and by channel; categories and agency statuses are facets in a table of their own
(`pipeline_facets`); flags are a bit mask with a partial index of the flagged rows; the last
change has an index for the cheap version poll; the counts per stage and the funnel are kept
as rows change (`pipeline_counts`, `pipeline_funnel_counts`); the ageing chart counts ranges
of `ix_pipeline_stage_since`.
"""

from __future__ import annotations

import sqlalchemy as sa

from concord_contracts.codes import AgencyStatus

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
    sa.Column("reporter_kind", sa.String(64), nullable=True),
    sa.Column("consent_status", sa.String(64), nullable=True),
    sa.Column("consent_by", sa.String(64), nullable=True),
    sa.Column("legal_basis", sa.String(64), nullable=True),
    sa.Column("routing_rule", sa.String(64), nullable=False),
    sa.Column("submitted_by", sa.String(64), nullable=False),
    # crypto.seal of {"child": ..., "reporter_contact": ..., "summary": ...}
    sa.Column("sealed_details", sa.Text, nullable=False),
    sa.Column("stated_urgency", sa.String(64), nullable=True),
    sa.Column("triage_rule", sa.String(64), nullable=True),
    sa.Column("risk_indicators", sa.JSON, nullable=False),
    sa.Column("annotations", sa.JSON, nullable=False),
    sa.Column("platform", sa.String(64), nullable=True),
    sa.Column("incident_type", sa.String(64), nullable=True),
    sa.Column("external_reference", sa.String(128), nullable=True),
    sa.Column("file_hashes", sa.JSON, nullable=False),
    sa.Column("requesting_country", sa.String(2), nullable=True),
    sa.Column("age_band", sa.String(32), nullable=False),
    sa.Column("idempotency_key", sa.String(128), nullable=True),
    # A keyed digest of the submission: the same key sent with another report is refused.
    sa.Column("submission_digest", sa.String(64), nullable=True),
    sa.Column("consent_decided_by", sa.String(64), nullable=True),
    sa.Column("consent_decided_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("linked_to", sa.String(36), nullable=True),
)
sa.Index("ux_referrals_idempotency_key", referrals.c.idempotency_key, unique=True)
sa.Index("ix_referrals_linked_to", referrals.c.linked_to)

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
    sa.Column("urgency_rank", sa.SmallInteger, nullable=False),
    sa.Column("flag_mask", sa.Integer, nullable=False),
    sa.Column("age_band", sa.String(32), nullable=False),
    sa.Column("stage_since", sa.DateTime(timezone=True), nullable=False),
    sa.Column("triaged_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("routed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("in_care_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("close_reason", sa.String(64), nullable=True),
    sa.Column("linked_to", sa.String(36), nullable=True),
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
)
_FLAGGED = sa.text("flag_mask <> 0")
sa.Index(
    "ix_pipeline_priority",
    pipeline.c.urgency_rank,
    pipeline.c.received_at,
    pipeline.c.coordination_id,
)
sa.Index(
    "ix_pipeline_stage_priority",
    pipeline.c.stage,
    pipeline.c.urgency_rank,
    pipeline.c.received_at,
    pipeline.c.coordination_id,
)
sa.Index("ix_pipeline_received", pipeline.c.received_at, pipeline.c.coordination_id)
sa.Index(
    "ix_pipeline_channel_priority",
    pipeline.c.channel,
    pipeline.c.urgency_rank,
    pipeline.c.received_at,
    pipeline.c.coordination_id,
)
sa.Index(
    "ix_pipeline_stage_received",
    pipeline.c.stage,
    pipeline.c.received_at,
    pipeline.c.coordination_id,
)
sa.Index(
    "ix_pipeline_flagged",
    pipeline.c.urgency_rank,
    pipeline.c.received_at,
    pipeline.c.coordination_id,
    postgresql_where=_FLAGGED,
    sqlite_where=_FLAGGED,
)
sa.Index("ix_pipeline_stage_since", pipeline.c.stage, pipeline.c.stage_since)
sa.Index("ix_pipeline_updated_at", pipeline.c.updated_at)

# One row per agency involved in a referral: its routing (when the hub sent it there) and
# its status in the pipeline, with the last sequence applied from that agency's service.
# Each row carries its referral's sort keys (never changed after intake), so the agency's
# intake queue is a walk of `ix_agency_statuses_queue` that stops at the page's end.
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
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("breached_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("decline_reason", sa.String(64), nullable=True),
    sa.Column("suggested_agency", sa.String(64), nullable=True),
    sa.Column("revoke_reason", sa.String(64), nullable=True),
    sa.Column("urgency_rank", sa.SmallInteger, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
)
# The intake queue's first key: the agency has answered (waiting ones sort first). The code
# is written into the SQL, not bound, so that SQLite sees the indexed expression itself.
ANSWERED = agency_statuses.c.status != sa.literal_column(
    f"'{AgencyStatus.pending_acceptance.value}'"
)
sa.Index(
    "ix_agency_statuses_queue",
    agency_statuses.c.agency,
    agency_statuses.c.routed,
    ANSWERED,
    agency_statuses.c.urgency_rank,
    agency_statuses.c.received_at.desc(),
    agency_statuses.c.coordination_id,
)
_CLOCK_RUNNING = sa.text("due_at IS NOT NULL AND breached_at IS NULL")
sa.Index(
    "ix_agency_statuses_agency_status",
    agency_statuses.c.agency,
    agency_statuses.c.status,
    agency_statuses.c.coordination_id,
)
sa.Index(
    "ix_agency_statuses_clock",
    agency_statuses.c.due_at,
    postgresql_where=_CLOCK_RUNNING,
    sqlite_where=_CLOCK_RUNNING,
)

# What a pipeline row may be filtered by that is not one column of it: each category
# (`category:<code>`), each agency involved (`agency:<agency>`) and its status
# (`agency:<agency>:<status>`, `status:<status>`). One text column, so the planner knows
# from its statistics how rare a value is. Each facet row carries its referral's sort keys
# (never changed after intake), so a page filtered by one facet walks that facet's rows in
# the board's order and stops at the page's end, however rare or common the facet.
pipeline_facets = sa.Table(
    "pipeline_facets",
    metadata,
    sa.Column("facet", sa.String(100), primary_key=True),
    sa.Column("coordination_id", sa.String(36), primary_key=True),
    sa.Column("urgency_rank", sa.SmallInteger, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("ix_pipeline_facets_referral", pipeline_facets.c.coordination_id)
sa.Index(
    "ix_pipeline_facets_priority",
    pipeline_facets.c.facet,
    pipeline_facets.c.urgency_rank,
    pipeline_facets.c.received_at,
    pipeline_facets.c.coordination_id,
)
sa.Index(
    "ix_pipeline_facets_received",
    pipeline_facets.c.facet,
    pipeline_facets.c.received_at,
    pipeline_facets.c.coordination_id,
)

# How many pipeline rows each stage holds, in all and per filter value (`count_keys`: `all`,
# `urgency:<u>`, `channel:<c>`, `flag:<f>` and the facets above), moved in the same
# transaction as the rows: the board's counts per stage without counting a million rows.
pipeline_counts = sa.Table(
    "pipeline_counts",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("stage", sa.String(64), primary_key=True),
    sa.Column("n", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
)

# The funnel, kept alike: per count key and stage, how many rows reached each stage past
# `received` (`domain.reached`: the stage's first time is set; received is
# `pipeline_counts`). Per stage too, so a stage filter reads it as it reads the counts.
pipeline_funnel_counts = sa.Table(
    "pipeline_funnel_counts",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("stage", sa.String(64), primary_key=True),
    sa.Column("reached", sa.String(64), primary_key=True),
    sa.Column("n", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
)

# The timeline: every hop of every referral (codes and times only).
pipeline_hops = sa.Table(
    "pipeline_hops",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("coordination_id", sa.String(36), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("agency", sa.String(64), nullable=True),
    sa.Column("status", sa.String(64), nullable=True),
    sa.Column("detail", sa.String(64), nullable=True),
)
sa.Index("ix_pipeline_hops_referral", pipeline_hops.c.coordination_id, pipeline_hops.c.id)

# Every routing decision: the rule (or the intake officer) that made it, who decided, and
# the consent or legal basis it travelled under.
routing_decisions = sa.Table(
    "routing_decisions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("coordination_id", sa.String(36), nullable=False),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("decided_by", sa.String(64), nullable=False),
    sa.Column("role", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("agencies", sa.JSON, nullable=False),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("consent_status", sa.String(64), nullable=True),
    sa.Column("legal_basis", sa.String(64), nullable=True),
    sa.Column("legal_basis_decided_by", sa.String(64), nullable=True),
)
sa.Index(
    "ix_routing_decisions_referral", routing_decisions.c.coordination_id, routing_decisions.c.id
)

# Blind index of the child's identity (keyed digests of normalised name and birth date or
# year; the key is not in the database): what the duplicate check compares.
child_keys = sa.Table(
    "child_keys",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("coordination_id", sa.String(36), primary_key=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("channel", sa.String(64), nullable=False),
)
sa.Index("ix_child_keys_referral", child_keys.c.coordination_id)

# Pairs of referrals that may be about the same child: open until the intake officer links
# or dismisses them. `first` sorts before `second`, so a pair is stored once.
possible_duplicates = sa.Table(
    "possible_duplicates",
    metadata,
    sa.Column("first", sa.String(36), primary_key=True),
    sa.Column("second", sa.String(36), primary_key=True),
    sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("decided_by", sa.String(64), nullable=True),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
)
sa.Index("ix_possible_duplicates_second", possible_duplicates.c.second)
