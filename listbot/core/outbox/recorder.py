"""Group commit of delivery outcomes.

Each SMTP transaction's outcome is committed before its lane starts the next
transaction, so a crash repeats at most the transactions in flight. With several lanes
that would be one write transaction per SMTP transaction; instead, outcomes that arrive
while a commit is running wait for the next one and share it. A lane still waits for
the commit that holds its own rows, so nothing about the in-flight window changes:
only the number of commits does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Row = TypeVar("Row")


class GroupCommit(Generic[Row]):
    def __init__(self, commit: Callable[[list[Row]], Awaitable[None]]) -> None:
        self._commit = commit
        self._rows: list[Row] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._draining: asyncio.Task[None] | None = None

    async def record(self, rows: list[Row]) -> None:
        """Return once `rows` are committed; raise what the commit raised."""
        if not rows:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._rows.extend(rows)
        self._waiters.append(done)
        if self._draining is None or self._draining.done():
            self._draining = asyncio.ensure_future(self._drain())
        await done

    async def _drain(self) -> None:
        while self._rows:
            rows, waiters = self._rows, self._waiters
            self._rows, self._waiters = [], []
            try:
                await self._commit(rows)
            except Exception as exc:  # each waiter hears of it; the rows stay claimed
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(exc)
            else:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)
