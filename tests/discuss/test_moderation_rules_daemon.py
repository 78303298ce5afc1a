"""Rules in the running daemon: classification on arrival, reloads, reminders, expiry,
encrypted requests and the shell commands."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from listbot.app import App
from listbot.cli import root
from listbot.core.clock import FakeClock
from listbot.core.store import moderation as held_ops
from listbot.settings import Settings
from tests import pgp_fixtures
from tests.daemon import MEMBERS, add_members, lmtp_send, outbox_settled, post, running, settle
from tests.moderation_helpers import (
    ALICE,
    BOB,
    DISCUSS,
    MEMBER,
    RULES,
    hold_one,
    moderation_config,
    payload_text,
)
from tests.pgp_fixtures import PgpKeys, gpg
from tests.sink import Sink

pgp_template = pgp_fixtures.pgp_template
pgp_keys = pgp_fixtures.pgp_keys
pgp_home = pgp_fixtures.pgp_home


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(RULES, target)
    return target


@pytest.fixture
def cfg(make_config: Callable[..., Settings], sink: Sink, pgp_home: Path, pgp_keys: PgpKeys,
        rules_dir: Path) -> Settings:
    return make_config(moderation_config(pgp_home, pgp_keys, rules=rules_dir), sink=sink)


@pytest.fixture
async def app(cfg: Settings, clock: FakeClock) -> AsyncIterator[App]:
    async with running(cfg, clock) as application:
        yield application


async def test_policy_question_is_rejected_with_the_policy_notice(app: App, sink: Sink) -> None:
    body = "Are we allowed to deploy the fix on our public cloud before the embargo ends?\r\n"
    await lmtp_send(app, MEMBER, [DISCUSS], post(MEMBER, subject="deploy", body=body))
    await sink.wait_deliveries(1)
    await settle(app)
    assert sink.recipients() == [MEMBER]
    text = payload_text(sink.received[0].data)
    assert "security@example.org" in text and "announce@lists.example.org" in text
    entries = await app.store.audit_listing(action_prefix="discuss.reject")
    assert entries[0].detail["rule"] == "policy-deployment"


async def test_approved_post_names_the_rules_that_fired(app: App, sink: Sink) -> None:
    await lmtp_send(app, MEMBER, [DISCUSS], post(MEMBER))
    await sink.wait_deliveries(len(MEMBERS))
    assert sink.received[0].message["X-Listbot-Rule-Hits"] == "technical-discussion"


async def test_bad_rule_edits_while_running_keep_the_old_rules(app: App, sink: Sink,
                                                               rules_dir: Path) -> None:
    good = (rules_dir / "discuss.toml").read_text()
    (rules_dir / "discuss.toml").write_text(good + "\n[[rule]\nname = 'x'\n")
    assert app.reload_rules() is False
    (rules_dir / "discuss.toml").write_text(
        good + '\n[[rule]]\nname = "x"\naction = "discard"\nwhen = { sender_is_nice = true }\n')
    assert app.reload_rules() is False
    (rules_dir / "discuss.toml").write_text(
        good + '\n[[rule]]\nname = "x"\naction = "reject"\nnotice = "nope"\n'
        'when = { size = { min = 1 } }\n')
    assert app.reload_rules() is False
    await lmtp_send(app, MEMBER, [DISCUSS], post(MEMBER))
    await sink.wait_deliveries(len(MEMBERS))
    assert sink.received[0].message["X-Listbot-Rule-Hits"] == "technical-discussion"
    # A good edit does replace them: everything from members is now discarded.
    (rules_dir / "discuss.toml").write_text(good.replace(
        '[[rule]]\nname = "nonmember"',
        '[[rule]]\nname = "drop-all"\naction = "discard"\nwhen = { size = { min = 1 } }\n\n'
        '[[rule]]\nname = "nonmember"', 1))
    assert app.reload_rules() is True
    await lmtp_send(app, MEMBER, [DISCUSS], post(MEMBER, subject="second"))
    await settle(app)
    assert len(sink.deliveries()) == len(MEMBERS)
    entries = await app.store.audit_listing(action_prefix="discuss.discard")
    assert entries and entries[0].detail["rule"] == "drop-all"


async def test_reminder_one_day_before_expiry_then_expired_post_stays_listed(
        app: App, sink: Sink, clock: FakeClock) -> None:
    await hold_one(app, sink)
    before = len(sink.deliveries())
    clock.advance(timedelta(days=5, hours=23))
    await app.dispatch_moderation()
    assert len(sink.deliveries()) == before, "no reminder before the day before"
    clock.advance(timedelta(hours=2))
    await app.dispatch_moderation()
    await app.dispatch_moderation()  # a second pass sends nothing more
    await sink.wait_deliveries(before + 2)
    reminders = sink.received[-2:]
    assert {r.rcpts[0] for r in reminders} == {ALICE, BOB}
    assert all(str(r.message["Subject"]).startswith("Reminder:") for r in reminders)
    clock.advance(timedelta(days=1))
    await app.dispatch_moderation()
    await sink.wait_deliveries(before + 2 + 2)  # the expiry alert to the team
    async with app.store.unit() as tx:
        posts = await held_ops.listing(tx, [held_ops.HELD])
        assert [p.summary(tx.now)["state"] for p in posts] == ["expired"]
    assert await app.store.audit_listing(action_prefix="alert.held_post_expired")


async def test_expired_token_does_not_decide(app: App, sink: Sink, clock: FakeClock,
                                             pgp_home: Path, pgp_keys: PgpKeys) -> None:
    from tests.moderation_helpers import send_reply, signed_reply
    tokens = await hold_one(app, sink)
    clock.advance(timedelta(days=7, seconds=1))
    await send_reply(app, tokens[ALICE], signed_reply(pgp_home, pgp_keys.moderator, ALICE,
                                                      "approve\n"))
    ignored = await app.store.audit_listing(action_prefix="moderation.reply_ignored")
    assert ignored[-1].detail["reason"] == "token expired"


async def test_requests_are_encrypted_to_each_moderator_when_required(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    app = App.create(make_config(moderation_config(pgp_home, pgp_keys, encrypt=True),
                                 sink=sink), clock=clock)
    await app.start()
    try:
        await add_members(app)
        secret = "the-secret-subject-words"
        await lmtp_send(app, MEMBER, [DISCUSS], post(MEMBER, subject=secret,
                                                     body="Hello there.\r\n"))
        await sink.wait_deliveries(2)
        for rec in sink.received:
            assert secret.encode() not in rec.data
            assert rec.message.get_content_type() == "multipart/encrypted"
            armored = rec.message.get_payload()[1].get_payload().encode()
            plain = gpg(pgp_home, "--decrypt", data=armored).stdout
            assert secret.encode() in plain and b"discuss-mod+" in plain
    finally:
        await app.stop()


async def test_shell_decisions_are_first_wins_and_audited(app: App, sink: Sink,
                                                          cfg: Settings) -> None:
    await hold_one(app, sink)
    async with app.store.unit() as tx:
        post_id = (await held_ops.listing(tx, None))[0].id
    moderation = app.moderations["discuss"]
    async with app.store.unit() as tx:
        first = await moderation.decide_now(tx, post_id, decider="cli:root", verb="reject",
                                            reason="off-topic", via="cli")
    async with app.store.unit() as tx:
        second = await moderation.decide_now(tx, post_id, decider="cli:other",
                                             verb="approve", reason="", via="cli")
    assert type(first).__name__ == "Decided"
    assert type(second).__name__ == "AlreadyDecided"
    entries = await app.store.audit_listing(action_prefix="moderation.reject")
    assert entries[0].actor == "cli:root" and entries[0].detail["notice"] == "off-topic"


def _cli_config(tmp_path: Path, rules_dir: Path) -> Path:
    path = tmp_path / "cli.toml"
    path.write_text(f"""
