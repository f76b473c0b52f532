"""kit tables, requests abroad and partner statuses

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
        "requests",
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
        sa.Column("clock", sa.String(64), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deadline_source", sa.String(100), nullable=True),
        sa.Column("silence_warning_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_requests_coordination_id", "requests", ["coordination_id"])
    op.create_index("ix_requests_due_at", "requests", ["status", "due_at"])
    create_partner_status_table(op)


def downgrade() -> None:
    op.drop_table(TABLE_NAME)
    op.drop_index("ix_requests_due_at", table_name="requests")
    op.drop_index("ix_requests_coordination_id", table_name="requests")
    op.drop_table("requests")
    drop_kit_tables(op)
