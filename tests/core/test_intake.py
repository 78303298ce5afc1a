"""Intake edge cases: envelope senders by source, concurrent stores, failures answering 451."""

from __future__ import annotations

import asyncio
import json
import smtplib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from listbot.app import App
from listbot.core.clock import FakeClock
from listbot.core.config import Config
from listbot.core.errors import TemporaryError
from listbot.core.intake.imap import ImapPoller, fetched
from listbot.core.intake.server import IntakeHandler, start_server
from listbot.core.model import INJECT_NO_ENVELOPE, Audience, InboundState, OutboxState
from listbot.core.routing import Router
from listbot.core.store import Store
from listbot.core.store import imap as imap_ops
from listbot.settings import Settings
from tests.application_helpers import LIST, SUBSCRIBERS, app_config, example, text_of, to
from tests.conftest import START, wait_for
from tests.core.test_process import write_config
from tests.daemon import add_members, post, raw_session, running, settle
from tests.mta_dovecot import PASSWORD, USER, Dovecot, unavailable
from tests.pgp_fixtures import PgpKeys
from tests.proc import cli
from tests.sink import Sink

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
async def spine(make_config: Callable[..., Settings], sink: Sink,
                clock: FakeClock) -> AsyncIterator[App]:
    async with running(make_config(sink=sink), clock, members=()) as app:
        yield app


# --- the envelope sender depends on the source -------------------------------------------

@needs_dovecot
async def test_application_read_over_imap_gets_its_checklist(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys, dovecot: Dovecot, tmp_path: Path) -> None:
    # IMAP has no envelope: an empty envelope_from there is not the null sender.
    secret = tmp_path / "imap-password"
    secret.write_text(PASSWORD + "\n")
    imap = {"host": "127.0.0.1", "port": dovecot.port, "tls": False, "user": USER,
            "password_file": str(secret), "list": "applications", "timeout_seconds": 5.0,
            "poll_interval_seconds": 3600.0}
    cfg = make_config({**app_config(pgp_home, pgp_keys), "imap": imap}, sink=sink)
    assert cfg.imap is not None
    async with running(cfg, clock, members=()) as app:
        assert app.imap is not None
        await asyncio.wait_for(app.imap.connected.wait(), 10)
        await asyncio.to_thread(dovecot.append, example("free_cloud_narrative.eml"))
        await sink.wait_deliveries(1 + len(SUBSCRIBERS) + len(TEAM))
        await settle(app)
        [reply] = to(sink, "jana.weber@nimbus-cloud.example")
        assert "Every required item was found" in text_of(reply)
        actions = [e.action for e in await app.store.audit_listing()]
        assert "application.automatic_ignored" not in actions


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
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    cfg = make_config(app_config(pgp_home, pgp_keys), sink=sink)
    async with running(cfg, clock, members=()) as app:
        assert await smtp_send(app, "", [LIST], example("free_cloud_narrative.eml")) == {}
        await settle(app)
        [entry] = await app.store.audit_listing(action_prefix="application.automatic_ignored")
        assert entry.detail["reason"] == "null envelope sender"
        assert await app.store.outbox_listing(list(OutboxState)) == []


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


