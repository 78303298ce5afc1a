"""Wake a worker when there is work, without polling in a tight loop."""

from __future__ import annotations

import asyncio
import contextlib


class Waker:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def wait(self, seconds: float, stopping: asyncio.Event) -> None:
        """Return on wake-up, on stop, or after `seconds` (the polling backstop)."""
        if self._event.is_set():
            self._event.clear()
            return
        wake = asyncio.ensure_future(self._event.wait())
        stop = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait({wake, stop}, timeout=seconds,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (wake, stop):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._event.clear()
