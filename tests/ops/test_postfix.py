"""A real Postfix in front of listbot: maps from `listbot aliases`, LMTP to the daemon.

Postfix runs with its own config and queue directories on a free loopback port;
swaks is the sending client. Skipped (with the reason) without postfix/swaks/root.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from listbot import settings
from listbot.app import App
from listbot.cli.common import root
from listbot.core.clock import FakeClock
from listbot.core.model import InboundState
from listbot.settings import Settings
from tests import tomlfile
from tests.conftest import BASE_CONFIG, merge
from tests.daemon import MEMBERS, add_members, running, settle
from tests.mta_postfix import Postfix, free_port, unavailable
from tests.sink import Sink

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=unavailable() or "")

MEMBER = "security@vendor-a.example"
DISCUSS = "discuss@lists.example.org"


def post(subject: str) -> str:
    return (f"From: Vendor A <{MEMBER}>\nTo: {DISCUSS}\nSubject: {subject}\n"
            f"Message-ID: <{abs(hash(subject))}@vendor-a.example>\n\n"
            "The XSA-465 patch applies to 4.17; the backport builds and passes the tests.\n")


@pytest.fixture
def config_file(tmp_path: Path, sink: Sink) -> Path:
    data = merge(BASE_CONFIG, {
        "instance": {"state_dir": str(tmp_path / "state")},
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'listbot.db'}"},
        "listen": {"lmtp": f"127.0.0.1:{free_port()}", "smtp": ""},
        "delivery": {"smtp": {"port": sink.port}},
    })
    return tomlfile.write(tmp_path / "listbot.toml", data)


@pytest.fixture
def cfg(config_file: Path) -> Settings:
    return settings.load(config_file)


@pytest.fixture
def postfix(tmp_path: Path, cfg: Settings, config_file: Path) -> Iterator[Postfix]:
    maps = tmp_path / "maps"
    pf = Postfix.create(maps)
    result = CliRunner().invoke(root, ["--config", str(config_file), "aliases",
                                       "--directory", str(maps)], env=pf.env)
    assert result.exit_code == 0, result.output
    assert f"lmtp:[127.0.0.1]:{cfg.core.lmtp.port if cfg.core.lmtp else 0}" in result.output
    pf.start()
    try:
        yield pf
    finally:
        pf.stop()
        pf.remove()


@pytest.fixture
async def daemon(cfg: Settings, clock: FakeClock) -> AsyncIterator[App]:
    app = App.create(cfg, clock=clock)
    await app.start()
    await add_members(app)
    try:
        yield app
    finally:
        await app.stop()


async def swaks(pf: Postfix, rcpt: str, data: str) -> tuple[int, str]:
    done = await asyncio.to_thread(pf.swaks, MEMBER, rcpt, data)
    return done.returncode, done.stdout + done.stderr


async def test_message_through_postfix_is_processed(postfix: Postfix, daemon: App,
                                                    sink: Sink) -> None:
    code, out = await swaks(postfix, DISCUSS, post("through postfix"))
    assert code == 0, out
    await sink.wait_deliveries(len(MEMBERS), timeout=30)
    assert sink.recipients() == sorted(a for _, a in MEMBERS)
    assert sink.received[0].message["Subject"] == "through postfix"
    assert "Received: from" in sink.received[0].data.decode(), "Postfix's trace survives"


async def test_sub_address_detail_reaches_listbot(postfix: Postfix, daemon: App) -> None:
    code, out = await swaks(postfix, "discuss+tok123@lists.example.org", post("detail"))
    assert code == 0, out
    await settle(daemon, timeout=30)

    async def stored() -> None:
        while not (rows := await daemon.store.inbound_listing(list(InboundState))):
            await asyncio.sleep(0.05)
        assert rows[0]["detail"] == "tok123"

    await asyncio.wait_for(stored(), 30)


async def test_unknown_recipient_is_refused_by_postfix_itself(postfix: Postfix,
                                                              daemon: App) -> None:
    code, out = await swaks(postfix, "nobody@lists.example.org", post("unknown"))
    assert code != 0
    assert "550 5.1.1" in out and "relay recipient table" in out
    # Postfix decided alone: listbot never saw a connection for it.
    assert "lmtp" not in postfix.log().split("nobody@lists.example.org")[-1]


async def test_listbot_down_postfix_queues_then_delivers(postfix: Postfix, cfg: Settings,
                                                         clock: FakeClock,
                                                         sink: Sink) -> None:
    code, out = await swaks(postfix, DISCUSS, post("while down"))
    assert code == 0, out  # Postfix accepted and queued it although listbot is down

    async def deferred() -> None:
        while "status=deferred" not in postfix.log():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(deferred(), 30)
    assert "while down" not in str(sink.received)
    assert postfix.queue().count("@") >= 1
    async with running(cfg, clock, members=()) as app:
        await add_members(app)
        await asyncio.to_thread(postfix.flush)
        await sink.wait_deliveries(len(MEMBERS), timeout=30)
        assert sink.received[0].message["Subject"] == "while down"
        assert "status=sent" in postfix.log()
        assert "Mail queue is empty" in postfix.queue()