async def test_inject_without_sender_has_no_envelope(tmp_path: Path, db_url: str) -> None:
    # Not the null sender: like IMAP mail, the headers decide whether it is answered.
    config = write_config(tmp_path, db_url, 1)
    for args in ((), ("--from", "<>")):
        code, _, err = await cli(config, "inject", "--to", DISCUSS, *args,
                                 stdin=post("security@vendor-a.example"))
        assert code == 0, err
    code, out, err = await cli(config, "queue", "list", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [(r["source"], r["envelope_from"]) for r in rows] == [
        (INJECT_NO_ENVELOPE, ""), ("inject", "")]
    store = Store.open(db_url, FakeClock(START))
    try:
        [first, second] = await store.claim_inbound("test", timedelta(minutes=1), 10)
    finally:
        await store.close()
    assert first.envelope_sender is None and second.envelope_sender == ""


# --- failures answer 451 (docs/design.md "Acknowledge only what is stored") -----------

@pytest.fixture
async def store(make_config: Callable[..., Settings], clock: FakeClock) -> AsyncIterator[Store]:
    s = Store.open(make_config().core.database_url, clock)
    await s.upgrade()
    try:
        yield s
    finally:
        await s.close()


async def intake(store: Store, cfg: Config, *, lmtp: bool) -> tuple[IntakeHandler, int]:
    handler = IntakeHandler(router=Router(cfg.lists.values()), store=store,
                            source="lmtp" if lmtp else "smtp", per_recipient=lmtp,
                            on_stored=lambda: None)
    server = await start_server(lmtp=lmtp, handler=handler, host="127.0.0.1", port=0,
                                hostname="test", max_bytes=cfg.max_message_bytes)
    return handler, server.sockets[0].getsockname()[1]


def transaction(hello: bytes, rcpts: Sequence[str], data: bytes) -> list[tuple[bytes, int]]:
    return [(hello + b" test\r\n", 1), (b"MAIL FROM:<reporter@example.net>\r\n", 1),
            *((f"RCPT TO:<{r}>\r\n".encode(), 1) for r in rcpts), (b"DATA\r\n", 1),
            (data + b"\r\n.\r\n", len(rcpts) if hello == b"LHLO" else 1)]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_store_closing_under_a_waiting_data_answers_451(
        store: Store, make_config: Callable[..., Settings]) -> None:
    # The SQLite writer is busy, so the arrival's group commit is in flight, waiting for it,
    # when the daemon closes the store at shutdown: the sender must hear 451, not hang.
    _, port = await intake(store, make_config().core, lmtp=False)
    release = asyncio.Event()
    holding = asyncio.Event()

    async def hold_writer() -> None:
        async with store.unit():
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold_writer())
    await holding.wait()
    session = asyncio.create_task(raw_session(port, transaction(
        b"EHLO", [SECURITY], post("reporter@example.net"))))
    await wait_for(store.arrivals_waiting)
    await asyncio.wait_for(store.close(), 10)
    replies = await asyncio.wait_for(session, 10)
    release.set()
    await holder
    assert replies[-1].startswith("451 "), replies
    with pytest.raises(TemporaryError):  # a late arrival is refused, not left waiting
        await asyncio.wait_for(store.store_arrivals([]), 5)


async def fail_inbound_inserts(store: Store, failing: bool) -> None:
    """Make the real database refuse every inbound insert (or stop refusing)."""
    sqlite = {True: "CREATE TRIGGER inbound_fails BEFORE INSERT ON inbound "
                    "BEGIN SELECT RAISE(ABORT, 'storage failure'); END",
              False: "DROP TRIGGER inbound_fails"}
    postgres = {True: "ALTER TABLE inbound ADD CONSTRAINT inbound_fails CHECK (false) NOT VALID",
                False: "ALTER TABLE inbound DROP CONSTRAINT inbound_fails"}
    async with store.unit() as tx:
        await tx.conn.exec_driver_sql((sqlite if store.sqlite else postgres)[failing])


async def test_lmtp_store_failure_answers_451_per_recipient(
        store: Store, make_config: Callable[..., Settings]) -> None:
    _, port = await intake(store, make_config().core, lmtp=True)
    await fail_inbound_inserts(store, True)
    replies = await raw_session(port, transaction(b"LHLO", [SECURITY, DISCUSS],
                                                  post("reporter@example.net")))
    assert [r[:4] for r in replies[-2:]] == ["451 ", "451 "], replies
    assert await store.inbound_listing(list(InboundState)) == []


async def test_failed_group_commit_answers_451_to_every_session(
        store: Store, make_config: Callable[..., Settings]) -> None:
    _, port = await intake(store, make_config().core, lmtp=False)
    await fail_inbound_inserts(store, True)
    sessions = [raw_session(port, transaction(b"EHLO", [SECURITY],
                                              post(f"r{i}@example.net", subject=f"r{i}")))
                for i in range(6)]
    replies = await asyncio.gather(*sessions)
    assert [r[-1][:4] for r in replies] == ["451 "] * 6, replies
    assert await store.inbound_listing(list(InboundState)) == []
    # The group commit survives the failure: once the database is well, mail is stored.
    await fail_inbound_inserts(store, False)
    again = await raw_session(port, transaction(b"EHLO", [SECURITY], post("r@example.net")))
    assert again[-1].startswith("250 "), again
    assert len(await store.inbound_listing(list(InboundState))) == 1


