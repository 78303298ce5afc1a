"""`listbot case ...` against a real store, and the [cases] section's checks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner

from listbot.calendar import default_timeline, replay
from listbot.case_model import CaseState
from listbot.cases_config import parse_cases
from listbot.cli import common, root
from listbot.clock import FakeClock
from listbot.config import Config
from listbot.errors import ConfigError
from listbot.store import Store
from listbot.store import cases as case_store

ARRIVAL = datetime(2026, 11, 25, 9, tzinfo=UTC)


async def seed(cfg: Config) -> None:
    store = Store.open(cfg.database_url, FakeClock(ARRIVAL))
    try:
        await store.upgrade()
        async with store.unit() as tx:
            timeline = default_timeline(ARRIVAL, parse_cases(cfg).policy_for(2026))
            await case_store.open_case(tx, case_id="SEC-2026-0001", reporter="r@example.net",
                                       subject="Bug", timeline=timeline,
                                       reporter_fingerprint=None)
    finally:
        await store.close()


def invoke(cfg: Config, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setattr(common.config_mod, "load", lambda _path: cfg)
    return CliRunner().invoke(root, ["--config", "x.toml", *args], catch_exceptions=False)


def test_case_commands(make_config: Callable[..., Config],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = make_config({"cases": {"holidays": ["2026-11-30"]}})
    asyncio.run(seed(cfg))
    out = invoke(cfg, monkeypatch, "case", "timeline", "SEC-2026-0001", "--explain").output
    lines = out.strip().splitlines()
    assert "2026-11-30" in out and "configured holiday" in out
    # The explanation reproduces every date it shows.
    step_lines = [line for line in lines if "[replay" in line]
    assert step_lines
    for line in step_lines:
        shown = line.split(": ", 1)[1].split(" ", 1)[0]
        assert replay(line).isoformat().replace("+00:00", "Z") == shown
    assert "2026-12-03T12:00:00Z" in lines[-2]  # the holiday pushed it one day
    out = invoke(cfg, monkeypatch, "case", "set", "SEC-2026-0001", "--state", "triaged",
                 "--cve", "cve-2026-1234", "--requested-date", "2026-12-11T12:00:00Z",
                 "--as", "alice").output
    assert "triaged" in out and "CVE-2026-1234" in out and "2026-12-11T12:00" in out
    assert invoke(cfg, monkeypatch, "case", "add-party", "SEC-2026-0001",
                  "PSIRT@Vendor.example").exit_code == 0
    shown = invoke(cfg, monkeypatch, "case", "show", "SEC-2026-0001", "--json").output
    assert "psirt@vendor.example" in shown
    listing = invoke(cfg, monkeypatch, "case", "list", "--state", "triaged").output
    assert "SEC-2026-0001" in listing

    async def audited() -> set[str]:
        store = Store.open(cfg.database_url, FakeClock(ARRIVAL))
        try:
            entries = await store.audit_listing(subject="case:SEC-2026-0001")
            assert any(e.actor == "alice" and "state" in e.detail for e in entries)
            async with store.unit() as tx:
                case = await case_store.get_case(tx, "SEC-2026-0001")
                assert case.state is CaseState.TRIAGED
            return {e.action for e in entries}
        finally:
            await store.close()
    assert {"case.opened", "case.set", "case.party_added"} <= asyncio.run(audited())
    bad = CliRunner().invoke(root, ["--config", "x.toml", "case", "show", "SEC-2026-0999"])
    assert bad.exit_code != 0


@pytest.mark.parametrize(("table", "needle"), [
    ({"prefix": "sec"}, "cases.prefix"),
    ({"holidays": ["someday"]}, "cases.holidays[0]"),
    ({"release_time": "noon"}, "cases.release_time"),
    ({"encrypt_team_copies": True}, "cases.encrypt_team_copies"),
    ({"holiday_country": "XX"}, "cases.holiday_country"),
    ({"typo": 1}, "cases.typo"),
])
def test_cases_config_problems_name_their_key(make_config: Callable[..., Config],
                                              table: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_cases(make_config({"cases": table}))
    assert any(needle in p for p in err.value.problems)
