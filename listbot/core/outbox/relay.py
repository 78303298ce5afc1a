"""The relay as one thing: up, or down until a probe at one backoff.

A relay that refuses connections, or answers 4xx at the greeting, HELO/EHLO or MAIL
FROM, is down for every row alike. Pushing each row back by its own backoff for it
would scatter the queue over hours once the relay is back; instead the relay is marked
down with one backoff, one row probes it when that runs out, and the first answer that
is not the relay's refusal lets the whole queue go at full speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

log = structlog.get_logger("listbot.delivery")

# The longest wait between probes: a probe is one connection, and every minute of this
# is a minute the queue may stay behind a relay that is back.
PROBE_MAX_SECONDS = 300.0


def backoff(attempts: int, initial: float, cap: float) -> timedelta:
    """Capped exponential backoff: initial, 2x, 4x ... never above cap."""
    return timedelta(seconds=min(cap, initial * (2 ** max(0, attempts - 1))))


@dataclass
class RelayState:
    initial_seconds: float
    max_seconds: float
    failures: int = 0
    retry_at: datetime | None = None  # set while the relay is down: the next probe

    @property
    def down(self) -> bool:
        return self.retry_at is not None

    def waiting(self, now: datetime) -> bool:
        """Down, and not yet time to probe it."""
        return self.retry_at is not None and now < self.retry_at

    def refused(self, now: datetime, *, probe: bool) -> datetime:
        """The relay refused as a whole; returns when it is probed next. Refusals of
        sends already under way when it went down do not lengthen the wait."""
        if self.retry_at is None or probe:
            self.failures += 1
            cap = min(self.max_seconds, PROBE_MAX_SECONDS)
            self.retry_at = now + backoff(self.failures, self.initial_seconds, cap)
            log.warning("delivery.relay_down", failures=self.failures,
                        retry_at=self.retry_at.isoformat())
        return self.retry_at

    def answered(self) -> None:
        """The relay answered for a message: it is up."""
        if self.retry_at is not None:
            log.info("delivery.relay_up", failures=self.failures)
        self.failures = 0
        self.retry_at = None
