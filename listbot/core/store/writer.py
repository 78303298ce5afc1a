"""The one-writer queue of a SQLite daemon.

SQLite has one writer at a time. Left to SQLite, a second writer of the same process
waits in the busy handler, which sleeps milliseconds between polls; queued here, it
starts the moment the first one commits. The queue also orders the waiters: a commit
that a sender's 250 waits on goes before background work (the worker, delivery),
yet background work gets every `fair_every`-th turn, so a flood of arrivals slows it
down but never stops it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class WriterQueue:
    def __init__(self, fair_every: int = 4) -> None:
        self.fair_every = fair_every
        self._busy = False
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._background: deque[asyncio.Future[None]] = deque()
        self._streak = 0  # urgent turns given in a row while background work waited

    @property
    def urgent_waiting(self) -> bool:
        return any(not w.done() for w in self._urgent)

    @asynccontextmanager
    async def hold(self, *, urgent: bool) -> AsyncIterator[None]:
        await self._acquire(urgent)
        try:
            yield
        finally:
            self._hand_over()

    async def _acquire(self, urgent: bool) -> None:
        if not self._busy:
            self._busy = True
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._urgent if urgent else self._background
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._hand_over()  # the turn was ours already: pass it on
            elif waiter in queue:  # a cancelled waiter may have been skipped already
                queue.remove(waiter)
            raise

    def _hand_over(self) -> None:
        while True:
            waiter = self._next()
            if waiter is None:
                self._busy = False
                return
            if not waiter.done():
                waiter.set_result(None)
                return

    def _next(self) -> asyncio.Future[None] | None:
        background_turn = bool(self._background) and (
            not self._urgent or self._streak >= self.fair_every)
        if background_turn:
            self._streak = 0
            return self._background.popleft()
        if self._urgent:
            self._streak += 1 if self._background else 0
            return self._urgent.popleft()
        return None
