"""kit tables, cases and partner statuses

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from concord_kit.partners import TABLE_NAME, create_partner_status_table
from concord_kit.tables import create_kit_tables, drop_kit_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_kit_tables(op)
    op.create_table(
        "cases",
        sa.Column("case_id", sa.String(36), primary_key=True),
        sa.Column("coordination_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(64), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_by", sa.String(64), nullable=False),
        sa.Column("assigned_to", sa.String(64), nullable=False),
        sa.Column("assessed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("plan_approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("services_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closure_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sealed_child", sa.Text, nullable=False),
        sa.UniqueConstraint("coordination_id", name="uq_cases_coordination_id"),
    )
    op.create_index("ix_cases_assigned_to", "cases", ["assigned_to", "status"])
    create_partner_status_table(op)


def downgrade() -> None:
    op.drop_table(TABLE_NAME)
    op.drop_index("ix_cases_assigned_to", table_name="cases")
    op.drop_table("cases")
    drop_kit_tables(op)
