"""Working days: weekends and holidays, counted forwards and backwards."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property

import holidays as holidays_lib

ONE_DAY = timedelta(days=1)
_SATURDAY = 5


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


def is_working_day(d: date, cal: HolidayCalendar) -> bool:
    if cal.covers is not None and d.year not in cal.covers:
        raise ValueError(
            f"{d} is outside the holiday calendar "
            f"({cal.covers.start}-{cal.covers.stop - 1}); rebuild it with more years"
        )
    return d.weekday() < _SATURDAY and d not in cal.dates


def walk_working_days(start: date, n: int, cal: HolidayCalendar) -> tuple[date, tuple[date, ...]]:
    """Move n working days from start; also return the non-working days passed over."""
    step = ONE_DAY if n >= 0 else -ONE_DAY
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
    return walk_working_days(start, n, cal)[0]


def next_working_day(d: date, cal: HolidayCalendar) -> date:
    """The first working day strictly after d."""
    return add_working_days(d, 1, cal)


def previous_working_day(d: date, cal: HolidayCalendar) -> date:
    """The last working day strictly before d."""
    return add_working_days(d, -1, cal)


def working_days_between(a: date, b: date, cal: HolidayCalendar) -> int:
    """Working days in (a, b], or minus those in [b, a) when b < a, so that
    add_working_days(a, working_days_between(a, b)) == b for every working day b."""
    lo, hi, sign = (a, b, 1) if a <= b else (b - ONE_DAY, a - ONE_DAY, -1)
    count, d = 0, lo
    while d < hi:
        d += ONE_DAY
        count += is_working_day(d, cal)
    return sign * count
