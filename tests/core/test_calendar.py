from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listbot.core.calendar.derivation import explain, replay
from listbot.core.calendar.embargo import (
    CalendarPolicy,
    apply_requested_date,
    default_timeline,
    exploited_in_the_wild,
    reminders,
)
from listbot.core.calendar.timeline import Reminder, Timeline
from listbot.core.calendar.working_days import (
    HolidayCalendar,
    add_working_days,
    is_working_day,
    next_working_day,
    previous_working_day,
    working_days_between,
)

NEW_YEARS_EVE = date(2026, 12, 31)
GB = HolidayCalendar.build("GB", None, [NEW_YEARS_EVE], range(2019, 2038))
GB_ONLY = HolidayCalendar.build("GB", None, [], range(2025, 2029))
POLICY = CalendarPolicy(holidays=GB)
PLAIN = CalendarPolicy()


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=UTC)


def last(timeline: Timeline, label: str) -> datetime:
    return [s for s in timeline.steps if s.label == label][-1].value


# --- holiday calendar -----------------------------------------------------------------


def test_build_gb_keeps_names_and_extra_dates() -> None:
    assert date(2026, 12, 25) in GB.dates
    assert GB.name(date(2026, 12, 25)) == "Christmas Day"
    assert GB.name(date(2026, 12, 28)) == "Boxing Day (observed)"
    assert GB.name(NEW_YEARS_EVE) == "configured holiday"
    assert GB.name(date(2026, 12, 29)) is None
    assert NEW_YEARS_EVE not in GB_ONLY.dates


def test_extra_date_on_a_country_holiday_keeps_both_names() -> None:
    cal = HolidayCalendar.build("GB", None, [date(2026, 12, 25)], range(2026, 2027))
    assert cal.name(date(2026, 12, 25)) == "Christmas Day; configured holiday"


def test_subdivision_changes_the_holidays() -> None:
    england = HolidayCalendar.build("GB", "ENG", [], range(2026, 2027))
    assert date(2026, 8, 31) in england.dates  # Late Summer Bank Holiday, not UK-wide
    assert date(2026, 8, 31) not in GB_ONLY.dates


@pytest.mark.parametrize(
    ("country", "subdivision", "extra"),
    [("XX", None, []), ("GB", "ZZ", []), (None, "ENG", []), (None, None, [utc(2026, 1, 2)])],
)
def test_build_refuses_bad_input(
    country: str | None, subdivision: str | None, extra: list[date]
) -> None:
    with pytest.raises(ValueError):
        HolidayCalendar.build(country, subdivision, extra, range(2026, 2027))


def test_explicit_dates_only_calendar_has_no_year_limit() -> None:
    cal = HolidayCalendar.build(None, None, [date(2031, 5, 6)], range(2026, 2027))
    assert not is_working_day(date(2031, 5, 6), cal)
    assert is_working_day(date(2040, 5, 7), cal)


def test_dates_outside_a_country_calendar_are_refused() -> None:
    with pytest.raises(ValueError, match="outside the holiday calendar"):
        is_working_day(date(2029, 12, 25), GB_ONLY)


# --- working days ---------------------------------------------------------------------


def test_is_working_day() -> None:
    assert is_working_day(date(2026, 12, 24), GB)
    assert not is_working_day(date(2026, 12, 25), GB)  # Christmas, a Friday
    assert not is_working_day(date(2026, 12, 26), PLAIN.holidays)  # Saturday
    assert is_working_day(date(2026, 12, 25), PLAIN.holidays)


def test_add_working_days_across_christmas_and_new_year() -> None:
    assert add_working_days(date(2026, 12, 24), 1, GB_ONLY) == date(2026, 12, 29)
    assert add_working_days(date(2026, 12, 30), 1, GB_ONLY) == date(2026, 12, 31)
    assert add_working_days(date(2026, 12, 30), 1, GB) == date(2027, 1, 4)
    assert add_working_days(date(2027, 1, 4), -1, GB) == date(2026, 12, 30)
    assert add_working_days(date(2026, 12, 29), -1, GB) == date(2026, 12, 24)
    assert add_working_days(date(2026, 12, 26), 0, GB) == date(2026, 12, 26)


