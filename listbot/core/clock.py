"""The one source of time. Everything that needs "now" gets a Clock injected."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC datetime."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock tests move by hand; waiters registered with `changed` wake on every move."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self.changed = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = when.astimezone(UTC)
        self.changed.set()
        self.changed = asyncio.Event()

    def advance(self, delta: timedelta) -> None:
        self.set(self._now + delta)


def ensure_utc(value: datetime) -> datetime:
    """Reject naive datetimes instead of guessing their zone."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: listbot works in aware UTC only")
    return value.astimezone(UTC)
