"""case work: sections, assessments, plans, services, follow-ups, closures, notes,
assignments, reopenings, requests abroad

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_CASE_ID = "cases.case_id"


def _id_column() -> sa.Column:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(
            sa.Column("origin", sa.String(16), nullable=False, server_default="referral")
        )
        batch.add_column(sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("version", sa.Integer, nullable=False, server_default="1"))
        batch.add_column(sa.Column("risk_level", sa.String(16), nullable=True))
        batch.add_column(sa.Column("next_due_on", sa.Date, nullable=True))
        batch.add_column(sa.Column("next_due_kind", sa.String(16), nullable=True))
        batch.add_column(sa.Column("pending_approval", sa.String(16), nullable=True))
        batch.add_column(sa.Column("pending_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("assessments_count", sa.Integer, nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("notes_count", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("sealed_contact", sa.Text, nullable=True))
        batch.add_column(sa.Column("sealed_family", sa.Text, nullable=True))
        batch.add_column(sa.Column("sealed_people", sa.Text, nullable=True))
        batch.add_column(sa.Column("sealed_safety", sa.Text, nullable=True))
    # Cases opened before this revision were assigned when they were opened.
    op.execute("UPDATE cases SET assigned_at = opened_at WHERE assigned_at IS NULL")
    op.create_index("ix_cases_due", "cases", ["next_due_on", "opened_at", "case_id"])
    op.create_index("ix_cases_pending", "cases", ["pending_approval", "pending_since"])

    op.create_table(
        "case_assessments",
        sa.Column("assessment_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), sa.ForeignKey(_CASE_ID), nullable=False),
        sa.Column("assessed_on", sa.Date, nullable=False),
        sa.Column("risk_level", sa.String(16), nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("sealed_content", sa.Text, nullable=False),
    )
    op.create_index("ix_case_assessments_case", "case_assessments", ["case_id", "recorded_at"])
    op.create_table(
        "case_plans",
        sa.Column("case_id", sa.String(36), sa.ForeignKey(_CASE_ID), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("written_by", sa.String(64), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_by", sa.String(64), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_version", sa.Integer, nullable=True),
        sa.Column("sealed_content", sa.Text, nullable=False),
    )
    op.create_table(
        "case_services",
        sa.Column("service_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), sa.ForeignKey(_CASE_ID), nullable=False),
        sa.Column("goal_id", sa.String(36), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("due_on", sa.Date, nullable=False),
        sa.Column("delivered_on", sa.Date, nullable=True),
        sa.Column("approved", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.Column("sealed_content", sa.Text, nullable=False),
    )
    op.create_index("ix_case_services_case", "case_services", ["case_id", "status"])
    op.create_table(
        "case_follow_ups",
        sa.Column("follow_up_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), sa.ForeignKey(_CASE_ID), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("due_on", sa.Date, nullable=False),
        sa.Column("scheduled_by", sa.String(64), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_on", sa.Date, nullable=True),
        sa.Column("recorded_by", sa.String(64), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sealed_content", sa.Text, nullable=False),
    )
    op.create_index("ix_case_follow_ups_case", "case_follow_ups", ["case_id", "status"])
    op.create_table(
        "case_closures",
        sa.Column("closure_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), sa.ForeignKey(_CASE_ID), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("warnings", sa.String(256), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision", sa.String(16), nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sealed_content", sa.Text, nullable=False),
    )
    op.create_index("ix_case_closures_case", "case_closures", ["case_id", "requested_at"])
    op.create_table(
        "case_reopenings",
        _id_column(),
        sa.Column("case_id", sa.String(36), sa.ForeignKey(_CASE_ID), nullable=False),
        sa.Column("reopened_by", sa.String(64), nullable=False),
        sa.Column("reopened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sealed_reason", sa.Text, nullable=False),
    )
    op.create_index("ix_case_reopenings_case", "case_reopenings", ["case_id"])
    op.create_table(
        "case_assignments",
        _id_column(),
        sa.Column("case_id", sa.String(36), sa.ForeignKey(_CASE_ID), nullable=False),
        sa.Column("assigned_to", sa.String(64), nullable=False),
        sa.Column("assigned_by", sa.String(64), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by_supervisor", sa.Boolean, nullable=False),
        sa.Column("sealed_reason", sa.Text, nullable=True),
    )
    op.create_index("ix_case_assignments_case", "case_assignments", ["case_id"])
    # Cases opened before this revision: their first assignment, to who opened them.
    op.execute(
        "INSERT INTO case_assignments (case_id, assigned_to, assigned_by, assigned_at, "
        "by_supervisor) SELECT case_id, assigned_to, opened_by, opened_at, false FROM cases"
    )
    op.create_table(
        "case_notes",
        sa.Column("note_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), sa.ForeignKey(_CASE_ID), nullable=False),
        sa.Column("written_by", sa.String(64), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sealed_text", sa.Text, nullable=False),
    )
    op.create_index("ix_case_notes_case", "case_notes", ["case_id", "written_at", "note_id"])
    op.create_table(
        "requests_abroad",
        sa.Column("request_id", sa.String(36), primary_key=True),
        sa.Column("coordination_id", sa.String(36), nullable=False),
        sa.Column("instrument", sa.String(64), nullable=True),
        sa.Column("executing_country", sa.String(2), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_sequence", sa.Integer, nullable=False),
    )
    op.create_index("ix_requests_abroad_coordination", "requests_abroad", ["coordination_id"])


def downgrade() -> None:
    for index, table in (
        ("ix_requests_abroad_coordination", "requests_abroad"),
        ("ix_case_notes_case", "case_notes"),
        ("ix_case_assignments_case", "case_assignments"),
        ("ix_case_reopenings_case", "case_reopenings"),
        ("ix_case_closures_case", "case_closures"),
        ("ix_case_follow_ups_case", "case_follow_ups"),
        ("ix_case_services_case", "case_services"),
        ("ix_case_assessments_case", "case_assessments"),
    ):
        op.drop_index(index, table_name=table)
    for table in (
        "requests_abroad",
        "case_notes",
        "case_assignments",
        "case_reopenings",
        "case_closures",
        "case_follow_ups",
        "case_services",
        "case_plans",
        "case_assessments",
    ):
        op.drop_table(table)
    op.drop_index("ix_cases_pending", table_name="cases")
    op.drop_index("ix_cases_due", table_name="cases")
    with op.batch_alter_table("cases") as batch:
        for column in (
            "sealed_safety",
            "sealed_people",
            "sealed_family",
            "sealed_contact",
            "notes_count",
            "assessments_count",
            "pending_since",
            "pending_approval",
            "next_due_kind",
            "next_due_on",
            "risk_level",
            "version",
            "assigned_at",
            "origin",
        ):
            batch.drop_column(column)
