"""`listbot case ...` against a real store, and the [cases] section's checks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from listbot.cli import common, main, root
from listbot.core.calendar.derivation import replay
from listbot.core.calendar.embargo import default_timeline
from listbot.core.case_model import CaseState
from listbot.core.clock import FakeClock
from listbot.core.errors import ConfigError
from listbot.core.store import Store
from listbot.core.store import cases as case_store
from listbot.settings import Settings
from tests import pgp_fixtures

ARRIVAL = datetime(2026, 11, 25, 9, tzinfo=UTC)


async def seed(cfg: Settings) -> None:
    store = Store.open(cfg.core.database_url, FakeClock(ARRIVAL))
    try:
        await store.upgrade()
        async with store.unit() as tx:
            timeline = default_timeline(ARRIVAL, cfg.cases.policy_for(2026))
            await case_store.open_case(tx, case_id="SEC-2026-0001", reporter="r@example.net",
                                       subject="Bug", timeline=timeline,
                                       reporter_fingerprint=None)
    finally:
        await store.close()


def invoke(cfg: Settings, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setattr(common.settings_mod, "load", lambda _path: cfg)
    return CliRunner().invoke(root, ["--config", "x.toml", *args], catch_exceptions=False)


def test_case_commands(make_config: Callable[..., Settings],
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
        store = Store.open(cfg.core.database_url, FakeClock(ARRIVAL))
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
def test_cases_config_problems_name_their_key(make_config: Callable[..., Settings],
                                              table: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_config({"cases": table})
    assert any(needle in p for p in err.value.problems)


PARTY = "psirt@vendor.example"


@pytest.fixture
def party_home() -> Iterator[Path]:
    """Where the party (and impostors) make their keys: the daemon's keyring knows none."""
    home = pgp_fixtures.new_home()
    try:
        yield home
    finally:
        pgp_fixtures.remove_home(home)


def exported(tmp_path: Path, home: Path, *fprs: str) -> str:
    path = tmp_path / f"{fprs[0]}.asc"
    path.write_bytes(b"".join(pgp_fixtures.export_public(home, f) for f in fprs))
    return str(path)


def exit_code(cfg: Settings, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """`listbot ARGS` as the shell runs it: errors become sysexits codes."""
    monkeypatch.setattr(common.settings_mod, "load", lambda _path: cfg)
    with pytest.raises(SystemExit) as exited:
        main(["--config", "x.toml", *args])
    return int(exited.value.code or 0)


async def party_keys(cfg: Settings) -> dict[str, str | None]:
    store = Store.open(cfg.core.database_url, FakeClock(ARRIVAL))
    try:
        async with store.unit() as tx:
            return {p.address: p.fingerprint
                    for p in await case_store.parties(tx, "SEC-2026-0001")}
    finally:
        await store.close()


def test_a_party_key_must_name_the_party_exactly(
        make_config: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], tmp_path: Path, pgp_home: Path,
        party_home: Path) -> None:
    cfg = make_config({"pgp": {"home": str(pgp_home)}})
    asyncio.run(seed(cfg))
    make = pgp_fixtures.make_key
    # Addresses that contain the party's, or that it contains: never its key.
    impostors = [make(party_home, f"PSIRT <{PARTY}.evil>"),
                 make(party_home, f"PSIRT <eve-{PARTY}>"),
                 make(party_home, "PSIRT <vendor.example>")]
    expired = make(party_home, f"PSIRT <{PARTY}>", expire="2021-01-01",
                   faked_time="20200101T000000!")
    good = make(party_home, f"Vendor PSIRT <{PARTY}>")
    for fpr in impostors:
        assert exit_code(cfg, monkeypatch, "case", "add-party", "SEC-2026-0001", PARTY,
                         "--key", exported(tmp_path, party_home, fpr)) == 65
        assert f"key {fpr} has no user id for {PARTY}" in capsys.readouterr().err
    assert asyncio.run(party_keys(cfg)) == {}  # a refused key adds no party
    assert exit_code(cfg, monkeypatch, "case", "add-party", "SEC-2026-0001", PARTY) == 0
    refused = {
        impostors[0]: f"has no user id for {PARTY}",
        expired: "expired",
        f"{good}-and-another": "not exactly one",
    }
    for fpr, why in refused.items():
        fprs = (good, impostors[1]) if fpr.endswith("-and-another") else (fpr,)
        assert exit_code(cfg, monkeypatch, "case", "set-party-key", "SEC-2026-0001", PARTY,
                         "--file", exported(tmp_path, party_home, *fprs)) == 65
        assert why in capsys.readouterr().err
    assert asyncio.run(party_keys(cfg)) == {PARTY: None}
    known = pgp_fixtures.gpg(pgp_home, "--list-keys", "--with-colons").stdout.decode()
    assert not any(f in known for f in [*impostors, expired, good])  # nothing imported
    assert exit_code(cfg, monkeypatch, "case", "set-party-key", "SEC-2026-0001", PARTY,
                     "--file", exported(tmp_path, party_home, good), "--as", "alice") == 0
    assert good in capsys.readouterr().out
    assert asyncio.run(party_keys(cfg)) == {PARTY: good}
    shown = invoke(cfg, monkeypatch, "case", "show", "SEC-2026-0001", "--json").output
    assert f'"{PARTY}": "{good}"' in shown

    async def audited() -> list[dict[str, Any]]:
        store = Store.open(cfg.core.database_url, FakeClock(ARRIVAL))
        try:
            return [e.detail for e in await store.audit_listing(subject="case:SEC-2026-0001")
                    if e.action == "case.party_key_set" and e.actor == "alice"]
        finally:
            await store.close()
    assert [d["fingerprint"] for d in asyncio.run(audited())] == [good]
