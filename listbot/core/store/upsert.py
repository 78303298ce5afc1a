"""Unique keys decide races, the one way: the constraint decides, not a prior SELECT.

A SELECT-then-INSERT lets two daemons on one PostgreSQL both see "absent" and the
second one fail with an IntegrityError, which on PostgreSQL also aborts its whole
transaction. Every insert under a unique key in the store therefore goes through
this module: ON CONFLICT DO NOTHING makes the loser's insert a no-op (PostgreSQL
first waits for the winner's commit), and no store module catches IntegrityError.
What losing means is the caller's to say:

- `insert_if_absent`: a claim or a record made once; the loser gets False.
- `insert_new`: the row must be this caller's; the loser gets the exception it names:
  `Refused` when a person asked for something that exists already (retrying cannot
  help), `TemporaryError` when concurrent work got there first (the worker leaves the
  message to be handled again, and then it sees the winner's row).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, Row, Table
from sqlalchemy.dialects import postgresql, sqlite

from listbot.core.store.unit import Unit


def insert_ignoring(tx: Unit, table: Table, keys: Sequence[str] | None, *,
                    where: Any = None) -> Any:
    """An INSERT into `table` that skips rows whose `keys` exist already (any row count).

    `where`: the predicate of a partial unique index on `keys`. keys=None: whichever
    unique key of the table a row collides on (a table with several)."""
    dialect: Any = sqlite if tx.sqlite else postgresql
    if keys is None:
        return dialect.insert(table).on_conflict_do_nothing()
    return dialect.insert(table).on_conflict_do_nothing(index_elements=list(keys),
                                                        index_where=where)


async def insert_if_absent(tx: Unit, table: Table, values: dict[str, Any], *,
                           keys: Sequence[str] | None, where: Any = None) -> bool:
    """Insert one row unless one with the same `keys` exists; True when this call did."""
    return await _insert_one(tx, table, values, keys, where=where) is not None


async def insert_new(tx: Unit, table: Table, values: dict[str, Any], *,
                     keys: Sequence[str] | None, taken: Exception, where: Any = None,
                     returning: Sequence[Column[Any]] = ()) -> Row[Any]:
    """Insert one row and return its `returning` columns (default: the primary key);
    raise `taken` when a row with the same `keys` exists."""
    row = await _insert_one(tx, table, values, keys, where=where, returning=returning)
    if row is None:
        raise taken
    return row


async def _insert_one(tx: Unit, table: Table, values: dict[str, Any],
                      keys: Sequence[str] | None, *, where: Any = None,
                      returning: Sequence[Column[Any]] = ()) -> Row[Any] | None:
    stmt = insert_ignoring(tx, table, keys, where=where).values(**values)
    # RETURNING, not rowcount: psycopg reports no reliable rowcount for ON CONFLICT.
    columns = list(returning) or list(table.primary_key.columns)
    result = await tx.conn.execute(stmt.returning(*columns))
    return result.first()
