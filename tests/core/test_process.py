"""The daemon and the CLI as real processes: crash safety, signals, exit codes."""

from __future__ import annotations

import asyncio
import json
import smtplib
from pathlib import Path
from typing import Any

import pytest

from listbot.core.clock import SystemClock
from listbot.core.model import InboundState, RecipientRole, Route
from listbot.core.store import Arrival, Store
from tests import tomlfile
from tests.conftest import BASE_CONFIG, merge
from tests.daemon import MEMBERS, post
from tests.proc import Daemon, cli
from tests.sink import Sink

pytestmark = pytest.mark.slow

DISCUSS = "discuss@lists.example.org"
MEMBER = "security@vendor-a.example"


def write_config(tmp_path: Path, db_url: str, sink_port: int,
                 extra: dict[str, Any] | None = None) -> Path:
    data = merge(BASE_CONFIG, {
        "instance": {"state_dir": str(tmp_path / "state")},
        "database": {"url": db_url},
        "delivery": {"smtp": {"port": sink_port}},
        "worker": {"poll_interval_seconds": 0.2},
        # The daemon refuses to start without good moderation rules.
        "rules": {"dir": str(Path(__file__).resolve().parents[2] / "rules")},
    })
    return tomlfile.write(tmp_path / "listbot.toml", merge(data, extra or {}))


async def add_members(config: Path) -> None:
    for name, address in MEMBERS:
        code, _, err = await cli(config, "members", "add", name, address)
        assert code == 0, err


def lmtp(port: int, data: bytes) -> dict[str, Any]:
    with smtplib.LMTP("127.0.0.1", port) as client:
        return dict(client.sendmail(MEMBER, [DISCUSS], data))


async def test_sigkill_right_after_250_loses_nothing(tmp_path: Path, db_url: str,
                                                     sink: Sink) -> None:
    config = write_config(tmp_path, db_url, sink.port,
                          {"delivery": {"backoff_initial_seconds": 0.2}})
    await add_members(config)
    # The relay refuses everything at first, so the kill surely comes before delivery.
    sink.responder = lambda env: "451 4.3.0 relay down"
    daemon = Daemon(config)
    await daemon.start()
    assert await asyncio.to_thread(lmtp, daemon.ports["lmtp"], post(MEMBER)) == {}
    daemon.kill()
    await daemon.wait()

    store = Store.open(db_url, SystemClock())
    rows = await store.inbound_listing(list(InboundState))
    await store.close()
    assert len(rows) == 1, "250 was answered, so the message must be in the store"

    sink.responder = None
    restarted = Daemon(config)
    await restarted.start()
    try:
        await sink.wait_deliveries(len(MEMBERS), timeout=60)
    finally:
        assert await restarted.terminate() == 0
    assert sink.recipients() == sorted(a for _, a in MEMBERS)


async def test_sigterm_drains_and_exits_zero(tmp_path: Path, db_url: str, sink: Sink) -> None:
    config = write_config(tmp_path, db_url, sink.port)
    await add_members(config)
    daemon = Daemon(config)
    await daemon.start()
    await asyncio.to_thread(lmtp, daemon.ports["lmtp"], post(MEMBER))
    await sink.wait_deliveries(len(MEMBERS))
    assert await daemon.terminate() == 0
    assert any(e.get("event") == "daemon.stopped" for e in daemon.events)
    logged = json.dumps(daemon.events)
    assert "Looks good." not in logged, "bodies never reach the logs"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_second_daemon_on_same_sqlite_file_is_refused(tmp_path: Path, db_url: str,
                                                            sink: Sink) -> None:
    config = write_config(tmp_path, db_url, sink.port)
    first = Daemon(config)
    await first.start()
    try:
        code, _out, err = await cli(config, "serve")
        assert code == 75
        assert "another listbot daemon" in err
    finally:
        await first.terminate()


