"""Intake edge cases: envelope senders by source, concurrent stores, failures answering 451."""

from __future__ import annotations

import asyncio
import json
import smtplib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from listbot.app import App
from listbot.clock import FakeClock
from listbot.config import Config
from listbot.imap_poll import parse_imap
from listbot.model import OutboxState
from tests.application_helpers import LIST, SUBSCRIBERS, app_config, example, text_of, to
from tests.daemon import add_members, post, settle
from tests.mta_dovecot import PASSWORD, USER, Dovecot, unavailable
from tests.pgp_fixtures import PgpKeys
from tests.proc import cli
from tests.sink import Sink
from tests.test_process import write_config

SECURITY = "security@example.org"
DISCUSS = "discuss@lists.example.org"
TEAM = ["alice@example.org", "bob@example.org"]
needs_dovecot = pytest.mark.skipif(unavailable() is not None, reason=unavailable() or "")


def _smtp_send(port: int, sender: str, rcpts: Sequence[str], data: bytes) -> dict[str, Any]:
    with smtplib.SMTP("127.0.0.1", port) as client:
        return dict(client.sendmail(sender, list(rcpts), data))


async def smtp_send(app: App, sender: str, rcpts: Sequence[str], data: bytes) -> dict[str, Any]:
    return await asyncio.to_thread(_smtp_send, app.bound["smtp"][1], sender, rcpts, data)


@pytest.fixture
async def spine(make_config: Callable[..., Config], sink: Sink,
                clock: FakeClock) -> AsyncIterator[App]:
    app = App.create(make_config(sink=sink), clock=clock)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    dv = Dovecot.create()
    dv.start()
    try:
        yield dv
    finally:
        dv.stop()
        dv.remove()


# --- the envelope sender depends on the source -------------------------------------------

@needs_dovecot
async def test_application_read_over_imap_gets_its_checklist(
        make_config: Callable[..., Config], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys, dovecot: Dovecot, tmp_path: Path) -> None:
    # IMAP has no envelope: an empty envelope_from there is not the null sender.
    secret = tmp_path / "imap-password"
    secret.write_text(PASSWORD + "\n")
    imap = {"host": "127.0.0.1", "port": dovecot.port, "tls": False, "user": USER,
            "password_file": str(secret), "list": "applications", "timeout_seconds": 5.0,
            "poll_interval_seconds": 3600.0}
    cfg = make_config({**app_config(pgp_home, pgp_keys), "imap": imap}, sink=sink)
    assert parse_imap(cfg) is not None
    app = App.create(cfg, clock=clock)
    await app.start()
    try:
        assert app.imap is not None
        await asyncio.wait_for(app.imap.connected.wait(), 10)
        await asyncio.to_thread(dovecot.append, example("free_cloud_narrative.eml"))
        await sink.wait_deliveries(1 + len(SUBSCRIBERS) + len(TEAM))
        await settle(app)
        [reply] = to(sink, "jana.weber@nimbus-cloud.example")
        assert "Every required item was found" in text_of(reply)
        actions = [e.action for e in await app.store.audit_listing()]
        assert "application.automatic_ignored" not in actions
    finally:
        await app.stop()


async def test_null_sender_report_to_security_gets_no_ack(spine: App, sink: Sink) -> None:
    data = (b"From: Reporter <reporter@example.net>\r\nTo: security@example.org\r\n"
            b"Subject: Undelivered: heap overflow\r\nMessage-ID: <n1@example.net>\r\n\r\n"
            b"Your message could not be delivered.\r\n")
    assert await smtp_send(spine, "", [SECURITY], data) == {}
    await settle(spine)
    items = await spine.store.outbox_listing(list(OutboxState))
    assert sorted(i.recipient for i in items) == TEAM, "team copies only, no ack to From"
    [entry] = await spine.store.audit_listing(action_prefix="case.report")
    assert entry.detail["acknowledged"] is False
    assert entry.detail["no_reply_reason"] == "null envelope sender"


async def test_null_sender_post_to_discuss_gets_no_notice(spine: App, sink: Sink) -> None:
    await add_members(spine)
    assert await smtp_send(spine, "", [DISCUSS], post("eve@evil.example")) == {}
    await settle(spine)
    [entry] = await spine.store.audit_listing(action_prefix="discuss.reject_nonmember")
    assert entry.detail["notice"] is False
    assert entry.detail["no_reply_reason"] == "null envelope sender"
    assert await spine.store.outbox_listing(list(OutboxState)) == []


async def test_null_sender_application_gets_no_reply(
        make_config: Callable[..., Config], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    app = App.create(make_config(app_config(pgp_home, pgp_keys), sink=sink), clock=clock)
    await app.start()
    try:
        assert await smtp_send(app, "", [LIST], example("free_cloud_narrative.eml")) == {}
        await settle(app)
        [entry] = await app.store.audit_listing(action_prefix="application.automatic_ignored")
        assert entry.detail["reason"] == "null envelope sender"
        assert await app.store.outbox_listing(list(OutboxState)) == []
    finally:
        await app.stop()


# --- listbot inject ----------------------------------------------------------------------

async def test_inject_parses_the_sender_as_smtp_intake_does(tmp_path: Path,
                                                            db_url: str) -> None:
    config = write_config(tmp_path, db_url, 1)
    for sender in ("<Security@Vendor-A.example>", "<>", " reporter@example.net "):
        code, _, err = await cli(config, "inject", "--to", DISCUSS, "--from", sender,
                                 stdin=post("security@vendor-a.example"))
        assert code == 0, err
    code, out, err = await cli(config, "queue", "list", "--json")
    assert code == 0, err
    assert [r["envelope_from"] for r in json.loads(out)] == [
        "security@vendor-a.example", "", "reporter@example.net"]
