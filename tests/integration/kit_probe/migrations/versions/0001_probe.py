"""kit tables and notes"""

import sqlalchemy as sa
from alembic import op

from concord_kit.tables import create_kit_tables, drop_kit_tables

revision = "0001"
down_revision = None


def upgrade():
    create_kit_tables(op)
    op.create_table(
        "notes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("coordination_id", sa.String(36), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
    )


def downgrade():
    op.drop_table("notes")
    drop_kit_tables(op)