async def test_check_config_reports_every_error_and_exits_78(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    tomlfile.write(bad, {
        "listen": {"lmtp": "nowhere", "max_message_bytes": -1},
        "delivery": {"transport": "pigeon"},
        "team": {"address": "not an address"},
        "lists": {"x": {"kind": "mystery", "address": "x@y.example"}},
        "surprise": {"key": 1},
    })
    code, _, err = await cli(bad, "check-config")
    assert code == 78
    for fragment in ("listen.lmtp", "listen.max_message_bytes", "delivery.transport",
                     "team.address", "lists.x.kind", "surprise: unknown key"):
        assert fragment in err, fragment
    code, _, err = await cli(tmp_path / "missing.toml", "check-config")
    assert code == 78


async def test_toml_syntax_error_is_78(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[instance\nname = 1\n")
    code, _, err = await cli(bad, "check-config")
    assert code == 78 and "line 1" in err


async def test_usage_errors_exit_64(tmp_path: Path, db_url: str) -> None:
    config = write_config(tmp_path, db_url, 1)
    code, _, _ = await cli(config, "members", "add", "OnlyName")
    assert code == 64
    code, _, _ = await cli(config, "no-such-command")
    assert code == 64
    code, _, _ = await cli(config, "members", "add", "X", "not-an-address")
    assert code == 64


async def test_inject_stores_and_daemon_processes_it(tmp_path: Path, db_url: str,
                                                     sink: Sink) -> None:
    config = write_config(tmp_path, db_url, sink.port)
    await add_members(config)
    # A pipe hands us LF line endings: inject canonicalises them.
    code, _out, err = await cli(config, "inject", "--to", DISCUSS, "--from", MEMBER,
                               stdin=post(MEMBER).replace(b"\r\n", b"\n"))
    assert code == 0, err
    daemon = Daemon(config)
    await daemon.start()
    try:
        await sink.wait_deliveries(len(MEMBERS))
    finally:
        await daemon.terminate()
    assert b"\r\n" in sink.received[0].data and b"\n\n" not in sink.received[0].data


async def test_inject_exit_codes(tmp_path: Path, sink: Sink) -> None:
    unreachable = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    config = write_config(tmp_path, unreachable, sink.port)
    code, _, err = await cli(config, "inject", "--to", DISCUSS, stdin=post(MEMBER))
    assert code == 75, err
    code, _, _ = await cli(config, "inject", "--to", "nobody@lists.example.org",
                           stdin=post(MEMBER))
    assert code == 67
    code, _, _ = await cli(config, "inject", "--to", DISCUSS, stdin=b"Subject: x\r\rbad\n")
    assert code == 65


async def test_members_and_queue_listings_as_json(tmp_path: Path, db_url: str) -> None:
    config = write_config(tmp_path, db_url, 1)
    await add_members(config)
    code, out, _ = await cli(config, "members", "list", "--json")
    assert code == 0
    assert sorted(m["address"] for m in json.loads(out)) == sorted(a for _, a in MEMBERS)
    code, _, err = await cli(config, "members", "add", "Vendor A", "other@vendor.example")
    assert code == 65 and "already" in err
    code, out, _ = await cli(config, "members", "remove", "Vendor A", "--reason", "left")
    assert code == 0
    code, out, _ = await cli(config, "queue", "list", "--json")
    assert code == 0 and json.loads(out) == []
    code, out, _ = await cli(config, "queue", "retry", "999")
    assert code == 65
    code, out, _ = await cli(config, "audit", "list", "--json")
    actions = [e["action"] for e in json.loads(out)]
    assert actions.count("member.added") == 3 and "member.removed" in actions


async def test_retry_refuses_what_intake_refused(tmp_path: Path, db_url: str) -> None:
    # IMAP keeps a message with a bare LF quarantined; retrying must not feed it to the
    # worker, whose copies would carry it to the relay.
    config = write_config(tmp_path, db_url, 1)
    store = Store.open(db_url, SystemClock())
    await store.upgrade()
    route = Route("discuss", RecipientRole.POST, None)
    [bad, good] = await store.store_arrivals([
        Arrival("imap", "", DISCUSS, route, b"Subject: x\r\n\r\nsmuggled\n.\r\n"),
        Arrival("imap", "", DISCUSS, route, b"Subject: y\r\n\r\nfine\r\n")])
    for msg_id in (bad, good):
        assert await store.quarantine(msg_id, None, "test")
    await store.close()
    code, _, err = await cli(config, "queue", "retry", str(bad))
    assert code == 65 and "bare CR or LF" in err
    code, out, _ = await cli(config, "queue", "retry", str(good))
    assert code == 0 and "queued again" in out
    code, out, _ = await cli(config, "queue", "list", "--json")
    states = {row["id"]: row["state"] for row in json.loads(out)}
    assert states[bad] == "quarantined" and states[good] != "quarantined"
