"""Insert-if-absent, the one way: the unique constraint decides, not a prior SELECT.

A SELECT-then-INSERT lets two daemons on one PostgreSQL both see "absent" and the
second one fail with an IntegrityError; ON CONFLICT DO NOTHING makes the loser a no-op.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def insert_ignoring(conn: AsyncConnection, table: Table, keys: Sequence[str]) -> Any:
    """An INSERT into `table` that skips rows whose `keys` exist already (any row count)."""
    dialect: Any = sqlite if conn.dialect.name == "sqlite" else postgresql
    return dialect.insert(table).on_conflict_do_nothing(index_elements=list(keys))


async def insert_if_absent(conn: AsyncConnection, table: Table, values: dict[str, Any], *,
                           keys: Sequence[str]) -> bool:
    """Insert one row unless one with the same `keys` exists; True when this call did."""
    stmt = insert_ignoring(conn, table, keys).values(**values)
    # RETURNING, not rowcount: psycopg reports no reliable rowcount for ON CONFLICT.
    result = await conn.execute(stmt.returning(*table.primary_key.columns))
    return result.first() is not None
