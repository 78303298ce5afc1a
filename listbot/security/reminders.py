"""Reminders to the team about a case's timeline, each sent exactly once.

The database is the truth (table case_reminders, unique per case and reminder key);
the timer only wakes `dispatch(now)`, which also runs at start-up so a reminder that
fell due while the daemon was down is sent then, late but once.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog

from listbot.core.calendar.embargo import CalendarPolicy, reminders
from listbot.core.calendar.timeline import Reminder
from listbot.core.case_model import FINISHED_STATES, Case, CaseState
from listbot.core.clock import Clock
from listbot.core.config import Config
from listbot.core.model import Audience, OutgoingMessage
from listbot.core.store import Store, Tx
from listbot.core.store import cases as case_store
from listbot.core.timer import Timer
from listbot.security.case_mail import reminder_message
from listbot.security.config import CasesConfig

log = structlog.get_logger("listbot.reminders")

TIMER_KEY = "case-reminders"


PolicyFor = Callable[[int], CalendarPolicy]


def due_for(case: Case, policy_for: PolicyFor) -> tuple[Reminder, ...]:
    """The reminders of a case's current timeline; none once it is public or closed, and
    none about a missing patch once one is attached."""
    if case.state in FINISHED_STATES:
        return ()
    policy = policy_for(case.timeline.arrival.year)
    found = reminders(case.timeline, policy)
    return tuple(r for r in found if not (r.kind == "no_patch" and case.patch_attached))


async def send_due(tx: Tx, cfg: Config, policy_for: PolicyFor, now: datetime) -> int:
    """Claim and enqueue every reminder due at `now`; returns how many were sent."""
    sent = 0
    open_states = [s for s in CaseState if s not in FINISHED_STATES]
    for case in await case_store.list_cases(tx, open_states):
        for reminder in due_for(case, policy_for):
            if reminder.at > now or not await case_store.claim_reminder(tx, case.id,
                                                                        reminder.key):
                continue
            await tx.enqueue(OutgoingMessage(
                audience=Audience.TEAM, envelope_from=cfg.team_address,
                recipients=cfg.team_recipients,
                raw=reminder_message(cfg, case.id, reminder.kind, reminder.at, now),
                case_id=case.id, dedupe_key=f"case-reminder:{case.id}:{reminder.key}",
                reason=f"case.reminder.{reminder.kind}"))
            late = now - reminder.at
            await tx.audit("listbot", "case.reminder", f"case:{case.id}", {
                "kind": reminder.kind, "due": reminder.at.isoformat(),
                "late_seconds": int(late.total_seconds())})
            sent += 1
    return sent


async def next_due(tx: Tx, policy_for: PolicyFor, now: datetime) -> datetime | None:
    open_states = [s for s in CaseState if s not in FINISHED_STATES]
    upcoming = [r.at for case in await case_store.list_cases(tx, open_states)
                for r in due_for(case, policy_for) if r.at > now]
    return min(upcoming, default=None)


class ReminderDispatcher:
    """Runs `dispatch(now)` when woken, then re-arms the timer for the next reminder."""

    def __init__(self, *, cfg: Config, cases_cfg: CasesConfig, store: Store, clock: Clock,
                 timer: Timer | None, on_sent: Callable[[], None]) -> None:
        self.cfg = cfg
        self.cases_cfg = cases_cfg
        # Building a year's calendar runs the holidays library for four years; a frozen
        # config never changes it, so each year is built once, not per case per dispatch.
        self._policies: PolicyFor = functools.cache(cases_cfg.policy_for)
        self.store = store
        self.clock = clock
        self.timer = timer
        self.on_sent = on_sent
        self._lock = asyncio.Lock()
        self.rearming: asyncio.Task[None] | None = None  # the last rearm()'s dispatch

    async def dispatch(self, now: datetime) -> int:
        async with self._lock, self.store.unit() as tx:
            sent = await send_due(tx, self.cfg, self._policies, now)
            upcoming = await next_due(tx, self._policies, now)
        if sent:
            log.info("reminders.sent", count=sent)
            self.on_sent()
        self._arm(upcoming)
        return sent

    async def wake(self) -> None:
        try:
            await self.dispatch(self.clock.now())
        except Exception as exc:  # the database may be down: the backstop wake retries
            log.error("reminders.dispatch_failed", error=type(exc).__name__)
            self._arm(None)

    def rearm(self) -> None:
        """Security mail was committed: a new or changed case may bring a reminder
        closer, so dispatch and re-arm from the database. Only then: a dispatch is a
        write transaction over every open case."""
        self.rearming = asyncio.get_running_loop().create_task(self.wake())

    def _arm(self, upcoming: datetime | None) -> None:
        if self.timer is None:
            return
        now = self.clock.now()
        backstop = now + timedelta(seconds=self.cases_cfg.reminder_poll_seconds)
        target = min(upcoming, backstop) if upcoming is not None else backstop
        # The scheduler runs on the real clock; only the distance from our clock's
        # "now" is handed to it, so an injected clock never makes it fire in a loop.
        delay = max(target - now, timedelta(seconds=1))
        self.timer.wake_at(TIMER_KEY, datetime.now(UTC) + delay, self.wake)
