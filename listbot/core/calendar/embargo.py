"""The embargo rules (docs/design.md "The disclosure calendar"): the default timeline,
a requested date, an exploit in the wild, and the reminders a timeline sets."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta

from listbot.core.calendar.derivation import describe_day, fixed_step, walked_step
from listbot.core.calendar.timeline import Reminder, Step, Timeline, utc_iso
from listbot.core.calendar.working_days import HolidayCalendar, add_working_days, is_working_day
from listbot.core.clock import ensure_utc


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


def default_timeline(arrival: datetime, policy: CalendarPolicy) -> Timeline:
    arrival = ensure_utc(arrival)
    cal, at = policy.holidays, policy.release_time
    day0 = fixed_step("day 0", arrival, f"arrival of the report {utc_iso(arrival)} ({arrival:%a});")
    pre = walked_step(
        "pre-disclosure", arrival.date(), policy.predisclosure_working_days, at, cal, why="day 0 "
    )
    public = walked_step(
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
        return fixed_step("public release", req, f"{why}; a working day, released as requested")
    back = walked_step(
        "public release",
        d,
        -1,
        req.time(),
        cal,
        why=f"{why}; {describe_day(d, cal)} is not a working day, moved to the previous one: ",
    )
    if back.value >= timeline.arrival:
        return back
    # Going back would release before the report arrived: the request falls in the
    # non-working days right after day 0, so the first working day after it is the earliest.
    return walked_step(
        "public release",
        d,
        1,
        req.time(),
        cal,
        why=f"{why}; {describe_day(d, cal)} is not a working day and the previous one precedes "
        "day 0, moved to the next one: ",
    )


def _pulled_predisclosure(timeline: Timeline, public: datetime, policy: CalendarPolicy) -> Step:
    cal, gap = policy.holidays, policy.public_working_days_after_predisclosure
    keep = walked_step(
        "pre-disclosure",
        public.date(),
        -gap,
        policy.release_time,
        cal,
        why=f"{gap} working days before the new public release: ",
    )
    if keep.value >= timeline.predisclosure_at:
        return fixed_step(
            "pre-disclosure",
            timeline.predisclosure_at,
            f"stays: already at least {gap} working days before the public release;",
        )
    if keep.value >= timeline.arrival:
        return replace(keep, derivation="pulled earlier to keep " + keep.derivation)
    day0 = timeline.arrival.date()
    if is_working_day(day0, cal):
        soonest = fixed_step(
            "pre-disclosure",
            timeline.arrival,
            f"pulled earlier to day 0: fewer than {gap} working days remain, "
            "so as soon as the report arrived;",
        )
    else:
        soonest = walked_step(
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
    return fixed_step("pre-disclosure", public, "pulled earlier to the public release itself;")


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
    why = f"discoverer requested {utc_iso(req)} ({req:%a})"
    if req == planned:
        note = fixed_step("public release", planned, f"{why}, the planned release; unchanged")
        return replace(timeline, steps=(*timeline.steps, note))
    if req > planned and not team_accepts_later:
        note = fixed_step(
            "public release",
            planned,
            f"{why}, later than the planned {utc_iso(planned)}; the team did not "
            "accept a later date, so the planned release stays",
        )
        return replace(timeline, steps=(*timeline.steps, note))
    why += (
        f", earlier than the planned {utc_iso(planned)}"
        if req < planned
        else f", later than the planned {utc_iso(planned)}, accepted by the team"
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
        note = fixed_step(
            "public release",
            timeline.public_at,
            f"exploited in the wild reported at {utc_iso(now)}; the planned release "
            "is already due, so it stays",
        )
        return replace(timeline, steps=(*timeline.steps, note))
    public = fixed_step(
        "public release", now, f"exploited in the wild: release now, {utc_iso(now)};"
    )
    steps = (*timeline.steps, public)
    pre = timeline.predisclosure_at
    if now < pre:
        pre = now
        steps += (fixed_step("pre-disclosure", now, "brought forward with the release to now;"),)
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
