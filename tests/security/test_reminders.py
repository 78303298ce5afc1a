"""The reminder dispatcher's calendar cache: one build per year, the same reminders."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime

from listbot.core.calendar.embargo import CalendarPolicy, default_timeline
from listbot.core.case_model import Case, CaseState
from listbot.security.reminders import PolicyFor, due_for
from listbot.settings import Settings


def case(n: int, arrival: datetime, policy_for: PolicyFor, *, patch: bool = False,
         state: CaseState = CaseState.TRIAGED) -> Case:
    timeline = default_timeline(arrival, policy_for(arrival.year))
    return Case(id=f"SEC-{arrival.year}-{n:04d}", state=state, reporter="r@example.net",
                reporter_fingerprint=None, subject="Bug", opened_at=arrival,
                timeline=timeline, embargo_at=timeline.public_at, cve_ids=(), advisory=None,
                credits="", notes="", patch_attached=patch)


def test_cached_policies_give_the_same_reminders_and_build_once_per_year(
        make_config: Callable[..., Settings]) -> None:
    cases_cfg = make_config({"cases": {"holiday_country": "GB"}}).cases
    fresh = cases_cfg.policy_for
    # Across Christmas and New Year, where the holidays move the dates.
    arrivals = [datetime(2025, 12, d, 9, tzinfo=UTC) for d in (15, 19, 22, 23)] + [
        datetime(2026, 1, d, 9, tzinfo=UTC) for d in (2, 5)]
    cases = [case(i, a, fresh, patch=i % 2 == 0) for i, a in enumerate(arrivals)]
    cases.append(case(99, arrivals[0], fresh, state=CaseState.PUBLIC))
    built: list[int] = []

    def build(year: int) -> CalendarPolicy:
        built.append(year)
        return fresh(year)

    cache = functools.cache(build)  # as the dispatcher keeps its policies
    for _ in range(2):  # two dispatches
        for c in cases:
            assert due_for(c, cache) == due_for(c, fresh)
    assert sorted(built) == [2025, 2026]
    assert any(due_for(c, cache) for c in cases)  # the comparison compared something
