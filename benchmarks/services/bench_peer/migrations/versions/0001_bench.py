"""kit tables and the benchmark's projection"""

from alembic import op

from concord_kit.partners import create_partner_status_table
from concord_kit.tables import create_kit_tables, drop_kit_tables

revision = "0001"
down_revision = None


def upgrade():
    create_kit_tables(op)
    create_partner_status_table(op)


def downgrade():
    op.drop_table("partner_status")
    drop_kit_tables(op)