def test_next_and_previous_working_day() -> None:
    assert next_working_day(date(2026, 12, 24), GB) == date(2026, 12, 29)
    assert next_working_day(date(2026, 12, 25), GB) == date(2026, 12, 29)
    assert previous_working_day(date(2027, 1, 1), GB) == date(2026, 12, 30)
    assert previous_working_day(date(2026, 12, 30), GB) == date(2026, 12, 29)


def test_working_days_between() -> None:
    # 29, 30 Dec and 4 Jan: 31 Dec is configured, 1 Jan a bank holiday.
    assert working_days_between(date(2026, 12, 24), date(2027, 1, 4), GB) == 3
    assert working_days_between(date(2027, 1, 4), date(2026, 12, 24), GB) == -3
    assert working_days_between(date(2026, 12, 24), date(2027, 1, 4), GB_ONLY) == 4
    assert working_days_between(date(2026, 12, 25), date(2026, 12, 25), GB) == 0


# --- policy ---------------------------------------------------------------------------


def test_policy_defaults() -> None:
    assert (PLAIN.predisclosure_working_days, PLAIN.public_working_days_after_predisclosure) == (
        5,
        10,
    )
    assert PLAIN.release_time == time(12, 0)
    assert PLAIN.no_patch_warning_working_days == 10


@pytest.mark.parametrize(
    "kwargs",
    [
        {"predisclosure_working_days": 0},
        {"public_working_days_after_predisclosure": 0},
        {"no_patch_warning_working_days": -1},
        {"release_time": time(12, 0, tzinfo=timezone(timedelta(hours=1)))},
    ],
)
def test_policy_refuses_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        CalendarPolicy(**kwargs)  # type: ignore[arg-type]


def test_policy_accepts_utc_aware_times_as_wall_times() -> None:
    assert CalendarPolicy(release_time=time(14, 0, tzinfo=UTC)).release_time == time(14, 0)


# --- default timeline -----------------------------------------------------------------


def test_default_timeline_of_the_design_example() -> None:
    t = default_timeline(utc(2026, 11, 25, 9, 14), PLAIN)
    assert t.predisclosure_at == utc(2026, 12, 2, 12)
    assert t.public_at == utc(2026, 12, 16, 12)
    assert t.public_basis == "default"
    pre = t.steps[1].derivation
    assert "2026-11-25 (Wed) +5 working days" in pre
    assert "skipping Sat 2026-11-28, Sun 2026-11-29" in pre
    assert "= 2026-12-02 (Wed); at 12:00:00 UTC" in pre


def test_default_timeline_across_christmas_with_gb_and_extra_holidays() -> None:
    arrival = utc(2026, 12, 17, 9, 14)
    t = default_timeline(arrival, POLICY)
    assert t.predisclosure_at == utc(2026, 12, 24, 12)
    assert t.public_at == utc(2027, 1, 13, 12)
    text = "\n".join(explain(t))
    for name in ("Christmas Day", "Boxing Day (observed)", "configured holiday", "New Year's Day"):
        assert name in text
    # Without the explicit New Year's Eve the release is a day earlier.
    assert default_timeline(arrival, CalendarPolicy(holidays=GB_ONLY)).public_at == utc(
        2027, 1, 12, 12
    )


def test_arrival_on_a_weekend_counts_from_that_day() -> None:
    t = default_timeline(utc(2026, 11, 28, 22, 0), PLAIN)  # Saturday
    assert t.predisclosure_at == utc(2026, 12, 4, 12)  # Mon..Fri
    assert t.public_at == utc(2026, 12, 18, 12)


