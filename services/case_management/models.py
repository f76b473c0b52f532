"""Social services' own tables (plus the kit's outbox, inbox and audit trail).

The child's record and every free text (assessments, plans, notes, reasons) sit in sealed
columns, encrypted with a key that is not in the database; codes, identifiers, dates and
times sit in plain columns, to be queried and counted.
"""

from __future__ import annotations

import sqlalchemy as sa

from concord_kit.partners import partner_status_table

metadata = sa.MetaData()

_CASE_ID = "cases.case_id"

# One case per coordination id: accepting twice opens nothing twice (the UNIQUE below).
cases = sa.Table(
    "cases",
    metadata,
    sa.Column("case_id", sa.String(36), primary_key=True),
    sa.Column("coordination_id", sa.String(36), nullable=False),
    # Derived from the milestones (domain.Case.status), kept here to be counted and queried.
    sa.Column("status", sa.String(64), nullable=False),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("opened_by", sa.String(64), nullable=False),
    sa.Column("assigned_to", sa.String(64), nullable=False),
    sa.Column("assessed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("plan_approved_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("services_started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("closure_requested_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
    # crypto.seal of the child's record (CaseChildRecordSchema JSON)
    sa.Column("sealed_child", sa.Text, nullable=False),
    # --- revision 0002 ---
    sa.Column("origin", sa.String(16), nullable=False, server_default="referral"),
    sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
    # +1 on every change: optimistic concurrency (If-Match)
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("risk_level", sa.String(16), nullable=True),
    # What is due next (services not finished, follow-ups scheduled): "due and overdue first"
    sa.Column("next_due_on", sa.Date, nullable=True),
    sa.Column("next_due_kind", sa.String(16), nullable=True),
    sa.Column("pending_approval", sa.String(16), nullable=True),
    sa.Column("pending_since", sa.DateTime(timezone=True), nullable=True),
    sa.Column("assessments_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("notes_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("sealed_contact", sa.Text, nullable=True),
    sa.Column("sealed_family", sa.Text, nullable=True),
    sa.Column("sealed_people", sa.Text, nullable=True),
    sa.Column("sealed_safety", sa.Text, nullable=True),
    # --- revision 0003: the hub took the referral back (domain.Withdrawal; codes, a time) ---
    sa.Column("withdrawal_kind", sa.String(16), nullable=True),
    sa.Column("withdrawal_reason", sa.String(64), nullable=True),
    sa.Column("withdrawal_decided_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("withdrawal_closed_case", sa.Boolean, nullable=True),
    sa.UniqueConstraint("coordination_id", name="uq_cases_coordination_id"),
)
sa.Index("ix_cases_assigned_to", cases.c.assigned_to, cases.c.status)
sa.Index("ix_cases_due", cases.c.next_due_on, cases.c.opened_at, cases.c.case_id)
sa.Index("ix_cases_pending", cases.c.pending_approval, cases.c.pending_since)

# Every assessment, append-only; the case row counts them and keeps the latest risk level.
case_assessments = sa.Table(
    "case_assessments",
    metadata,
    sa.Column("assessment_id", sa.String(36), primary_key=True),
    sa.Column("case_id", sa.String(36), sa.ForeignKey(_CASE_ID), nullable=False),
    sa.Column("assessed_on", sa.Date, nullable=False),
    sa.Column("risk_level", sa.String(16), nullable=False),
    sa.Column("recorded_by", sa.String(64), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    # needs, summary, the child's views
    sa.Column("sealed_content", sa.Text, nullable=False),
)
sa.Index("ix_case_assessments_case", case_assessments.c.case_id, case_assessments.c.recorded_at)

# One row per version of a case's plan; the highest version is the current one.
case_plans = sa.Table(
    "case_plans",
    metadata,
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
    # goals (domain, description), the approval's comment, the reason it was returned
    sa.Column("sealed_content", sa.Text, nullable=False),
)

case_services = sa.Table(
    "case_services",
    metadata,
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
    # provider, status note
    sa.Column("sealed_content", sa.Text, nullable=False),
)
sa.Index("ix_case_services_case", case_services.c.case_id, case_services.c.status)

case_follow_ups = sa.Table(
    "case_follow_ups",
    metadata,
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
    # summary, the child's views, why it was cancelled
    sa.Column("sealed_content", sa.Text, nullable=False),
)
sa.Index("ix_case_follow_ups_case", case_follow_ups.c.case_id, case_follow_ups.c.status)

case_closures = sa.Table(
    "case_closures",
    metadata,
    sa.Column("closure_id", sa.String(36), primary_key=True),
    sa.Column("case_id", sa.String(36), sa.ForeignKey(_CASE_ID), nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("warnings", sa.String(256), nullable=False),  # codes, comma-separated
    sa.Column("requested_by", sa.String(64), nullable=False),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("decision", sa.String(16), nullable=True),
    sa.Column("decided_by", sa.String(64), nullable=True),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
    # the reason's text, the approval's comment, why it was rejected
    sa.Column("sealed_content", sa.Text, nullable=False),
)
sa.Index("ix_case_closures_case", case_closures.c.case_id, case_closures.c.requested_at)

case_reopenings = sa.Table(
    "case_reopenings",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("case_id", sa.String(36), sa.ForeignKey(_CASE_ID), nullable=False),
    sa.Column("reopened_by", sa.String(64), nullable=False),
    sa.Column("reopened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sealed_reason", sa.Text, nullable=False),
)
sa.Index("ix_case_reopenings_case", case_reopenings.c.case_id)

case_assignments = sa.Table(
    "case_assignments",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("case_id", sa.String(36), sa.ForeignKey(_CASE_ID), nullable=False),
    sa.Column("assigned_to", sa.String(64), nullable=False),
    sa.Column("assigned_by", sa.String(64), nullable=False),
    sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("by_supervisor", sa.Boolean, nullable=False),
    sa.Column("sealed_reason", sa.Text, nullable=True),
)
sa.Index("ix_case_assignments_case", case_assignments.c.case_id)

# Notes stay here: never published, never in a log.
case_notes = sa.Table(
    "case_notes",
    metadata,
    sa.Column("note_id", sa.String(36), primary_key=True),
    sa.Column("case_id", sa.String(36), sa.ForeignKey(_CASE_ID), nullable=False),
    sa.Column("written_by", sa.String(64), nullable=False),
    sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sealed_text", sa.Text, nullable=False),
)
sa.Index("ix_case_notes_case", case_notes.c.case_id, case_notes.c.written_at, case_notes.c.note_id)

# Where the partners stand on each referral, from their status events (concord_kit.partners).
partner_status = partner_status_table(metadata)

# Every request abroad on a coordination id (the kit's table keeps one status per agency):
# "request to DE: overdue". Codes and times only, from request.filed / status_changed.
requests_abroad = sa.Table(
    "requests_abroad",
    metadata,
    sa.Column("request_id", sa.String(36), primary_key=True),
    sa.Column("coordination_id", sa.String(36), nullable=False),
    sa.Column("instrument", sa.String(64), nullable=True),
    sa.Column("executing_country", sa.String(2), nullable=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_sequence", sa.Integer, nullable=False),
)
sa.Index("ix_requests_abroad_coordination", requests_abroad.c.coordination_id)
