"""APScheduler 3.x as a wake-up timer only
(docs/design.md "Releases: never early, not lost, once").

Jobs live in memory and only wake a dispatcher; the database stays the truth, so a
lost job costs nothing but a wake-up, which the start-up pass and polling provide.
misfire_grace_time=None: a wake-up that fires late still fires.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

Wake = Callable[[], Awaitable[None]]


class Timer(Protocol):
    def wake_at(self, key: str, when: datetime, wake: Wake) -> None: ...

    def cancel(self, key: str) -> None: ...


class SchedulerTimer:
    def __init__(self) -> None:
        self._scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def wake_at(self, key: str, when: datetime, wake: Wake) -> None:
        """(Re)arm the wake-up called `key`; one job per key."""
        self._scheduler.add_job(wake, DateTrigger(run_date=when.astimezone(UTC)), id=key,
                                replace_existing=True)

    def cancel(self, key: str) -> None:
        if self._scheduler.get_job(key) is not None:
            self._scheduler.remove_job(key)
