"""Single-statement writes that PostgreSQL and SQLite both do atomically: an insert that
ignores a duplicate key, and a sequence-checked upsert. One round trip where a select, a
savepoint and an insert or update took four, and no race left between them (benchmarks/
measured the difference; docs/reliability.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

_DIALECTS: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def supported(session: Session) -> bool:
    return session.get_bind().dialect.name in _DIALECTS


def insert_unless_present(
    session: Session, table: sa.Table, values: Mapping[str, Any], key: Sequence[str]
) -> bool:
    """Insert one row unless a row with the same `key` exists (or is being inserted by a
    transaction that then commits: PostgreSQL waits for it). True when this one was inserted."""
    insert = _DIALECTS[session.get_bind().dialect.name]
    statement = insert(table).values(**values).on_conflict_do_nothing(index_elements=list(key))
    return cast(sa.CursorResult, session.execute(statement)).rowcount == 1


def upsert_if_newer(
    session: Session,
    table: sa.Table,
    values: Mapping[str, Any],
    key: Sequence[str],
    sequence_column: str,
) -> bool:
    """Insert the row, or update the existing one with the same `key` only when its
    `sequence_column` is lower than the new value's. True when a row was written."""
    insert = _DIALECTS[session.get_bind().dialect.name]
    statement = insert(table).values(**values)
    changed = {name: statement.excluded[name] for name in values if name not in key}
    statement = statement.on_conflict_do_update(
        index_elements=list(key),
        set_=changed,
        where=table.c[sequence_column] < statement.excluded[sequence_column],
    )
    return cast(sa.CursorResult, session.execute(statement)).rowcount == 1


def increment(
    session: Session, table: sa.Table, key: Mapping[str, Any], column: str, start: int = 1
) -> int:
    """Add one to `column` of the row with `key`, creating it at `start` when missing;
    the new value. Atomic: two transactions never get the same number."""
    insert = _DIALECTS[session.get_bind().dialect.name]
    statement = insert(table).values(**key, **{column: start})
    statement = statement.on_conflict_do_update(
        index_elements=list(key), set_={column: table.c[column] + 1}
    ).returning(table.c[column])
    return int(session.execute(statement).scalar_one())
