"""The open transaction every store function takes: its connection stays in the store.

Capabilities hold a `Tx` (listbot.core.store), which is a `Unit` with the conveniences
handlers use; the store's own modules take the plain `Unit`, so `Tx` can be built on
them without an import circle.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass
class Unit:
    """One open transaction and the instant it began (what `now` means inside it)."""

    conn: AsyncConnection
    now: datetime

    @property
    def sqlite(self) -> bool:
        return self.conn.dialect.name == "sqlite"

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested transaction: an exception inside undoes only what was done inside."""
        async with self.conn.begin_nested():
            yield
