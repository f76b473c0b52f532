"""Justice's own tables (plus the kit's outbox, inbox and audit trail).

The referral's details pulled from the hub are one sealed column, encrypted with a key that
is not in the database; codes and times sit in plain columns.
"""

from __future__ import annotations

import sqlalchemy as sa

from concord_kit.partners import partner_status_table

metadata = sa.MetaData()

# One investigation record per referral taken on: accepting twice opens nothing twice.
investigations = sa.Table(
    "investigations",
    metadata,
    sa.Column("investigation_id", sa.String(36), primary_key=True),
    sa.Column("coordination_id", sa.String(36), nullable=False),
    sa.Column("status", sa.String(64), nullable=False),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("opened_by", sa.String(64), nullable=False),
    # crypto.seal of the pulled details (ReferralDetailsSchema JSON)
    sa.Column("sealed_details", sa.Text, nullable=False),
    sa.UniqueConstraint("coordination_id", name="uq_investigations_coordination_id"),
)

# Where the partners stand on each referral, from their status events (concord_kit.partners).
partner_status = partner_status_table(metadata)
