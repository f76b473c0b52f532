"""the referral hub: channel fields, triage, consent record, SLA clocks, timeline, routing
decisions, duplicate check, and the pipeline's filter and keyset indexes

Revision ID: 0002
Revises: 0001
"""

import json

import sqlalchemy as sa
from alembic import op

from concord_kit.tables import create_urgent_outbox_index, drop_urgent_outbox_index

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# A frozen copy of the flags as of this revision (a migration must not change meaning when
# the enumeration grows): the order gives each flag its bit.
FLAGS = (
    "awaiting_acceptance_overdue",
    "declined_by_all",
    "request_abroad_overdue",
    "possible_duplicate",
    "awaiting_routing",
)
URGENCY_RANK = {"immediate_danger": 0, "high": 1, "normal": 2}
EMPTY_LIST = sa.text("'[]'")
FLAGGED = sa.text("flag_mask <> 0")
CLOCK_RUNNING = sa.text("due_at IS NOT NULL AND breached_at IS NULL")


def _mask(codes, order) -> int:
    return sum(1 << order.index(code) for code in codes if code in order)


def upgrade() -> None:
    with op.batch_alter_table("referrals") as batch:
        batch.alter_column("reporter_kind", existing_type=sa.String(64), nullable=True)
        batch.alter_column("consent_status", existing_type=sa.String(64), nullable=True)
        batch.alter_column("consent_by", existing_type=sa.String(64), nullable=True)
        batch.add_column(sa.Column("stated_urgency", sa.String(64), nullable=True))
        batch.add_column(sa.Column("triage_rule", sa.String(64), nullable=True))
        batch.add_column(
            sa.Column("risk_indicators", sa.JSON, nullable=False, server_default=EMPTY_LIST)
        )
        batch.add_column(
            sa.Column("annotations", sa.JSON, nullable=False, server_default=EMPTY_LIST)
        )
        batch.add_column(sa.Column("platform", sa.String(64), nullable=True))
        batch.add_column(sa.Column("incident_type", sa.String(64), nullable=True))
        batch.add_column(sa.Column("external_reference", sa.String(128), nullable=True))
        batch.add_column(
            sa.Column("file_hashes", sa.JSON, nullable=False, server_default=EMPTY_LIST)
        )
        batch.add_column(sa.Column("requesting_country", sa.String(2), nullable=True))
        batch.add_column(
            sa.Column("age_band", sa.String(32), nullable=False, server_default="unknown")
        )
        batch.add_column(sa.Column("idempotency_key", sa.String(128), nullable=True))
        batch.add_column(sa.Column("submission_digest", sa.String(64), nullable=True))
        batch.add_column(sa.Column("consent_decided_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("consent_decided_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("linked_to", sa.String(36), nullable=True))
    op.create_index("ux_referrals_idempotency_key", "referrals", ["idempotency_key"], unique=True)
    op.create_index("ix_referrals_linked_to", "referrals", ["linked_to"])
    # What was stated is what the first issue stored: it had no triage.
    op.execute("UPDATE referrals SET stated_urgency = urgency, consent_decided_by = submitted_by")
    op.execute("UPDATE referrals SET consent_decided_at = received_at")

    with op.batch_alter_table("pipeline") as batch:
        batch.add_column(
            sa.Column("urgency_rank", sa.SmallInteger, nullable=False, server_default="2")
        )
        batch.add_column(sa.Column("flag_mask", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("age_band", sa.String(32), nullable=False, server_default="unknown")
        )
        batch.add_column(sa.Column("stage_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("triaged_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("routed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("in_care_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("close_reason", sa.String(64), nullable=True))
        batch.add_column(sa.Column("linked_to", sa.String(36), nullable=True))
        batch.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))

    # Rows of the first issue: ranks and masks from their codes; stage times from what is
    # known (received and routed in one step then; the last change for the current stage).
    connection = op.get_bind()
    facets: list[dict] = []
    rows = connection.execute(
        sa.text("SELECT coordination_id, urgency, categories, flags, stage FROM pipeline")
    ).mappings()
    for row in list(rows):
        categories = row["categories"]
        flags = row["flags"]
        if isinstance(categories, str):
            categories = json.loads(categories)
        if isinstance(flags, str):
            flags = json.loads(flags)
        connection.execute(
            sa.text(
                "UPDATE pipeline SET urgency_rank = :rank, flag_mask = :flags "
                "WHERE coordination_id = :cid"
            ),
            {
                "rank": URGENCY_RANK.get(row["urgency"], 2),
                "flags": _mask(flags, FLAGS),
                "cid": row["coordination_id"],
            },
        )
        for category in sorted(set(categories)):
            facets.append({"facet": f"category:{category}", "cid": row["coordination_id"]})
    op.execute(
        "UPDATE pipeline SET stage_since = updated_at, triaged_at = received_at, "
        "routed_at = received_at"
    )
    op.execute("UPDATE pipeline SET in_care_at = updated_at WHERE stage = 'in_care'")
    op.execute("UPDATE pipeline SET closed_at = updated_at WHERE stage = 'closed'")
    with op.batch_alter_table("pipeline") as batch:
        batch.alter_column("stage_since", existing_type=sa.DateTime(timezone=True), nullable=False)

    op.drop_index("ix_pipeline_stage", table_name="pipeline")
    op.create_index(
        "ix_pipeline_priority", "pipeline", ["urgency_rank", "received_at", "coordination_id"]
    )
    op.create_index(
        "ix_pipeline_stage_priority",
        "pipeline",
        ["stage", "urgency_rank", "received_at", "coordination_id"],
    )
    op.create_index("ix_pipeline_received", "pipeline", ["received_at", "coordination_id"])
    op.create_index(
        "ix_pipeline_stage_received", "pipeline", ["stage", "received_at", "coordination_id"]
    )
    op.create_index(
        "ix_pipeline_flagged",
        "pipeline",
        ["urgency_rank", "received_at", "coordination_id"],
        postgresql_where=FLAGGED,
        sqlite_where=FLAGGED,
    )
    op.create_index(
        "ix_pipeline_channel_priority",
        "pipeline",
        ["channel", "urgency_rank", "received_at", "coordination_id"],
    )
    op.create_index("ix_pipeline_stage_since", "pipeline", ["stage", "stage_since"])

    op.create_table(
        "pipeline_facets",
        sa.Column("facet", sa.String(100), primary_key=True),
        sa.Column("coordination_id", sa.String(36), primary_key=True),
    )
    op.create_index("ix_pipeline_facets_referral", "pipeline_facets", ["coordination_id"])
    insert = sa.text("INSERT INTO pipeline_facets (facet, coordination_id) VALUES (:facet, :cid)")
    if facets:
        connection.execute(insert, facets)
    for agency, status, cid in list(
        connection.execute(sa.text("SELECT agency, status, coordination_id FROM agency_statuses"))
    ):
        for facet in (f"agency:{agency}", f"agency:{agency}:{status}", f"status:{status}"):
            connection.execute(insert, {"facet": facet, "cid": cid})
    op.create_index("ix_pipeline_updated_at", "pipeline", ["updated_at"])

    with op.batch_alter_table("agency_statuses") as batch:
        batch.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("breached_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("decline_reason", sa.String(64), nullable=True))
        batch.add_column(sa.Column("suggested_agency", sa.String(64), nullable=True))
        batch.add_column(sa.Column("revoke_reason", sa.String(64), nullable=True))
    op.drop_index("ix_agency_statuses_agency", table_name="agency_statuses")
    op.create_index(
        "ix_agency_statuses_agency_status",
        "agency_statuses",
        ["agency", "status", "coordination_id"],
    )
    op.create_index(
        "ix_agency_statuses_clock",
        "agency_statuses",
        ["due_at"],
        postgresql_where=CLOCK_RUNNING,
        sqlite_where=CLOCK_RUNNING,
    )

    op.create_table(
        "pipeline_hops",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("coordination_id", sa.String(36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("agency", sa.String(64), nullable=True),
        sa.Column("status", sa.String(64), nullable=True),
        sa.Column("detail", sa.String(64), nullable=True),
    )
    op.create_index("ix_pipeline_hops_referral", "pipeline_hops", ["coordination_id", "id"])
    # The first issue's referrals: their reception and routing, as far as it is known.
    op.execute(
        "INSERT INTO pipeline_hops (coordination_id, at, kind, status) "
        "SELECT coordination_id, received_at, 'received', 'received' FROM pipeline"
    )
    op.execute(
        "INSERT INTO pipeline_hops (coordination_id, at, kind, agency, status, detail) "
        "SELECT a.coordination_id, p.received_at, 'routed', a.agency, 'pending_acceptance', "
        "a.rule FROM agency_statuses a JOIN pipeline p "
        "ON p.coordination_id = a.coordination_id WHERE a.routed"
    )

    op.create_table(
        "routing_decisions",
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
    op.create_index("ix_routing_decisions_referral", "routing_decisions", ["coordination_id", "id"])

    op.create_table(
        "child_keys",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("coordination_id", sa.String(36), primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
    )
    op.create_index("ix_child_keys_referral", "child_keys", ["coordination_id"])

    op.create_table(
        "possible_duplicates",
        sa.Column("first", sa.String(36), primary_key=True),
        sa.Column("second", sa.String(36), primary_key=True),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_possible_duplicates_second", "possible_duplicates", ["second"])

    # The relay finds urgent events without reading a bulk import's backlog.
    create_urgent_outbox_index(op)


def downgrade() -> None:
    # Rows without consent or reporter (a child's own report) do not fit the first schema,
    # and nothing may be invented for them: refuse rather than lose or falsify a record.
    missing = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT count(*) FROM referrals WHERE consent_status IS NULL "
                "OR consent_by IS NULL OR reporter_kind IS NULL"
            )
        )
        .scalar()
    )
    if missing:
        raise RuntimeError(f"cannot downgrade: {missing} referrals have no consent or reporter")
    drop_urgent_outbox_index(op)
    op.drop_index("ix_possible_duplicates_second", table_name="possible_duplicates")
    op.drop_table("possible_duplicates")
    op.drop_index("ix_child_keys_referral", table_name="child_keys")
    op.drop_table("child_keys")
    op.drop_index("ix_routing_decisions_referral", table_name="routing_decisions")
    op.drop_table("routing_decisions")
    op.drop_index("ix_pipeline_hops_referral", table_name="pipeline_hops")
    op.drop_table("pipeline_hops")
    op.drop_index("ix_agency_statuses_clock", table_name="agency_statuses")
    op.drop_index("ix_agency_statuses_agency_status", table_name="agency_statuses")
    op.create_index("ix_agency_statuses_agency", "agency_statuses", ["agency", "status"])
    with op.batch_alter_table("agency_statuses") as batch:
        for column in ("revoke_reason", "suggested_agency", "decline_reason", "breached_at"):
            batch.drop_column(column)
        batch.drop_column("due_at")
    op.drop_index("ix_pipeline_facets_referral", table_name="pipeline_facets")
    op.drop_table("pipeline_facets")
    for index in (
        "ix_pipeline_channel_priority",
        "ix_pipeline_updated_at",
        "ix_pipeline_stage_since",
        "ix_pipeline_flagged",
        "ix_pipeline_stage_received",
        "ix_pipeline_received",
        "ix_pipeline_stage_priority",
        "ix_pipeline_priority",
    ):
        op.drop_index(index, table_name="pipeline")
    op.create_index("ix_pipeline_stage", "pipeline", ["stage"])
    with op.batch_alter_table("pipeline") as batch:
        for column in (
            "due_at",
            "linked_to",
            "close_reason",
            "closed_at",
            "in_care_at",
            "routed_at",
            "triaged_at",
            "stage_since",
            "age_band",
            "flag_mask",
            "urgency_rank",
        ):
            batch.drop_column(column)
    op.drop_index("ix_referrals_linked_to", table_name="referrals")
    op.drop_index("ux_referrals_idempotency_key", table_name="referrals")
    with op.batch_alter_table("referrals") as batch:
        for column in (
            "linked_to",
            "consent_decided_at",
            "consent_decided_by",
            "submission_digest",
            "idempotency_key",
            "age_band",
            "requesting_country",
            "file_hashes",
            "external_reference",
            "incident_type",
            "platform",
            "annotations",
            "risk_indicators",
            "triage_rule",
            "stated_urgency",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("referrals") as batch:
        batch.alter_column("consent_by", existing_type=sa.String(64), nullable=False)
        batch.alter_column("consent_status", existing_type=sa.String(64), nullable=False)
        batch.alter_column("reporter_kind", existing_type=sa.String(64), nullable=False)