def test_day_zero_is_the_utc_date_of_arrival() -> None:
    # 23:30 in New York on Wednesday is already Thursday in UTC.
    arrival = datetime(2026, 11, 25, 23, 30, tzinfo=ZoneInfo("America/New_York"))
    t = default_timeline(arrival, PLAIN)
    assert t.arrival == utc(2026, 11, 26, 4, 30)
    assert t.predisclosure_at == utc(2026, 12, 3, 12)


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 11, 25, 9, 14)
    t = default_timeline(utc(2026, 11, 25, 9, 14), PLAIN)
    with pytest.raises(ValueError, match="naive"):
        default_timeline(naive, PLAIN)
    with pytest.raises(ValueError, match="naive"):
        apply_requested_date(t, naive, False, PLAIN)
    with pytest.raises(ValueError, match="naive"):
        exploited_in_the_wild(t, naive)


# --- requested dates ------------------------------------------------------------------


def test_earlier_request_on_a_working_day_is_taken_as_is() -> None:
    t = default_timeline(utc(2026, 11, 25, 9, 14), PLAIN)
    r = apply_requested_date(t, utc(2026, 12, 14, 15, 0), False, PLAIN)
    assert r.public_at == utc(2026, 12, 14, 15, 0)
    assert r.public_basis == "requested"
    # Pulled earlier to keep 10 working days: Mon 14 Dec - 10 = Mon 30 Nov.
    assert r.predisclosure_at == utc(2026, 11, 30, 12)
    assert "earlier than the planned 2026-12-16T12:00:00Z" in r.steps[-2].derivation
    assert "pulled earlier to keep" in r.steps[-1].derivation


def test_earlier_request_on_christmas_moves_to_the_previous_working_day() -> None:
    t = default_timeline(utc(2026, 12, 10, 8, 0), POLICY)
    assert t.public_at == utc(2027, 1, 6, 12)
    r = apply_requested_date(t, utc(2026, 12, 25, 10, 0), False, POLICY)
    assert r.public_at == utc(2026, 12, 24, 10, 0)
    step = r.steps[-2]
    assert "Fri 2026-12-25 (Christmas Day) is not a working day" in step.derivation
    assert "moved to the previous one" in step.derivation


def test_request_too_early_for_the_usual_gap_pulls_predisclosure_to_arrival() -> None:
    arrival = utc(2026, 12, 17, 9, 14)
    t = default_timeline(arrival, POLICY)
    r = apply_requested_date(t, utc(2027, 1, 3, 8, 0), False, POLICY)  # a Sunday
    assert r.public_at == utc(2026, 12, 30, 8, 0)  # 31 Dec and 1 Jan are holidays
    assert r.predisclosure_at == arrival
    assert "as soon as the report arrived" in r.steps[-1].derivation


def test_weekend_arrival_and_weekend_request_release_on_monday() -> None:
    arrival = utc(2026, 11, 28, 10, 0)  # Saturday
    t = default_timeline(arrival, PLAIN)
    r = apply_requested_date(t, utc(2026, 11, 29, 9, 0), False, PLAIN)  # Sunday
    assert r.public_at == utc(2026, 11, 30, 9, 0)
    assert "previous one precedes day 0" in r.steps[-2].derivation
    # Day 0 is not a working day either: the pre-disclosure goes with the first one.
    assert r.predisclosure_at == utc(2026, 11, 30, 9, 0)
    assert r.predisclosure_at <= r.public_at


def test_later_request_needs_the_team() -> None:
    t = default_timeline(utc(2026, 11, 25, 9, 14), PLAIN)
    later = utc(2027, 1, 20, 12, 0)
    refused = apply_requested_date(t, later, False, PLAIN)
    assert (refused.public_at, refused.predisclosure_at) == (t.public_at, t.predisclosure_at)
    assert refused.public_basis == "default"
    assert "did not accept a later date" in refused.steps[-1].derivation
    accepted = apply_requested_date(t, later, True, PLAIN)
    assert accepted.public_at == later
    assert accepted.predisclosure_at == t.predisclosure_at
    assert "accepted by the team" in accepted.steps[-2].derivation
    assert accepted.steps[-1].derivation.startswith("stays")


