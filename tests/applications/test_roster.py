"""The roster: CLI decisions and export, keys, expiry warnings, deliverability."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from listbot.app import App
from listbot.applications.bounces import should_alert
from listbot.applications.checklist import check_application
from listbot.applications.extract import extract_application
from listbot.applications.member_watch import MemberWatch
from listbot.applications.state import checklist_to_json, fields_to_json, plain_text
from listbot.cli import common, root
from listbot.core.calendar.embargo import default_timeline
from listbot.core.case_model import CaseState
from listbot.core.clock import FakeClock
from listbot.core.errors import Refused
from listbot.core.mail.keyring import open_keyring
from listbot.core.store import Store
from listbot.core.store import applications as app_ops
from listbot.core.store import cases as case_store
from listbot.settings import Settings
from tests import pgp_fixtures
from tests.application_helpers import app_config, example
from tests.conftest import START, wait_for
from tests.daemon import MEMBERS, lmtp_send, post, running, settle
from tests.pgp_fixtures import PgpKeys
from tests.sink import Sink

EXAMPLES = {"free_cloud_narrative.eml": "nimbus-cloud.example",
            "blog_and_video.eml": "orbitvps.example"}


async def seed(cfg: Settings) -> None:
    """Two applications as the handler would have stored them: complete, incomplete."""
    store = Store.open(cfg.core.database_url, FakeClock(START))
    policy = cfg.applications.policy
    try:
        await store.upgrade()
        async with store.unit() as tx:
            for name, domain in EXAMPLES.items():
                fields = extract_application(plain_text(example(name)), policy)
                checklist = check_application(fields, policy)
                app_id = await app_ops.create(
                    tx, list_name="applications", org_key=domain,
                    organisation=fields.organisation, sender=f"someone@{domain}",
                    fields=fields_to_json(fields), checklist=checklist_to_json(checklist),
                    complete=checklist.complete, now=tx.now)
                from listbot.core.store import decisions as decision_ops
                await decision_ops.open_item(tx, "application", str(app_id),
                                             "applications", tx.now)
    finally:
        await store.close()


def invoke(cfg: Settings, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setattr(common.settings_mod, "load", lambda _path: cfg)
    return CliRunner().invoke(root, ["--config", "x.toml", *args], catch_exceptions=False)


def test_cli_decisions_and_public_export(make_config: Callable[..., Settings],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = make_config({"project": {"name": "Xen"},
                       "applications": {"subscribers": ["reader@readers.example"]}})
    asyncio.run(seed(cfg))
    listing = invoke(cfg, monkeypatch, "applications", "list", "--json").output
    rows = json.loads(listing)
    assert [(r["id"], r["complete"]) for r in rows] == [(1, True), (2, False)]
    shown = invoke(cfg, monkeypatch, "applications", "show", "2").output
    assert "unacceptable" in shown and "a video" in shown
    # No discretion: the incomplete one cannot be accepted, not even from the shell.
    with pytest.raises(Refused, match="incomplete"):
        invoke(cfg, monkeypatch, "applications", "accept", "2", "--as", "alice")
    out = invoke(cfg, monkeypatch, "applications", "accept", "1", "--as", "alice").output
    assert "accept by alice" in out
    with pytest.raises(Refused, match="already decided by alice"):
        invoke(cfg, monkeypatch, "applications", "reject", "1", "changed", "my", "mind")
    invoke(cfg, monkeypatch, "applications", "reject", "2", "no", "provider", "evidence")
    # The shell commands run on the system clock: the changes are dated today (UTC).
    days = {datetime.now(UTC).date().isoformat()}
    invoke(cfg, monkeypatch, "members", "add", "Vendor Z", "security@vendor-z.example")
    invoke(cfg, monkeypatch, "members", "remove", "Vendor Z", "--reason", "asked to leave")
    exports = {fmt: invoke(cfg, monkeypatch, "members", "export", "--format", fmt).output
               for fmt in ("md", "json", "html")}
    days.add(datetime.now(UTC).date().isoformat())
    for fmt, text in exports.items():
        assert "Nimbus Cloud GmbH" in text, fmt
        assert "Added Nimbus Cloud GmbH" in text and "Removed Vendor Z" in text, fmt
        assert "@" not in text and "asked to leave" not in text, fmt  # never addresses
        assert any(day in text for day in days), fmt
    data = json.loads(exports["json"])
    assert [m["name"] for m in data["members"]] == ["Nimbus Cloud GmbH"]
    assert [c["change"] for c in data["changes"]] == [
        "Added Nimbus Cloud GmbH", "Added Vendor Z", "Removed Vendor Z"]
    states = json.loads(invoke(cfg, monkeypatch, "applications", "list", "--state", "all",
                               "--json").output)
    assert [r["state"] for r in states] == ["accepted", "rejected"]


def test_export_escapes_hostile_names(make_config: Callable[..., Settings],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = make_config()
    invoke(cfg, monkeypatch, "members", "add", "<script>x</script> [a](b)",
           "security@hostile.example")
    html = invoke(cfg, monkeypatch, "members", "export", "--format", "html").output
    assert "<script>" not in html and "&lt;script&gt;" in html
    md = invoke(cfg, monkeypatch, "members", "export", "--format", "md").output
    assert "[a](b)" not in md


def _key_file(tmp_path: Path, home: Path, *fprs: str) -> Path:
    path = tmp_path / "key.asc"
    path.write_bytes(b"".join(pgp_fixtures.export_public(home, f) for f in fprs))
    return path


def test_set_key_shows_fingerprint_and_refuses_bad_keys(
        make_config: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        pgp_home: Path, pgp_keys: PgpKeys) -> None:
    cfg = make_config({"pgp": {"home": str(pgp_home)}})
    invoke(cfg, monkeypatch, "members", "add", "Vendor", "security@vendor.example")
    with pytest.raises(Refused, match="expired"):
        invoke(cfg, monkeypatch, "members", "set-key", "Vendor", "--file",
               str(_key_file(tmp_path, pgp_home, pgp_keys.expired)))
    with pytest.raises(Refused, match="not exactly one"):
        invoke(cfg, monkeypatch, "members", "set-key", "Vendor", "--file",
               str(_key_file(tmp_path, pgp_home, pgp_keys.member, pgp_keys.reporter)))
    out = invoke(cfg, monkeypatch, "members", "set-key", "Vendor", "--file",
                 str(_key_file(tmp_path, pgp_home, pgp_keys.member))).output
    assert pgp_keys.member in out and "does not expire" in out
    listed = json.loads(invoke(cfg, monkeypatch, "members", "list", "--json").output)
    assert listed[0]["fingerprint"] == pgp_keys.member


async def test_team_is_warned_once_per_key_before_expiry(
        make_config: Callable[..., Settings], clock: FakeClock, sink: Sink,
        pgp_home: Path, pgp_keys: PgpKeys) -> None:
    soon = pgp_fixtures.make_key_expiring(pgp_home, "Soon <security@soon.example>",
                                          START + timedelta(days=10))
    cfg = make_config({"pgp": {"home": str(pgp_home), "expiry_warning_days": 30}}, sink=sink)
    store = Store.open(cfg.core.database_url, clock)
    await store.upgrade()
    try:
        async with store.unit() as tx:
            await tx.add_member("Soon", "security@soon.example", soon)
            await tx.add_member("Fine", "security@vendor.example", pgp_keys.member)
            await tx.add_member("Old", "security@old.example", pgp_keys.expired)
        watch = MemberWatch(cfg=cfg.core, mc=cfg.members, store=store, clock=clock,
                            keyring=open_keyring(cfg.pgp),
                            warning_window=timedelta(days=30))
        assert await watch.check_keys(clock.now()) == 2  # Soon and Old, never Fine
        clock.advance(timedelta(days=1))
        assert await watch.check_keys(clock.now()) == 0  # each warning once
        alerts = await store.audit_listing(action_prefix="alert.member_key_expiring")
        assert sorted(str(e.detail["member"]) for e in alerts) == ["Old", "Soon"]
    finally:
        await store.close()


async def test_team_is_warned_once_before_a_case_partys_key_expires(
        make_config: Callable[..., Settings], clock: FakeClock, sink: Sink,
        pgp_home: Path, pgp_keys: PgpKeys) -> None:
    expiry = START + timedelta(days=10)
    soon = pgp_fixtures.make_key_expiring(pgp_home, "PSIRT <psirt@cloud.example>", expiry)
    done = pgp_fixtures.make_key_expiring(pgp_home, "Old PSIRT <psirt@old.example>", expiry)
    cfg = make_config({"pgp": {"home": str(pgp_home), "expiry_warning_days": 30}}, sink=sink)
    store = Store.open(cfg.core.database_url, clock)
    await store.upgrade()
    timeline = default_timeline(clock.now(), cfg.cases.policy_for(2026))
    try:
        async with store.unit() as tx:
            for case_id in ("SEC-2026-0001", "SEC-2026-0002"):
                await case_store.open_case(tx, case_id=case_id, reporter="r@example.net",
                                           subject="Bug", timeline=timeline,
                                           reporter_fingerprint=None)
            await case_store.add_party(tx, "SEC-2026-0001", "psirt@cloud.example", "Cloud",
                                       "cli:alice", fingerprint=soon)
            await case_store.add_party(tx, "SEC-2026-0002", "psirt@old.example", "Old",
                                       "cli:alice", fingerprint=done)
            # A finished case's party no longer matters.
            await case_store.update_case(tx, "SEC-2026-0002", "cli:alice",
                                         {"state": CaseState.CLOSED})
        watch = MemberWatch(cfg=cfg.core, mc=cfg.members, store=store, clock=clock,
                            keyring=open_keyring(cfg.pgp),
                            warning_window=timedelta(days=30))
        assert await watch.check_keys(clock.now()) == 1
        assert await watch.check_keys(clock.now()) == 0  # once per key and expiry
        [alert] = await store.audit_listing(action_prefix="alert.party_key_expiring")
        assert alert.detail["party"] == "psirt@cloud.example"
        assert "set-party-key SEC-2026-0001" in str(alert.detail["hint"])
    finally:
        await store.close()


def dsn(member: str, action: str = "failed", status: str = "5.1.1") -> bytes:
    return (
        "From: MAILER-DAEMON@mx.vendor.example\r\nTo: discuss-bounces@lists.example.org\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;"
        ' boundary="B"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--B\r\n'
        "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.vendor.example"
        f"\r\n\r\nFinal-Recipient: rfc822; {member}\r\nAction: {action}\r\n"
        f"Status: {status}\r\nDiagnostic-Code: smtp; 550 {status} unknown\r\n\r\n--B--\r\n"
    ).encode()


@pytest.fixture
async def daemon(make_config: Callable[..., Settings], sink: Sink, clock: FakeClock,
                 pgp_home: Path, pgp_keys: PgpKeys, tmp_path: Path) -> Any:
    extra = app_config(pgp_home, pgp_keys)
    extra["members"] = {"bounce_threshold": 2, "roster_dir": str(tmp_path / "roster")}
    async with running(make_config(extra, sink=sink), clock) as application:
        yield application


async def test_repeated_bounces_alert_the_team_once(daemon: App, sink: Sink) -> None:
    member = MEMBERS[0][1]
    bounces = "discuss-bounces@lists.example.org"
    await lmtp_send(daemon, "", [bounces], dsn(member.upper()))
    await lmtp_send(daemon, "", [bounces], dsn(member, "delayed", "4.4.1"))
    await lmtp_send(daemon, "", [bounces], dsn("stranger@elsewhere.example"))
    await settle(daemon)
    assert await daemon.store.audit_listing(action_prefix="alert.") == []
    await lmtp_send(daemon, "", [bounces], dsn(member))
    await lmtp_send(daemon, "", [bounces], dsn(member))  # a third: no second alert
    await settle(daemon)
    alerts = await daemon.store.audit_listing(action_prefix="alert.member_undeliverable")
    assert len(alerts) == 1 and alerts[0].detail["address"] == member
    await sink.wait_deliveries(2)  # the alert mail to both team members
    assert {r for r, _ in sink.deliveries()} == {"alice@example.org", "bob@example.org"}
    recorded = await daemon.store.audit_listing(action_prefix="bounce_recorded")
    assert len(recorded) == 5


async def test_relay_refusals_to_members_are_recorded(daemon: App, sink: Sink) -> None:
    failing = MEMBERS[1][1]
    sink.rcpt_responder = lambda rcpt: "550 5.1.1 no such user" if rcpt == failing else None
    for subject in ("first", "second"):
        await lmtp_send(daemon, MEMBERS[0][1], ["discuss@lists.example.org"],
                        post(f"Vendor A <{MEMBERS[0][1]}>", subject=f"Re: [XSA-1] {subject}"))
        await settle(daemon)
    await wait_for(lambda: bool(sink.deliveries()))

    async def alerted() -> bool:
        return bool(await daemon.store.audit_listing(
            action_prefix="alert.member_undeliverable"))

    for _ in range(500):
        daemon.members_waker.wake()
        if await alerted():
            break
        await asyncio.sleep(0.02)
    alerts = await daemon.store.audit_listing(action_prefix="alert.member_undeliverable")
    assert len(alerts) == 1 and alerts[0].detail["address"] == failing


async def test_daemon_keeps_the_roster_directory_current(daemon: App, tmp_path: Path) -> None:
    roster = tmp_path / "roster" / "roster.md"
    # Members added behind the daemon's back appear within a poll interval.
    await wait_for(lambda: roster.exists() and "Vendor A" in roster.read_text())
    async with daemon.store.unit() as tx:
        await tx.remove_member("Vendor A", "left")
        from listbot.core.store import roster as roster_ops
        await roster_ops.record_change(tx, member_name="Vendor A", action="removed",
                                       text="Removed Vendor A", actor="test", now=tx.now)
    daemon.members_waker.wake()
    await wait_for(lambda: "Removed Vendor A" in roster.read_text())
    for fmt in ("md", "json", "html"):
        assert "@" not in (tmp_path / "roster" / f"roster.{fmt}").read_text()


def test_alert_policy() -> None:
    window = timedelta(days=14)
    assert not should_alert(1, 2, None, START, window)
    assert should_alert(2, 2, None, START, window)
    assert not should_alert(5, 2, START - timedelta(days=1), START, window)
    assert should_alert(5, 2, START - window, START, window)


def test_config_problems_are_reported_with_their_key_paths(
        make_config: Callable[..., Settings]) -> None:
    from listbot.core.errors import ConfigError
    with pytest.raises(ConfigError) as exc:  # both sections' problems in one report
        make_config({"applications": {"subscribers": ["not an address"], "decision_days": 0,
                                      "role_allow_patterns": ["(unclosed"], "bogus": 1},
                     "members": {"bounce_threshold": 0, "bounce_window_days": "x"}})
    text = "\n".join(exc.value.problems)
    for path in ("applications.subscribers[0]", "applications.decision_days",
                 "applications.role_allow_patterns", "applications.bogus"):
        assert path in text
    assert {p.split(":")[0] for p in exc.value.problems if p.startswith("members")} == {
        "members.bounce_threshold", "members.bounce_window_days"}
