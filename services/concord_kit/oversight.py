"""What oversight may ask any agency's service: which records it holds for which referrals.

A coordinator (or an administrator, or an operator's check such as the fault suite) asks
each owning service, not the pipeline's copy, whether a referral has a case, an
investigation, a request: identifiers, status codes and times only, never an identity, so
the answer is no more than the pipeline already shows them. Each service exposes it as
its `records_by_referral` RPC over its own table (`records_by_referral` below).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from concord_contracts.codes import Role
from concord_kit.errors import BadInput, Forbidden
from concord_kit.identity import CallContext, Caller

OVERSIGHT_ROLES = frozenset({Role.coordinator, Role.administrator})
MAX_COORDINATION_IDS = 500


def require_oversight(identity: CallContext) -> Caller:
    """The caller, when it holds an oversight role (Forbidden otherwise)."""
    caller = identity.require()
    if caller.role not in OVERSIGHT_ROLES:
        raise Forbidden(f"role {caller.role} does not oversee records across agencies")
    return caller


def coordination_ids(values: Any) -> list[str]:
    """1..500 coordination ids, each a UUID; BadInput naming the field otherwise."""
    if not isinstance(values, list | tuple) or not 1 <= len(values) <= MAX_COORDINATION_IDS:
        raise BadInput({"coordination_ids": [f"Give 1 to {MAX_COORDINATION_IDS} identifiers."]})
    parsed = []
    for index, value in enumerate(values):
        try:
            parsed.append(str(uuid.UUID(str(value))))
        except ValueError:
            raise BadInput({"coordination_ids": {str(index): ["Not a valid UUID."]}}) from None
    return parsed


def records_by_referral(
    session: Session,
    table: sa.Table,
    record_id: str,
    ids: Sequence[str],
) -> dict[str, list[dict[str, Any]]]:
    """`{coordination_id: [{"record_id", "status", "opened_at"}]}` for every id asked (an
    empty list where the service holds nothing), oldest record first."""
    found: dict[str, list[dict[str, Any]]] = {cid: [] for cid in ids}
    rows = session.execute(
        sa.select(table.c.coordination_id, table.c[record_id], table.c.status, table.c.opened_at)
        .where(table.c.coordination_id.in_(list(ids)))
        .order_by(table.c.opened_at, table.c[record_id])
    )
    for cid, rid, status, opened_at in rows:
        found[cid].append(
            {"record_id": str(rid), "status": str(status), "opened_at": _iso(opened_at)}
        )
    return found


def _iso(value: dt.datetime) -> str:
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