def test_later_accepted_request_on_a_saturday_moves_to_friday() -> None:
    t = default_timeline(utc(2026, 11, 25, 9, 14), PLAIN)
    r = apply_requested_date(t, utc(2027, 1, 23, 12, 0), True, PLAIN)
    assert r.public_at == utc(2027, 1, 22, 12, 0)


def test_request_equal_to_the_plan_changes_nothing() -> None:
    t = default_timeline(utc(2026, 11, 25, 9, 14), PLAIN)
    r = apply_requested_date(t, t.public_at, False, PLAIN)
    assert (r.public_at, r.public_basis) == (t.public_at, "default")
    assert "unchanged" in r.steps[-1].derivation


def test_request_before_arrival_is_refused() -> None:
    t = default_timeline(utc(2026, 11, 25, 9, 14), PLAIN)
    with pytest.raises(ValueError, match="precedes the arrival"):
        apply_requested_date(t, utc(2026, 11, 25, 9, 13), False, PLAIN)


# --- exploited in the wild ------------------------------------------------------------


def test_exploited_in_the_wild_releases_now_even_on_a_sunday() -> None:
    t = default_timeline(utc(2026, 11, 25, 9, 14), PLAIN)
    now = utc(2026, 11, 29, 17, 3)  # Sunday, before the pre-disclosure
    r = exploited_in_the_wild(t, now)
    assert (r.public_at, r.predisclosure_at, r.public_basis) == (now, now, "exploited")
    assert "exploited in the wild: release now" in r.steps[-2].derivation


def test_exploited_after_predisclosure_keeps_it() -> None:
    t = default_timeline(utc(2026, 11, 25, 9, 14), PLAIN)
    r = exploited_in_the_wild(t, utc(2026, 12, 7, 9, 0))
    assert r.predisclosure_at == t.predisclosure_at
    assert r.public_at == utc(2026, 12, 7, 9, 0)


def test_exploited_after_the_planned_release_keeps_it() -> None:
    t = default_timeline(utc(2026, 11, 25, 9, 14), PLAIN)
    r = exploited_in_the_wild(t, utc(2026, 12, 20, 9, 0))
    assert (r.public_at, r.public_basis) == (t.public_at, "default")
    assert "already due" in r.steps[-1].derivation


# --- reminders ------------------------------------------------------------------------


def test_reminders_of_the_default_timeline() -> None:
    t = default_timeline(utc(2026, 11, 25, 9, 14), PLAIN)
    keys = [r.key for r in reminders(t, PLAIN)]
    assert keys == [
        "no_patch:2026-12-02T12:00:00Z",
        "predisclosure_due:2026-12-02T12:00:00Z",
        "release_day:2026-12-16T00:00:00Z",
    ]


def test_reminders_across_new_year_and_a_configured_reminder_time() -> None:
    policy = CalendarPolicy(
        holidays=GB, no_patch_warning_working_days=3, release_day_reminder_time=time(6, 30)
    )
    t = default_timeline(utc(2026, 12, 17, 9, 14), policy)
    got = {r.kind: r.at for r in reminders(t, policy)}
    assert got == {
        "predisclosure_due": utc(2026, 12, 24, 12),
        "no_patch": utc(2027, 1, 8, 12),  # 13 Jan - 3 working days
        "release_day": utc(2027, 1, 13, 6, 30),
    }


def test_no_patch_reminder_is_clamped_to_arrival_and_dropped_when_exploited() -> None:
    arrival = utc(2026, 11, 25, 9, 14)
    t = apply_requested_date(default_timeline(arrival, PLAIN), utc(2026, 11, 27), False, PLAIN)
    got = {r.kind: r.at for r in reminders(t, PLAIN)}
    assert got["no_patch"] == arrival
    assert got["release_day"] == utc(2026, 11, 27)
    e = exploited_in_the_wild(default_timeline(arrival, PLAIN), utc(2026, 11, 26, 15))
    assert {r.kind for r in reminders(e, PLAIN)} == {"predisclosure_due", "release_day"}


