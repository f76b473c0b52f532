"""The audit trail: append-only and hash-chained, one per service.

Each row's hash covers its content and the previous row's hash, so an edit or a deletion
anywhere breaks the chain from that row on; `verify` finds the first broken row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from concord_kit.identity import Caller
from concord_kit.tables import audit_trail

GENESIS = "0" * 64
_PG_AUDIT_LOCK = 7_150_231_002


def _digest(previous_hash: str, row: dict) -> str:
    content = json.dumps(
        {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in row.items()},
        sort_keys=True,
    )
    return hashlib.sha256(f"{previous_hash}|{content}".encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One thing done or refused, as it will be appended: when, by whom, to what, why."""

    at: dt.datetime
    caller: Caller
    action: str
    subject: str  # an identifier (a coordination or case id), never a name
    reason: str
    outcome: str = "allowed"


def append(session: Session, entries: Sequence[Entry], correlation_id: str) -> None:
    """Append `entries`, chained in order: one lock, one read of the last hash, one insert.
    The lock serialises appends so that two writers never chain onto the same previous row;
    it is held until the transaction ends, which is why a unit of work appends its entries
    last, just before it commits (`concord_kit.db.UnitOfWork.flush`)."""
    if not entries:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_AUDIT_LOCK})
    previous_hash = (
        session.execute(
            sa.select(audit_trail.c.hash).order_by(audit_trail.c.id.desc()).limit(1)
        ).scalar()
        or GENESIS
    )
    rows = []
    for entry in entries:
        row = {
            "at": entry.at,
            "user_id": entry.caller.user_id,
            "role": str(entry.caller.role),
            "agency": str(entry.caller.agency),
            "action": entry.action,
            "subject": entry.subject,
            "outcome": entry.outcome,
            "reason": entry.reason[:200],
            "correlation_id": correlation_id,
        }
        digest = _digest(previous_hash, row)
        rows.append({**row, "previous_hash": previous_hash, "hash": digest})
        previous_hash = digest
    session.execute(audit_trail.insert(), rows)


def verify(session: Session) -> int | None:
    """The id of the first entry whose chain is broken, or None when the trail is intact."""
    previous_hash = GENESIS
    columns = [c for c in audit_trail.c if c.name not in ("id", "previous_hash", "hash")]
    for entry in session.execute(sa.select(audit_trail).order_by(audit_trail.c.id)).mappings():
        row = {c.name: entry[c.name] for c in columns}
        if row["at"].tzinfo is None:  # SQLite returns naive times; they were written as UTC
            row["at"] = row["at"].replace(tzinfo=dt.UTC)
        if entry["previous_hash"] != previous_hash or entry["hash"] != _digest(previous_hash, row):
            return int(entry["id"])
        previous_hash = entry["hash"]
    return None
