"""the hub's withdrawal of a case's referral (revoked, or declined at the hub)

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("withdrawal_kind", sa.String(16), nullable=True))
        batch.add_column(sa.Column("withdrawal_reason", sa.String(64), nullable=True))
        batch.add_column(
            sa.Column("withdrawal_decided_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("withdrawal_closed_case", sa.Boolean, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        for column in (
            "withdrawal_closed_case",
            "withdrawal_decided_at",
            "withdrawal_reason",
            "withdrawal_kind",
        ):
            batch.drop_column(column)
