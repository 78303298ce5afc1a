"""Working days, holidays, the embargo timeline (docs/design.md "The disclosure calendar").

Pure: no clock, no I/O. Every computed instant is a `Step` whose derivation ends in a
machine-readable replay clause, ``[replay from=D add=N skip=D1,D2 at=HH:MM:SS]``, so
an explanation can be checked by recomputing each date from its text alone (`replay`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any, Literal

import holidays as holidays_lib

from listbot.core.clock import ensure_utc

_ONE_DAY = timedelta(days=1)
_SATURDAY = 5
_REPLAY = re.compile(r"\[replay from=(\S+) add=(-?\d+) skip=(\S*) at=([^\]\s]+)\]")

PublicBasis = Literal["default", "requested", "exploited"]
ReminderKind = Literal["predisclosure_due", "no_patch", "release_day"]


@dataclass(frozen=True)
class HolidayCalendar:
    """Non-working dates besides weekends, with their names for explanations."""

    dates: frozenset[date] = frozenset()
    names: tuple[tuple[date, str], ...] = ()
    # Years a country calendar was built for. Outside them we would silently treat
    # Christmas as a working day, so lookups there are refused instead.
    covers: range | None = None

    @classmethod
    def build(
        cls,
        country: str | None,
        subdivision: str | None,
        extra: Iterable[date],
        years: range,
    ) -> HolidayCalendar:
        found: dict[date, str] = {}
        if country is not None:
            try:
                source = holidays_lib.country_holidays(country, subdiv=subdivision, years=years)
            except NotImplementedError as exc:
                raise ValueError(f"unknown holiday calendar: {exc}") from exc
            found.update((d, str(name)) for d, name in source.items())
        elif subdivision is not None:
            raise ValueError("a holiday subdivision needs a country")
        for d in extra:
            if type(d) is not date:
                raise ValueError(f"extra holiday {d!r} is not a date")
            found[d] = f"{found[d]}; configured holiday" if d in found else "configured holiday"
        return cls(frozenset(found), tuple(sorted(found.items())), years if country else None)

    @cached_property
    def _by_date(self) -> dict[date, str]:
        return dict(self.names)

    def name(self, d: date) -> str | None:
        return self._by_date.get(d)


@dataclass(frozen=True)
class CalendarPolicy:
    """Times are UTC wall times; `release_day_reminder_time` is when, on the public
    release day, the team is reminded (midnight by default: the whole day's warning)."""

    predisclosure_working_days: int = 5
    public_working_days_after_predisclosure: int = 10
    release_time: time = time(12, 0)
    no_patch_warning_working_days: int = 10
    release_day_reminder_time: time = time(0, 0)
    holidays: HolidayCalendar = field(default_factory=HolidayCalendar)

    def __post_init__(self) -> None:
        # At least one working day keeps every computed date off weekends and after day 0.
        for name in (
            "predisclosure_working_days",
            "public_working_days_after_predisclosure",
            "no_patch_warning_working_days",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("release_time", "release_day_reminder_time"):
            value: time = getattr(self, name)
            if value.tzinfo is not None:
                if value.utcoffset() != timedelta(0):
                    raise ValueError(f"{name} must be a UTC time")
                object.__setattr__(self, name, value.replace(tzinfo=None))


@dataclass(frozen=True)
class Step:
    label: str
    value: datetime
    derivation: str


@dataclass(frozen=True)
class Timeline:
    """The last step labelled "pre-disclosure" / "public release" holds the current value."""

    arrival: datetime
    predisclosure_at: datetime
    public_at: datetime
    public_basis: PublicBasis
    steps: tuple[Step, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "arrival": _iso(self.arrival),
            "predisclosure_at": _iso(self.predisclosure_at),
            "public_at": _iso(self.public_at),
            "public_basis": self.public_basis,
            "steps": [
                {"label": s.label, "value": _iso(s.value), "derivation": s.derivation}
                for s in self.steps
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Timeline:
        basis = data["public_basis"]
        if basis not in ("default", "requested", "exploited"):
            raise ValueError(f"unknown public_basis {basis!r}")
        steps = tuple(
            Step(str(s["label"]), _parse_iso(s["value"]), str(s["derivation"]))
            for s in data["steps"]
        )
        return cls(
            _parse_iso(data["arrival"]),
            _parse_iso(data["predisclosure_at"]),
            _parse_iso(data["public_at"]),
            basis,
            steps,
        )


@dataclass(frozen=True)
class Reminder:
    kind: ReminderKind
    at: datetime

    @property
    def key(self) -> str:
        """Stable per timeline instant: a store records each key as sent exactly once."""
        return f"{self.kind}:{self.at:%Y-%m-%dT%H:%M:%SZ}"


# --- working days ---------------------------------------------------------------------


def is_working_day(d: date, cal: HolidayCalendar) -> bool:
    if cal.covers is not None and d.year not in cal.covers:
        raise ValueError(
            f"{d} is outside the holiday calendar "
            f"({cal.covers.start}-{cal.covers.stop - 1}); rebuild it with more years"
        )
    return d.weekday() < _SATURDAY and d not in cal.dates


def _walk(start: date, n: int, cal: HolidayCalendar) -> tuple[date, tuple[date, ...]]:
    """Move n working days from start; also return the non-working days passed over."""
    step = _ONE_DAY if n >= 0 else -_ONE_DAY
    d, left, skipped = start, abs(n), []
    while left:
        d += step
        if is_working_day(d, cal):
            left -= 1
        else:
            skipped.append(d)
    return d, tuple(skipped)


def add_working_days(start: date, n: int, cal: HolidayCalendar) -> date:
    """The n-th working day after start (before it when n < 0); start itself never counts."""
    return _walk(start, n, cal)[0]


def next_working_day(d: date, cal: HolidayCalendar) -> date:
    """The first working day strictly after d."""
    return add_working_days(d, 1, cal)


def previous_working_day(d: date, cal: HolidayCalendar) -> date:
    """The last working day strictly before d."""
    return add_working_days(d, -1, cal)


def working_days_between(a: date, b: date, cal: HolidayCalendar) -> int:
    """Working days in (a, b], or minus those in [b, a) when b < a, so that
    add_working_days(a, working_days_between(a, b)) == b for every working day b."""
    lo, hi, sign = (a, b, 1) if a <= b else (b - _ONE_DAY, a - _ONE_DAY, -1)
    count, d = 0, lo
    while d < hi:
        d += _ONE_DAY
        count += is_working_day(d, cal)
    return sign * count


# --- explanations ---------------------------------------------------------------------


def _iso(value: datetime) -> str:
    return ensure_utc(value).isoformat().replace("+00:00", "Z")


def _parse_iso(text: object) -> datetime:
    if not isinstance(text, str):
        raise ValueError(f"expected an ISO datetime string, got {text!r}")
    return ensure_utc(datetime.fromisoformat(text))


def _day(d: date, cal: HolidayCalendar) -> str:
    name = cal.name(d)
    return f"{d:%a} {d.isoformat()}" + (f" ({name})" if name else "")


def _clause(start: date, n: int, skipped: Iterable[date], at: time) -> str:
    skip = ",".join(d.isoformat() for d in skipped)
    return f"[replay from={start.isoformat()} add={n} skip={skip} at={at.isoformat()}]"


def _fixed(label: str, value: datetime, why: str) -> Step:
    value = ensure_utc(value)
    return Step(label, value, f"{why} {_clause(value.date(), 0, (), value.time())}")


def _walked(label: str, start: date, n: int, at: time, cal: HolidayCalendar, *, why: str) -> Step:
    end, skipped = _walk(start, n, cal)
    text = f"{why}{start.isoformat()} ({start:%a}) {'+' if n >= 0 else '-'}{abs(n)} working days"
    if skipped:
        text += ", skipping " + ", ".join(_day(d, cal) for d in skipped)
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
    step, left = (_ONE_DAY if n >= 0 else -_ONE_DAY), abs(n)
    while left:
        d += step
        left -= d not in skip
    return datetime.combine(d, time.fromisoformat(match[4]), tzinfo=UTC)


def explain(timeline: Timeline) -> list[str]:
    lines = [f"{s.label}: {_iso(s.value)} ({s.value:%a}) <- {s.derivation}" for s in timeline.steps]
    lines.append(f"=> pre-disclosure advisory due {_iso(timeline.predisclosure_at)}")
    lines.append(f"=> public release {_iso(timeline.public_at)} ({timeline.public_basis})")
    return lines


# --- the timeline ---------------------------------------------------------------------


def default_timeline(arrival: datetime, policy: CalendarPolicy) -> Timeline:
    arrival = ensure_utc(arrival)
    cal, at = policy.holidays, policy.release_time
    day0 = _fixed("day 0", arrival, f"arrival of the report {_iso(arrival)} ({arrival:%a});")
    pre = _walked(
        "pre-disclosure", arrival.date(), policy.predisclosure_working_days, at, cal, why="day 0 "
    )
    public = _walked(
        "public release",
        pre.value.date(),
        policy.public_working_days_after_predisclosure,
        at,
        cal,
        why="pre-disclosure ",
    )
    return Timeline(arrival, pre.value, public.value, "default", (day0, pre, public))


def _requested_public(req: datetime, timeline: Timeline, cal: HolidayCalendar, why: str) -> Step:
    d = req.date()
    if is_working_day(d, cal):
        return _fixed("public release", req, f"{why}; a working day, released as requested")
    back = _walked(
        "public release",
        d,
        -1,
        req.time(),
        cal,
        why=f"{why}; {_day(d, cal)} is not a working day, moved to the previous one: ",
    )
    if back.value >= timeline.arrival:
        return back
    # Going back would release before the report arrived: the request falls in the
    # non-working days right after day 0, so the first working day after it is the earliest.
    return _walked(
        "public release",
        d,
        1,
        req.time(),
        cal,
        why=f"{why}; {_day(d, cal)} is not a working day and the previous one precedes "
        "day 0, moved to the next one: ",
    )


def _pulled_predisclosure(timeline: Timeline, public: datetime, policy: CalendarPolicy) -> Step:
    cal, gap = policy.holidays, policy.public_working_days_after_predisclosure
    keep = _walked(
        "pre-disclosure",
        public.date(),
        -gap,
        policy.release_time,
        cal,
        why=f"{gap} working days before the new public release: ",
    )
    if keep.value >= timeline.predisclosure_at:
        return _fixed(
            "pre-disclosure",
            timeline.predisclosure_at,
            f"stays: already at least {gap} working days before the public release;",
        )
    if keep.value >= timeline.arrival:
        return replace(keep, derivation="pulled earlier to keep " + keep.derivation)
    day0 = timeline.arrival.date()
    if is_working_day(day0, cal):
        soonest = _fixed(
            "pre-disclosure",
            timeline.arrival,
            f"pulled earlier to day 0: fewer than {gap} working days remain, "
            "so as soon as the report arrived;",
        )
    else:
        soonest = _walked(
            "pre-disclosure",
            day0,
            1,
            policy.release_time,
            cal,
            why=f"pulled earlier to the first working day after day 0: fewer than "
            f"{gap} working days remain; day 0 ",
        )
    if soonest.value <= public:
        return soonest
    return _fixed("pre-disclosure", public, "pulled earlier to the public release itself;")


def apply_requested_date(
    timeline: Timeline,
    requested: datetime,
    team_accepts_later: bool,
    policy: CalendarPolicy,
) -> Timeline:
    """An earlier date wins; a later one only with the team's consent. A requested
    instant on a non-working day moves to the previous working day at the same time."""
    req = ensure_utc(requested)
    if req < timeline.arrival:
        raise ValueError("the requested release precedes the arrival of the report")
    planned = timeline.public_at
    why = f"discoverer requested {_iso(req)} ({req:%a})"
    if req == planned:
        note = _fixed("public release", planned, f"{why}, the planned release; unchanged")
        return replace(timeline, steps=(*timeline.steps, note))
    if req > planned and not team_accepts_later:
        note = _fixed(
            "public release",
            planned,
            f"{why}, later than the planned {_iso(planned)}; the team did not "
            "accept a later date, so the planned release stays",
        )
        return replace(timeline, steps=(*timeline.steps, note))
    why += (
        f", earlier than the planned {_iso(planned)}"
        if req < planned
        else f", later than the planned {_iso(planned)}, accepted by the team"
    )
    public = _requested_public(req, timeline, policy.holidays, why)
    pre = _pulled_predisclosure(timeline, public.value, policy)
    return replace(
        timeline,
        predisclosure_at=pre.value,
        public_at=public.value,
        public_basis="requested",
        steps=(*timeline.steps, public, pre),
    )


def exploited_in_the_wild(timeline: Timeline, now: datetime) -> Timeline:
    """Release now, even on a weekend: the only computed instant allowed off working days."""
    now = ensure_utc(now)
    if now >= timeline.public_at:
        note = _fixed(
            "public release",
            timeline.public_at,
            f"exploited in the wild reported at {_iso(now)}; the planned release "
            "is already due, so it stays",
        )
        return replace(timeline, steps=(*timeline.steps, note))
    public = _fixed("public release", now, f"exploited in the wild: release now, {_iso(now)};")
    steps = (*timeline.steps, public)
    pre = timeline.predisclosure_at
    if now < pre:
        pre = now
        steps += (_fixed("pre-disclosure", now, "brought forward with the release to now;"),)
    return replace(
        timeline, predisclosure_at=pre, public_at=now, public_basis="exploited", steps=steps
    )


def reminders(timeline: Timeline, policy: CalendarPolicy) -> tuple[Reminder, ...]:
    """No reminder is set before the report arrived (a short embargo puts the no-patch
    one at day 0); the no-patch one is omitted when the release is immediate (exploited
    in the wild). Whether a patch already exists is for the caller to decide."""
    found = [Reminder("predisclosure_due", timeline.predisclosure_at)]
    release_day = datetime.combine(
        timeline.public_at.date(), policy.release_day_reminder_time, tzinfo=UTC
    )
    found.append(Reminder("release_day", min(release_day, timeline.public_at)))
    if timeline.public_basis != "exploited":
        warn_day = add_working_days(
            timeline.public_at.date(), -policy.no_patch_warning_working_days, policy.holidays
        )
        warn = datetime.combine(warn_day, policy.release_time, tzinfo=UTC)
        found.append(Reminder("no_patch", warn))
    found = [replace(r, at=max(r.at, timeline.arrival)) for r in found]
    return tuple(sorted(found, key=lambda r: (r.at, r.kind)))