# --- IMAP: two pollers, one mailbox --------------------------------------------------------

def imap_mail(n: int, extra: bytes = b"") -> bytes:
    return (f"From: reporter@example.net\r\nTo: security@example.org\r\nSubject: r{n}\r\n"
            f"Message-ID: <r{n}@example.net>\r\n\r\nDetails {n}.\r\n").encode() + extra


@pytest.fixture
def imap_cfg(make_config: Callable[..., Settings], tmp_path: Path) -> Settings:
    # Nothing connects: the pollers are handed fetched bytes directly.
    return make_config({"imap": {"host": "127.0.0.1", "user": USER, "tls": False,
                                 "password_file": str(tmp_path / "unused")}})


def imap_poller(cfg: Settings, store: Store, clock: FakeClock) -> ImapPoller:
    icfg = cfg.imap
    assert icfg is not None
    return ImapPoller(icfg, cfg.core, store, clock, on_stored=lambda: None)


async def test_two_pollers_taking_the_same_messages_store_each_once(
        imap_cfg: Settings, store: Store, clock: FakeClock) -> None:
    # Two daemons (two stores, two engines) poll one mailbox and fetch the same UIDs.
    other = Store.open(imap_cfg.core.database_url, clock)
    try:
        first, second = imap_poller(imap_cfg, store, clock), imap_poller(imap_cfg, other, clock)
        messages = [fetched(uid, imap_mail(uid)) for uid in range(1, 6)]
        taken = await asyncio.gather(*(p.take(m, 7) for m in messages for p in (first, second)))
        assert sum(taken) == len(messages)
        rows = await store.inbound_listing(list(InboundState))
        assert sorted(r["content_hash"] for r in rows) == sorted(m.content_hash for m in messages)
        async with store.read() as tx:
            seen = await imap_ops.listing(tx, first.icfg.mailbox)
        assert sorted((s.uid, s.outcome) for s in seen) == [(u, "stored") for u in range(1, 6)]
        assert {s.inbound_id for s in seen} == {r["id"] for r in rows}
    finally:
        await other.close()


async def test_imap_message_refused_by_intake_is_quarantined_and_alerted(
        imap_cfg: Settings, store: Store, clock: FakeClock) -> None:
    # The server flags or moves it after this, so listbot must keep the bytes itself.
    p = imap_poller(imap_cfg, store, clock)
    bare_lf = fetched(1, imap_mail(1, b"smuggled\n.\r\n"))
    oversized = fetched(2, imap_mail(2, b"x" * 998 + b"\r\n") * 70)
    assert await p.take(bare_lf, 7) == 0
    assert await p.take(oversized, 7) == 0
    rows = await store.inbound_listing(list(InboundState))
    assert [r["state"] for r in rows] == ["quarantined", "quarantined"]
    assert "bare CR or LF" in rows[0]["error"] and "size limit" in rows[1]["error"]
    assert [await store.inbound_raw(r["id"]) for r in rows] == [bare_lf.raw, oversized.raw]
    async with store.read() as tx:
        seen = await imap_ops.listing(tx, p.icfg.mailbox)
    assert [(s.outcome, s.inbound_id) for s in seen] == [("refused", r["id"]) for r in rows]
    alerts = await store.audit_listing(action_prefix="alert.imap_refused")
    assert len(alerts) == 2
    team = await store.outbox_listing([OutboxState.PENDING])
    assert sorted(i.recipient for i in team) == sorted(TEAM * 2)
    assert {i.audience for i in team} == {Audience.TEAM}
    # The worker never picks up a refused message.
    assert await store.claim_inbound("w", timedelta(seconds=60), 10) == []