def test_reminder_key_is_stable_and_distinct_per_instant() -> None:
    a = Reminder("no_patch", utc(2026, 12, 2, 12))
    assert a.key == Reminder("no_patch", utc(2026, 12, 2, 12)).key
    assert a.key != Reminder("no_patch", utc(2026, 12, 3, 12)).key
    assert a.key != Reminder("release_day", utc(2026, 12, 2, 12)).key


# --- explanation and storage ----------------------------------------------------------


def test_explain_lines_replay_to_their_values() -> None:
    t = apply_requested_date(
        default_timeline(utc(2026, 12, 17, 9, 14), POLICY), utc(2027, 1, 3), False, POLICY
    )
    lines = explain(t)
    assert len(lines) == len(t.steps) + 2
    for line, step in zip(lines, t.steps, strict=False):
        assert line.startswith(f"{step.label}: ")
        assert replay(line) == step.value
    assert lines[-1] == "=> public release 2026-12-30T00:00:00Z (requested)"


def test_replay_needs_a_clause() -> None:
    with pytest.raises(ValueError):
        replay("public release: tomorrow")


def test_replay_follows_the_listed_skips_only() -> None:
    line = "x [replay from=2026-12-24 add=2 skip=2026-12-25,2026-12-26 at=12:00:00]"
    assert replay(line) == utc(2026, 12, 28, 12)
    assert replay(line.replace("add=2", "add=-2")) == utc(2026, 12, 22, 12)


def test_timeline_round_trips_through_json() -> None:
    t = exploited_in_the_wild(
        apply_requested_date(
            default_timeline(utc(2026, 12, 17, 9, 14, 5, 123), POLICY),
            utc(2027, 1, 3),
            False,
            POLICY,
        ),
        utc(2026, 12, 20, 1, 2, 3, 456789),
    )
    data = json.loads(json.dumps(t.to_dict()))
    assert data["public_at"] == "2026-12-20T01:02:03.456789Z"
    assert Timeline.from_dict(data) == t


@pytest.mark.parametrize(
    ("key", "value"),
    [("public_at", "2026-12-20T01:02:03"), ("public_basis", "soon"), ("arrival", 5)],
)
def test_from_dict_refuses_bad_values(key: str, value: object) -> None:
    data = default_timeline(utc(2026, 11, 25, 9, 14), PLAIN).to_dict()
    data[key] = value
    with pytest.raises(ValueError):
        Timeline.from_dict(data)


# --- properties -----------------------------------------------------------------------

ZONES = [
    "UTC",
    "Europe/London",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/St_Johns",
    "Pacific/Kiritimati",
]
# Instants of DST changes in several zones (2026): arrivals are drawn around them.
DST_CHANGES = [
    utc(2026, 3, 8, 7),
    utc(2026, 3, 29, 1),
    utc(2026, 10, 25, 1),
    utc(2026, 11, 1, 6),
    utc(2026, 4, 4, 15),
    utc(2026, 10, 3, 16),
]

instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)
near_dst = st.builds(
    lambda base, minutes: base + timedelta(minutes=minutes),
    st.sampled_from(DST_CHANGES),
    st.integers(-36 * 60, 36 * 60),
)
days = st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31))
policies = st.sampled_from([PLAIN, POLICY, CalendarPolicy(2, 3, time(23, 59, 59), 7, holidays=GB)])


def on_working_days(t: Timeline, policy: CalendarPolicy) -> bool:
    return is_working_day(t.predisclosure_at.date(), policy.holidays) and is_working_day(
        t.public_at.date(), policy.holidays
    )


def explanation_reproduces(t: Timeline, policy: CalendarPolicy) -> None:
    for line, step in zip(explain(t), t.steps, strict=False):
        assert replay(line) == step.value
        # The skipped dates listed must really be non-working days.
        skip = line.rsplit("skip=", 1)[1].split(" ", 1)[0]
        for d in filter(None, skip.split(",")):
            assert not is_working_day(date.fromisoformat(d), policy.holidays)
    assert last(t, "pre-disclosure") == t.predisclosure_at
    assert last(t, "public release") == t.public_at


