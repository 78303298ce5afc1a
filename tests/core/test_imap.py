"""IMAP intake against a real Dovecot on loopback (own config, passwd-file, maildirs)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from listbot.app import App
from listbot.core.clock import FakeClock
from listbot.core.errors import ConfigError
from listbot.core.intake.imap import ImapPoller
from listbot.core.model import InboundState
from listbot.core.store import Arrival, Store
from listbot.core.store import imap as imap_ops
from listbot.settings import Settings
from tests.daemon import add_members, running
from tests.mta_dovecot import PASSWORD, USER, Dovecot, unavailable
from tests.sink import Sink

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=unavailable() or "")

MEMBER = "security@vendor-a.example"


def mail(n: int, sender: str = "reporter@example.net") -> bytes:
    return (f"From: {sender}\r\nTo: security@example.org\r\nSubject: report {n}\r\n"
            f"Message-ID: <report-{n}@example.net>\r\n\r\n"
            f"Details {n}: the XSA-465 patch applies to 4.17 and the backport builds.\r\n"
            ).encode()


@pytest.fixture
def imap_config(make_config: Callable[..., Settings], dovecot: Dovecot,
                tmp_path: Path) -> Callable[..., Settings]:
    secret = tmp_path / "imap-password"
    secret.write_text(PASSWORD + "\n")

    def factory(sink: Sink | None = None, **extra: Any) -> Settings:
        section = {"host": "127.0.0.1", "port": dovecot.port, "tls": False, "user": USER,
                   "password_file": str(secret), "timeout_seconds": 5.0,
                   "poll_interval_seconds": 30.0, "backoff_initial_seconds": 0.1,
                   "backoff_max_seconds": 0.5, **extra}
        return make_config({"imap": section}, sink=sink)
    return factory


@pytest.fixture
async def store(imap_config: Callable[..., Settings], clock: FakeClock) -> AsyncIterator[Store]:
    s = Store.open(imap_config().core.database_url, clock)
    await s.upgrade()
    try:
        yield s
    finally:
        await s.close()


def poller(cfg: Settings, store: Store, clock: FakeClock) -> ImapPoller:
    icfg = cfg.imap
    assert icfg is not None
    return ImapPoller(icfg, cfg.core, store, clock, on_stored=lambda: None)


async def imap_rows(store: Store) -> list[dict[str, Any]]:
    return [r for r in await store.inbound_listing(list(InboundState)) if r["source"] == "imap"]


async def one_sync(p: ImapPoller) -> int:
    client = await p._connect()
    try:
        from listbot.core.intake.imap import _check, uidvalidity_of
        uidvalidity = uidvalidity_of(_check(await client.select(p.icfg.folder), "SELECT"))
        return await p.sync(client, uidvalidity)
    finally:
        await client.logout()


async def test_flag_mode_stores_then_flags(imap_config: Callable[..., Settings], store: Store,
                                           dovecot: Dovecot, clock: FakeClock) -> None:
    for n in (1, 2):
        dovecot.append(mail(n))
    assert await one_sync(poller(imap_config(), store, clock)) == 2
    rows = await imap_rows(store)
    assert [r["recipient"] for r in rows] == ["security@example.org"] * 2
    assert all(r["list_name"] == "security" and r["envelope_from"] == "" for r in rows)
    assert dovecot.uids(criteria="KEYWORD $ListbotStored") == [1, 2]
    assert await store.inbound_raw(rows[0]["id"]) == mail(1)
    # A second pass finds nothing new.
    assert await one_sync(poller(imap_config(), store, clock)) == 0
    assert len(await imap_rows(store)) == 2


async def test_move_mode_moves_after_commit(imap_config: Callable[..., Settings], store: Store,
                                            dovecot: Dovecot, clock: FakeClock) -> None:
    dovecot.append(mail(1))
    cfg = imap_config(after="move", move_to="Done")
    assert await one_sync(poller(cfg, store, clock)) == 1
    assert dovecot.uids() == []
    assert len(dovecot.uids("Done")) == 1
    assert len(await imap_rows(store)) == 1


class CrashBeforeMark(ImapPoller):
    async def mark(self, client: Any, uid: int) -> None:
        raise RuntimeError("killed between commit and flag")


async def test_killed_between_commit_and_flag_no_loss_no_duplicate(
        imap_config: Callable[..., Settings], store: Store, dovecot: Dovecot,
        clock: FakeClock) -> None:
    dovecot.append(mail(1))
    cfg = imap_config()
    icfg = cfg.imap
    assert icfg is not None
    crashing = CrashBeforeMark(icfg, cfg.core, store, clock, on_stored=lambda: None)
    with pytest.raises(RuntimeError):
        await one_sync(crashing)
    assert len(await imap_rows(store)) == 1  # committed...
    assert dovecot.uids(criteria="KEYWORD $ListbotStored") == []  # ...but not flagged
    assert await one_sync(poller(cfg, store, clock)) == 0
    assert len(await imap_rows(store)) == 1, "restart must not store it again"
    assert dovecot.uids(criteria="KEYWORD $ListbotStored") == [1]


async def test_killed_between_store_and_uid_record_no_duplicate(
        imap_config: Callable[..., Settings], store: Store, dovecot: Dovecot,
        clock: FakeClock) -> None:
    dovecot.append(mail(1))
    cfg = imap_config()
    p = poller(cfg, store, clock)
    # The first run committed the inbound row and died before recording the UID.
    await store.store_arrivals([Arrival("imap", "", p.icfg.recipient, p.route, mail(1))])
    assert await one_sync(p) == 0
    assert len(await imap_rows(store)) == 1
    async with store.unit() as tx:
        seen = await imap_ops.listing(tx, p.icfg.mailbox)
    assert [s.outcome for s in seen] == ["duplicate"]
    assert dovecot.uids(criteria="KEYWORD $ListbotStored") == [1]


async def test_renumbered_mailbox_same_message_id_not_stored_twice(
        imap_config: Callable[..., Settings], store: Store, dovecot: Dovecot,
        clock: FakeClock) -> None:
    p = poller(imap_config(), store, clock)
    # Stored earlier under another UIDVALIDITY, with headers the server has since changed.
    ids = await store.store_arrivals([Arrival("imap", "", p.icfg.recipient, p.route,
                                              b"X-Old: 1\r\n" + mail(7))])
    async with store.unit() as tx:
        await imap_ops.claim_uid(tx, imap_ops.Seen(p.icfg.mailbox, 1, 99,
                                                     "<report-7@example.net>", "x" * 64,
                                                     ids[0], "stored"), tx.now)
    dovecot.append(mail(7))
    dovecot.append(mail(8))
    assert await one_sync(p) == 1  # only report 8 is new
    assert len(await imap_rows(store)) == 2


async def test_same_message_id_in_same_mailbox_generation_is_a_new_delivery(
        imap_config: Callable[..., Settings], store: Store, dovecot: Dovecot,
        clock: FakeClock) -> None:
    # An attacker reusing a Message-ID must not make listbot drop a real report.
    dovecot.append(mail(1, sender="eve@evil.example"))
    dovecot.append(mail(1))
    assert await one_sync(poller(imap_config(), store, clock)) == 2


async def test_daemon_idle_picks_up_new_mail_and_processes_it(
        imap_config: Callable[..., Settings], dovecot: Dovecot, sink: Sink,
        clock: FakeClock) -> None:
    cfg = imap_config(sink=sink, list="discuss", poll_interval_seconds=3600.0)
    async with running(cfg, clock, members=()) as app:
        await add_members(app)
        assert app.imap is not None
        await asyncio.wait_for(app.imap.connected.wait(), 10)
        # Arrives while listbot sits in IDLE: the push, not the poll, brings it in.
        await asyncio.to_thread(dovecot.append, mail(3, sender=f"Vendor A <{MEMBER}>"))
        await sink.wait_deliveries(3, timeout=15)
        assert sink.received[0].message["Subject"] == "report 3"
        assert dovecot.uids(criteria="KEYWORD $ListbotStored") == [1]


async def test_reconnects_after_server_restart(imap_config: Callable[..., Settings],
                                               dovecot: Dovecot, clock: FakeClock) -> None:
    app = App.create(imap_config(poll_interval_seconds=0.2, idle=False,
                                              timeout_seconds=1.0), clock=clock)
    await app.start()
    try:
        assert app.imap is not None
        await asyncio.wait_for(app.imap.connected.wait(), 10)
        await asyncio.to_thread(dovecot.stop)

        async def disconnected() -> None:
            while app.imap is not None and app.imap.connected.is_set():
                await asyncio.sleep(0.05)

        await asyncio.wait_for(disconnected(), 15)
        await asyncio.to_thread(dovecot.start)
        await asyncio.to_thread(dovecot.append, mail(4))

        async def stored() -> None:
            while not await imap_rows(app.store):
                await asyncio.sleep(0.05)

        await asyncio.wait_for(stored(), 20)
    finally:
        await app.stop()


def test_config_problems_are_reported_with_key_paths(
        make_config: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError) as info:
        make_config({"imap": {"after": "move", "list": "nope", "idle_renew_seconds": 3600,
                              "bogus": 1}})
    text = "\n".join(info.value.problems)
    for key in ("imap.move_to", "imap.list", "imap.idle_renew_seconds", "imap.bogus",
                "imap.host", "imap.password_file"):
        assert key in text
    assert make_config({"imap": {"enabled": False}}).imap is None
