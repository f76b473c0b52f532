"""Single-statement writes that PostgreSQL and SQLite both do atomically: an insert that
ignores a duplicate key, a sequence-checked upsert, and counts added to (many at once).
One round trip where a select, a savepoint and an insert or update took four, and no race
left between them (benchmarks/ measured the difference; docs/reliability.md).

The statements are written once per table and shape and kept: SQLAlchemy's dialect
inserts (`postgresql.insert(...).on_conflict_...`) cannot be cached, so building them per
call compiled every one again (about a tenth of a consumer's time in the benchmark's
profile). A `text` statement with typed parameters is cached like any other, and both
databases speak this `INSERT ... ON CONFLICT` alike."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

_DIALECTS = frozenset({"postgresql", "sqlite"})


def supported(session: Session) -> bool:
    return session.get_bind().dialect.name in _DIALECTS


def _quote(name: str) -> str:
    # Table and column names come from the kit's and services' own metadata, never from
    # input; quoted all the same.
    return '"' + name.replace('"', '""') + '"'


def _insert(table: sa.Table, columns: tuple[str, ...]) -> str:
    names = ", ".join(_quote(c) for c in columns)
    values = ", ".join(f":{c}" for c in columns)
    return f"INSERT INTO {_quote(table.name)} ({names}) VALUES ({values})"


def _typed(sql: str, table: sa.Table, names: Sequence[str]) -> sa.TextClause:
    # The columns' own types, so dates, JSON and the like are bound as SQLAlchemy would.
    return sa.text(sql).bindparams(
        *(sa.bindparam(name, type_=table.c[name].type) for name in names)
    )


@functools.cache
def _insert_unless_present(table: sa.Table, columns: tuple[str, ...], key: tuple[str, ...]):
    conflict = ", ".join(_quote(c) for c in key)
    return _typed(f"{_insert(table, columns)} ON CONFLICT ({conflict}) DO NOTHING", table, columns)


@functools.cache
def _upsert_if_newer(
    table: sa.Table, columns: tuple[str, ...], key: tuple[str, ...], sequence_column: str
):
    conflict = ", ".join(_quote(c) for c in key)
    changed = ", ".join(f"{_quote(c)} = excluded.{_quote(c)}" for c in columns if c not in key)
    seq = _quote(sequence_column)
    sql = (
        f"{_insert(table, columns)} ON CONFLICT ({conflict}) DO UPDATE SET {changed} "
        f"WHERE {_quote(table.name)}.{seq} < excluded.{seq}"
    )
    return _typed(sql, table, columns)


@functools.cache
def _increment(table: sa.Table, key: tuple[str, ...], column: str):
    conflict = ", ".join(_quote(c) for c in key)
    col = _quote(column)
    sql = (
        f"{_insert(table, (*key, column))} ON CONFLICT ({conflict}) "
        f"DO UPDATE SET {col} = {_quote(table.name)}.{col} + :step RETURNING {col}"
    )
    statement = _typed(sql, table, (*key, column))
    return statement.bindparams(sa.bindparam("step", type_=sa.Integer()))


@functools.cache
def _add_to(table: sa.Table, key: tuple[str, ...], column: str, dialect: str):
    names = (*key, column)
    conflict = ", ".join(_quote(c) for c in key)
    col = _quote(column)
    added = f"{_quote(table.name)}.{col} + excluded.{col}"
    update = f"ON CONFLICT ({conflict}) DO UPDATE SET {col} = {added}"
    if dialect != "postgresql":
        return _typed(f"{_insert(table, names)} {update}", table, names)
    # Every row in one statement, each column as one array: one round trip, whatever the
    # number of rows, and the same cached statement for any number.
    columns = ", ".join(_quote(c) for c in names)
    arrays = ", ".join(f":{c}" for c in names)
    sql = f"INSERT INTO {_quote(table.name)} ({columns}) SELECT * FROM unnest({arrays}) {update}"
    return sa.text(sql).bindparams(
        *(sa.bindparam(c, type_=postgresql.ARRAY(table.c[c].type)) for c in names)
    )


def add_to(
    session: Session,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    key: Sequence[str],
    column: str,
) -> None:
    """Add each row's `column` to the row of `table` with its `key` (each key once),
    creating it when missing; in the rows' order, so writers that sort their rows alike
    take the rows' locks in one order. One statement on PostgreSQL, one per row on SQLite
    (in process)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    statement = _add_to(table, tuple(key), column, dialect)
    names = (*key, column)
    if dialect == "postgresql":
        session.execute(statement, {c: [row[c] for row in rows] for c in names})
    else:
        session.execute(statement, [{c: row[c] for c in names} for row in rows])


def insert_unless_present(
    session: Session, table: sa.Table, values: Mapping[str, Any], key: Sequence[str]
) -> bool:
    """Insert one row unless a row with the same `key` exists (or is being inserted by a
    transaction that then commits: PostgreSQL waits for it). True when this one was inserted."""
    statement = _insert_unless_present(table, tuple(values), tuple(key))
    return _execute(session, statement, dict(values)).rowcount == 1


def upsert_if_newer(
    session: Session,
    table: sa.Table,
    values: Mapping[str, Any],
    key: Sequence[str],
    sequence_column: str,
) -> bool:
    """Insert the row, or update the existing one with the same `key` only when its
    `sequence_column` is lower than the new value's. True when a row was written."""
    statement = _upsert_if_newer(table, tuple(values), tuple(key), sequence_column)
    return _execute(session, statement, dict(values)).rowcount == 1


def increment(
    session: Session, table: sa.Table, key: Mapping[str, Any], column: str, step: int = 1
) -> int:
    """Add `step` to `column` of the row with `key`, creating it at `step` when missing;
    the new value. Atomic: two transactions never get the same numbers."""
    statement = _increment(table, tuple(key), column)
    return int(_execute(session, statement, {**key, column: step, "step": step}).scalar_one())


def _execute(session: Session, statement: sa.TextClause, params: dict[str, Any]):
    return cast(sa.CursorResult, session.execute(statement, params))
