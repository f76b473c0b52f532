"""kit tables, investigations and partner statuses

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
        "investigations",
        sa.Column("investigation_id", sa.String(36), primary_key=True),
        sa.Column("coordination_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(64), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_by", sa.String(64), nullable=False),
        sa.Column("sealed_details", sa.Text, nullable=False),
        sa.UniqueConstraint("coordination_id", name="uq_investigations_coordination_id"),
    )
    create_partner_status_table(op)


def downgrade() -> None:
    op.drop_table(TABLE_NAME)
    op.drop_table("investigations")
    drop_kit_tables(op)
