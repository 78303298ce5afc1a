"""Shared pieces of the benchmarks: a daemon subprocess, a fast LMTP client, a sink."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import tomlfile  # noqa: E402
from tests.conftest import BASE_CONFIG, merge  # noqa: E402
from tests.lmtp import LmtpClient  # noqa: E402
from tests.proc import Daemon, cli  # noqa: E402
from tests.sink import Sink  # noqa: E402

__all__ = ["BASE_CONFIG", "Daemon", "LmtpClient", "Sink", "cli", "cpu_s", "merge", "named_cpu_s",
           "rss_mb", "write_config"]


def write_config(tmp: Path, db_url: str, sink_port: int,
                 extra: dict[str, Any] | None = None) -> Path:
    data = merge(BASE_CONFIG, {
        "instance": {"state_dir": str(tmp / "state")},
        "database": {"url": db_url},
        "delivery": {"smtp": {"port": sink_port, "pool_size": 4,
                              "max_recipients_per_transaction": 100}},
        "worker": {"poll_interval_seconds": 1.0, "batch": 256},
        "listen": {"max_message_bytes": 1 << 20},
    })
    return tomlfile.write(tmp / "listbot.toml", merge(data, extra or {}))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def named_cpu_s(comm: str) -> float:
    """CPU seconds so far of every live process with this command name (e.g. postgres)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        if text[text.index("(") + 1:text.rindex(")")] == comm:
            total += cpu_s(int(stat.parent.name))
    return total


def message(i: int, sender: str, size: int = 4096) -> bytes:
    head = (f"From: Vendor <{sender}>\r\nTo: discuss@lists.example.org\r\n"
            f"Subject: Re: [XSA-{i}] backport question\r\n"
            f"Message-ID: <bench-{i}-{os.getpid()}@bench.example>\r\n\r\n")
    line = "The patch applies to 4.17 and the build passes on x86 and arm64.\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return (head + body).encode()


# The reference runs on the daemon's event loop (uvloop), so the ratio compares the
# work listbot adds, not two event loops.
BARE_SERVER = r'''
import asyncio, sys
import uvloop
from aiosmtpd.lmtp import LMTP
class H:
    async def handle_DATA(self, server, session, envelope):
        return "\r\n".join("250 OK" for _ in envelope.rcpt_tos)
async def main():
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: LMTP(H(), decode_data=False), "127.0.0.1", 0)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
uvloop.run(main())
'''


async def start_bare() -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", BARE_SERVER,
                                                stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    port = int((await proc.stdout.readline()).decode())
    return proc, port


async def load(port: int, sender: str, rcpt: str, count: int,
               concurrency: int) -> tuple[float, float]:
    """Send `count` messages over `concurrency` connections; (seconds, first 250 time)."""
    clients = [LmtpClient(port) for _ in range(concurrency)]
    await asyncio.gather(*(c.connect() for c in clients))
    queue = list(range(count))
    firsts: list[float] = []

    async def run(client: LmtpClient) -> None:
        while queue:
            i = queue.pop()
            firsts.append(await client.send(sender, [rcpt], message(i, sender)))

    start = time.perf_counter()
    await asyncio.gather(*(run(c) for c in clients))
    elapsed = time.perf_counter() - start
    await asyncio.gather(*(c.close() for c in clients))
    return elapsed, min(firsts)
