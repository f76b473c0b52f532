"""kit tables, referrals, pipeline and agency statuses

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from concord_kit.tables import create_kit_tables, drop_kit_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_kit_tables(op)
    op.create_table(
        "referrals",
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
        sa.Column("sealed_details", sa.Text, nullable=False),
    )
    op.create_table(
        "pipeline",
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
    op.create_index("ix_pipeline_stage", "pipeline", ["stage"])
    op.create_table(
        "agency_statuses",
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
    op.create_index("ix_agency_statuses_agency", "agency_statuses", ["agency", "status"])


def downgrade() -> None:
    op.drop_index("ix_agency_statuses_agency", table_name="agency_statuses")
    op.drop_table("agency_statuses")
    op.drop_index("ix_pipeline_stage", table_name="pipeline")
    op.drop_table("pipeline")
    op.drop_table("referrals")
    drop_kit_tables(op)
