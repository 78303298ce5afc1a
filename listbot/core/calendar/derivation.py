"""Derivations of computed instants, each ending in a machine-readable replay clause,
``[replay from=D add=N skip=D1,D2 at=HH:MM:SS]``, so an explanation can be checked by
recomputing each date from its text alone (`replay`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time

from listbot.core.calendar.timeline import Step, Timeline, utc_iso
from listbot.core.calendar.working_days import ONE_DAY, HolidayCalendar, walk_working_days
from listbot.core.clock import ensure_utc

_REPLAY = re.compile(r"\[replay from=(\S+) add=(-?\d+) skip=(\S*) at=([^\]\s]+)\]")


def describe_day(d: date, cal: HolidayCalendar) -> str:
    name = cal.name(d)
    return f"{d:%a} {d.isoformat()}" + (f" ({name})" if name else "")


def _clause(start: date, n: int, skipped: Iterable[date], at: time) -> str:
    skip = ",".join(d.isoformat() for d in skipped)
    return f"[replay from={start.isoformat()} add={n} skip={skip} at={at.isoformat()}]"


def fixed_step(label: str, value: datetime, why: str) -> Step:
    value = ensure_utc(value)
    return Step(label, value, f"{why} {_clause(value.date(), 0, (), value.time())}")


def walked_step(
    label: str, start: date, n: int, at: time, cal: HolidayCalendar, *, why: str
) -> Step:
    end, skipped = walk_working_days(start, n, cal)
    text = f"{why}{start.isoformat()} ({start:%a}) {'+' if n >= 0 else '-'}{abs(n)} working days"
    if skipped:
        text += ", skipping " + ", ".join(describe_day(d, cal) for d in skipped)
    text += f" = {end.isoformat()} ({end:%a}); at {at:%H:%M:%S} UTC"
    return Step(
        label, datetime.combine(end, at, tzinfo=UTC), f"{text} {_clause(start, n, skipped, at)}"
    )


def replay(source: Step | str) -> datetime:
    """Recompute an instant from the replay clause of a step or an `explain` line alone."""
    text = source.derivation if isinstance(source, Step) else source
    match = _REPLAY.search(text)
    if match is None:
        raise ValueError("no replay clause in this text")
    d, n = date.fromisoformat(match[1]), int(match[2])
    skip = {date.fromisoformat(s) for s in match[3].split(",") if s}
    step, left = (ONE_DAY if n >= 0 else -ONE_DAY), abs(n)
    while left:
        d += step
        left -= d not in skip
    return datetime.combine(d, time.fromisoformat(match[4]), tzinfo=UTC)


def explain(timeline: Timeline) -> list[str]:
    lines = [f"{s.label}: {utc_iso(s.value)} ({s.value:%a}) <- {s.derivation}"
             for s in timeline.steps]
    lines.append(f"=> pre-disclosure advisory due {utc_iso(timeline.predisclosure_at)}")
    lines.append(f"=> public release {utc_iso(timeline.public_at)} ({timeline.public_basis})")
    return lines