@settings(max_examples=200)
@given(instants | near_dst, policies)
def test_default_timeline_lands_on_working_days_and_replays(
    arrival: datetime, policy: CalendarPolicy
) -> None:
    t = default_timeline(arrival, policy)
    assert on_working_days(t, policy)
    assert arrival < t.predisclosure_at < t.public_at
    assert t.predisclosure_at.time() == t.public_at.time() == policy.release_time
    explanation_reproduces(t, policy)
    assert Timeline.from_dict(json.loads(json.dumps(t.to_dict()))) == t


@settings(max_examples=200)
@given(instants | near_dst, st.sampled_from(ZONES), st.sampled_from(ZONES))
def test_local_time_zones_have_no_effect(arrival: datetime, zone_a: str, zone_b: str) -> None:
    a = default_timeline(arrival.astimezone(ZoneInfo(zone_a)), POLICY)
    b = default_timeline(arrival.astimezone(ZoneInfo(zone_b)), POLICY)
    assert a.to_dict() == b.to_dict() == default_timeline(arrival, POLICY).to_dict()
    req = arrival + timedelta(days=3, hours=5)
    ra = apply_requested_date(a, req.astimezone(ZoneInfo(zone_a)), False, POLICY)
    rb = apply_requested_date(b, req.astimezone(ZoneInfo(zone_b)), False, POLICY)
    assert ra.to_dict() == rb.to_dict()
    assert reminders(ra, POLICY) == reminders(rb, POLICY)


@given(days, st.integers(-60, 60))
def test_add_working_days_round_trips(d: date, n: int) -> None:
    if not is_working_day(d, GB):
        d = next_working_day(d, GB)
    there = add_working_days(d, n, GB)
    assert is_working_day(there, GB) or n == 0
    assert add_working_days(there, -n, GB) == d
    assert working_days_between(d, there, GB) == n


@given(days, days)
def test_working_days_between_agrees_with_add(a: date, b: date) -> None:
    n = working_days_between(a, b, GB)
    if is_working_day(b, GB):
        assert add_working_days(a, n, GB) == b
    assert n >= 0 if a <= b else n <= 0
    assert abs(n) <= abs((b - a).days)


@settings(max_examples=300)
@given(instants | near_dst, policies, st.data())
def test_earlier_requested_date_always_wins_on_a_working_day(
    arrival: datetime, policy: CalendarPolicy, data: st.DataObject
) -> None:
    t = default_timeline(arrival, policy)
    span = (t.public_at - arrival) // timedelta(microseconds=1)
    req = arrival + timedelta(microseconds=data.draw(st.integers(0, span - 1)))
    r = apply_requested_date(t, req, False, policy)
    assert r.public_at < t.public_at
    assert r.public_basis == "requested"
    assert on_working_days(r, policy)
    back = previous_working_day(req.date(), policy.holidays)
    if is_working_day(req.date(), policy.holidays):
        assert r.public_at == req
    elif datetime.combine(back, req.time(), tzinfo=UTC) >= arrival:
        assert r.public_at == datetime.combine(back, req.time(), tzinfo=UTC)
    else:  # only when going back would precede the report: the next working day
        assert r.public_at.date() == next_working_day(req.date(), policy.holidays)
    assert arrival <= r.predisclosure_at <= r.public_at
    assert r.predisclosure_at <= t.predisclosure_at
    explanation_reproduces(r, policy)


@given(instants, st.integers(0, 24 * 90), st.booleans(), policies)
def test_any_request_keeps_the_timeline_sound(
    arrival: datetime, hours: int, accepts: bool, policy: CalendarPolicy
) -> None:
    t = default_timeline(arrival, policy)
    r = apply_requested_date(t, arrival + timedelta(hours=hours), accepts, policy)
    assert on_working_days(r, policy)
    assert arrival <= r.predisclosure_at <= r.public_at
    if not accepts:
        assert r.public_at <= t.public_at
    explanation_reproduces(r, policy)
    assert Timeline.from_dict(r.to_dict()) == r
    for reminder in reminders(r, policy):
        assert arrival <= reminder.at <= r.public_at
