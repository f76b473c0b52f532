"""the pipeline's counts per stage, kept as rows change (`pipeline_counts`), counted once
here from the rows already held; each facet row carries its referral's sort keys, indexed
in the board's orders. On a million referrals (four million facet rows, PostgreSQL, this
machine) the facets' backfill and indexes took about four minutes, the counts seconds.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# A frozen copy of the flags as of this revision (the order gives each flag its bit).
FLAGS = (
    "awaiting_acceptance_overdue",
    "declined_by_all",
    "request_abroad_overdue",
    "possible_duplicate",
    "awaiting_routing",
)


def upgrade() -> None:
    with op.batch_alter_table("pipeline_facets") as batch:
        batch.add_column(sa.Column("urgency_rank", sa.SmallInteger, nullable=True))
        batch.add_column(sa.Column("received_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE pipeline_facets SET "
        "urgency_rank = (SELECT p.urgency_rank FROM pipeline p "
        "WHERE p.coordination_id = pipeline_facets.coordination_id), "
        "received_at = (SELECT p.received_at FROM pipeline p "
        "WHERE p.coordination_id = pipeline_facets.coordination_id)"
    )
    with op.batch_alter_table("pipeline_facets") as batch:
        batch.alter_column("urgency_rank", existing_type=sa.SmallInteger, nullable=False)
        batch.alter_column("received_at", existing_type=sa.DateTime(timezone=True), nullable=False)
    op.create_index(
        "ix_pipeline_facets_priority",
        "pipeline_facets",
        ["facet", "urgency_rank", "received_at", "coordination_id"],
    )
    op.create_index(
        "ix_pipeline_facets_received",
        "pipeline_facets",
        ["facet", "received_at", "coordination_id"],
    )

    op.create_table(
        "pipeline_counts",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("stage", sa.String(64), primary_key=True),
        sa.Column("n", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
    )
    into = "INSERT INTO pipeline_counts (key, stage, n) "
    op.execute(into + "SELECT 'all', stage, count(*) FROM pipeline GROUP BY stage")
    for column in ("urgency", "channel"):
        op.execute(
            into + f"SELECT '{column}:' || {column}, stage, count(*) FROM pipeline "
            f"GROUP BY {column}, stage"
        )
    for bit, flag in enumerate(FLAGS):
        op.execute(
            into + f"SELECT 'flag:{flag}', stage, count(*) FROM pipeline "
            f"WHERE (flag_mask & {1 << bit}) <> 0 GROUP BY stage"
        )
    op.execute(
        into + "SELECT f.facet, p.stage, count(*) FROM pipeline_facets f "
        "JOIN pipeline p ON p.coordination_id = f.coordination_id GROUP BY f.facet, p.stage"
    )


def downgrade() -> None:
    op.drop_table("pipeline_counts")
    op.drop_index("ix_pipeline_facets_received", table_name="pipeline_facets")
    op.drop_index("ix_pipeline_facets_priority", table_name="pipeline_facets")
    with op.batch_alter_table("pipeline_facets") as batch:
        batch.drop_column("received_at")
        batch.drop_column("urgency_rank")
