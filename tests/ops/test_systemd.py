"""`listbot serve` under the systemd notify protocol, through a real datagram socket.

The daemon runs as a subprocess with NOTIFY_SOCKET pointing at a socket the test
binds, as systemd would; SIGHUP/SIGTERM are real signals.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from listbot.core.errors import EX_CONFIG, EX_TEMPFAIL
from listbot.core.sdnotify import Notifier, watchdog_interval
from tests import tomlfile
from tests.conftest import BASE_CONFIG, merge

REPO = Path(__file__).resolve().parents[2]
APPLICATIONS = "applications@lists.example.org"


def config_data(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    data = merge(BASE_CONFIG, {
        "instance": {"state_dir": str(tmp_path / "state")},
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'listbot.db'}"},
        "listen": {"smtp": ""},
        "delivery": {"transport": "maildir"},
        **extra,
    })
    del data["lists"]["applications"]  # a reload adds it back
    return data


class NotifySocket:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="lbsd", dir="/tmp"))
        self.path = self.dir / "notify"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.setblocking(False)
        self.seen: list[dict[str, str]] = []

    async def next_with(self, key: str, timeout: float = 20) -> dict[str, str]:
        loop = asyncio.get_running_loop()

        async def read() -> dict[str, str]:
            while True:
                data = await loop.sock_recv(self.sock, 4096)
                fields = dict(line.split("=", 1) for line in data.decode().splitlines())
                self.seen.append(fields)
                if key in fields:
                    return fields

        return await asyncio.wait_for(read(), timeout)

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)
        self.dir.rmdir()


def spawn(config: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "listbot", "--config", str(config), "serve"],
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture
async def notify() -> AsyncIterator[NotifySocket]:
    ns = NotifySocket()
    try:
        yield ns
    finally:
        ns.close()


@pytest.fixture
def daemon_files(tmp_path: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    data = config_data(tmp_path)
    yield tomlfile.write(tmp_path / "listbot.toml", data), data


def rcpt_code(port: int, address: str) -> int:
    with smtplib.LMTP("127.0.0.1", port) as client:
        client.ehlo_or_helo_if_needed()
        client.mail("someone@example.net")
        return client.rcpt(address)[0]


async def test_ready_watchdog_reload_and_stop(notify: NotifySocket,
                                              daemon_files: tuple[Path, dict[str, Any]],
                                              tmp_path: Path) -> None:
    config, data = daemon_files
    proc = spawn(config, {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"})
    try:
        ready = await notify.next_with("READY")
        assert ready["READY"] == "1" and "serving 2 lists" in ready["STATUS"]
        match = re.search(r"lmtp 127\.0\.0\.1:(\d+)", ready["STATUS"])
        assert match, ready
        port = int(match.group(1))
        await notify.next_with("WATCHDOG")
        assert await asyncio.to_thread(rcpt_code, port, APPLICATIONS) == 550

        # A bad file: the new list AND a broken key. Nothing of it may take effect.
        bad = merge(data, {"lists": {"applications": BASE_CONFIG["lists"]["applications"]},
                           "worker": {"batch": "many"}})
        tomlfile.write(config, bad)
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        proc.send_signal(signal.SIGHUP)
        reloading = await notify.next_with("RELOADING")
        assert int(reloading["MONOTONIC_USEC"]) >= before
        after_bad = await notify.next_with("READY")
        assert "old config and rules kept" in after_bad["STATUS"]
        assert "worker.batch" in after_bad["STATUS"]
        assert await asyncio.to_thread(rcpt_code, port, APPLICATIONS) == 550
        await notify.next_with("WATCHDOG")  # still alive after the refused reload

        good = merge(data, {"lists": {"applications": BASE_CONFIG["lists"]["applications"]}})
        tomlfile.write(config, good)
        proc.send_signal(signal.SIGHUP)
        await notify.next_with("RELOADING")
        after_good = await notify.next_with("READY")
        assert "reloaded" in after_good["STATUS"] and "serving 3 lists" in after_good["STATUS"]
        assert await asyncio.to_thread(rcpt_code, port, APPLICATIONS) == 250

        proc.send_signal(signal.SIGTERM)
        stopping = await notify.next_with("STOPPING")
        assert stopping["STOPPING"] == "1"
        assert await asyncio.to_thread(proc.wait, 20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_exit_78_on_bad_config(tmp_path: Path) -> None:
    data = config_data(tmp_path, worker={"batch": "many"})
    proc = spawn(tomlfile.write(tmp_path / "bad.toml", data), {})
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == EX_CONFIG
    assert b"worker.batch" in err


def test_exit_75_when_database_unreachable(tmp_path: Path) -> None:
    data = config_data(tmp_path, database={"url": "postgresql+psycopg://x@127.0.0.1:1/none"})
    proc = spawn(tomlfile.write(tmp_path / "nodb.toml", data), {})
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EX_TEMPFAIL, err.decode()[-2000:]


def test_status_cannot_inject_a_second_field(tmp_path: Path) -> None:
    path = Path(tempfile.mkdtemp(prefix="lbsd", dir="/tmp")) / "n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        assert Notifier(str(path)).status("bad\nREADY=1")
        lines = sock.recv(4096).decode().splitlines()
    assert lines == ["STATUS=bad READY=1"]
    path.unlink()
    path.parent.rmdir()


def test_watchdog_interval_is_half_and_respects_pid() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"},
                             pid=2) is None
    assert watchdog_interval({}) is None
    assert not Notifier(None).ready("x")


async def test_watchdog_stops_pinging_when_a_worker_task_died(notify: NotifySocket) -> None:
    from types import SimpleNamespace
    from typing import cast

    from listbot.app import App
    from listbot.ops.lifecycle import watchdog

    async def crashed() -> None:
        raise RuntimeError("worker crashed")

    dead = asyncio.get_running_loop().create_task(crashed(), name="worker")
    with pytest.raises(RuntimeError):
        await dead
    app = cast(App, SimpleNamespace(tasks=[dead]))
    stop = asyncio.Event()
    pinger = asyncio.get_running_loop().create_task(
        watchdog(app, Notifier(str(notify.path)), 0.01, stop))
    status = await notify.next_with("STATUS")
    stop.set()
    await pinger
    assert status["STATUS"] == "unhealthy: worker stopped"
    assert not any("WATCHDOG" in fields for fields in notify.seen)