[instance]
hostname = "lists.example.org"
state_dir = "{tmp_path / 'cli-state'}"
[database]
url = "sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
[team]
address = "security@example.org"
[[team.members]]
name = "Alice"
address = "{ALICE}"
[lists.discuss]
kind = "discuss"
address = "{DISCUSS}"
moderators = ["{ALICE}"]
require_signed_decisions = false  # Alice has no key here
[rules]
dir = "{rules_dir}"
""")
    return path


def test_cli_rules_check_reports_mismatches_with_exit_65(tmp_path: Path,
                                                         rules_dir: Path) -> None:
    from listbot.cli import main
    config = _cli_config(tmp_path, rules_dir)
    runner = CliRunner()
    result = runner.invoke(root, ["--config", str(config), "rules", "check"])
    assert result.exit_code == 0, result.output
    assert "36 examples, 36 classified as labelled" in result.output
    shutil.move(rules_dir / "examples/discuss/reject/allowed-to-deploy.eml",
                rules_dir / "examples/discuss/approve/allowed-to-deploy.eml")
    result = runner.invoke(root, ["--config", str(config), "rules", "check"])
    assert result.exit_code == 65
    assert "MISMATCH" in result.output and "policy-deployment" in result.output
    (rules_dir / "discuss.toml").write_text("[list\n")
    with pytest.raises(SystemExit) as exited:
        main(["--config", str(config), "rules", "check"])
    assert exited.value.code == 78


def test_cli_explain_and_held(tmp_path: Path, rules_dir: Path) -> None:
    config = _cli_config(tmp_path, rules_dir)
    runner = CliRunner()
    eml = rules_dir / "examples/discuss/reject/allowed-to-deploy.eml"
    result = runner.invoke(root, ["--config", str(config), "rules", "explain", str(eml)])
    assert result.exit_code == 0, result.output
    assert "rule policy-deployment -> reject: DECIDES" in result.output
    assert "rule technical-patch -> approve: no" in result.output
    result = runner.invoke(root, ["--config", str(config), "held", "list"])
    assert result.exit_code == 0 and "(none)" in result.output
    result = runner.invoke(root, ["--config", str(config), "held", "approve", "99"])
    assert result.exit_code != 0 and isinstance(result.exception, Exception)


async def test_rule_rejection_notice_never_quotes_a_member_post_to_an_outsider(
        app: App, sink: Sink) -> None:
    # The From is a member's role address, but the envelope sender - where notices go -
    # is someone else's. The notice quotes the post's subject: embargoed text.
    outsider = "alice@contractor.example"
    subject = "XSA-466 embargoed: heap overflow in the grant table"
    body = "Are we allowed to deploy the fix on our public cloud before the embargo ends?\r\n"
    await lmtp_send(app, outsider, [DISCUSS], post(MEMBER, subject=subject, body=body))
    await settle(app)
    await outbox_settled(app)
    assert outsider not in sink.recipients()
    assert all(b"heap overflow" not in rec.data for rec in sink.received)
    refused = await app.store.audit_listing(action_prefix="alert.gate-refused")
    assert [e.detail["recipient"] for e in refused] == [outsider]


async def test_rule_rejection_notice_still_reaches_the_posting_member(
        app: App, sink: Sink) -> None:
    body = "Are we allowed to deploy the fix on our public cloud before the embargo ends?\r\n"
    await lmtp_send(app, MEMBER, [DISCUSS], post(MEMBER, subject="XSA-466 deploy", body=body))
    await sink.wait_deliveries(1)
    await outbox_settled(app)
    assert sink.recipients() == [MEMBER]
    assert "XSA-466 deploy" in str(sink.received[0].message["Subject"])
