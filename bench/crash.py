"""Crash test: SIGKILL the daemon at random moments under a steady load of member posts,
restart it each time, then reconcile every acknowledged post against a recording relay.

    python3 bench/crash.py [--db sqlite|postgresql] [--kills 5] [--members 4]
                           [--rate 40] [--concurrency 2] [--seed N]

A post is acknowledged when the daemon answered its LMTP DATA with 250. At the end every
acknowledged post must have reached the relay once per member: a missing copy is lost
(must be 0). A copy the relay accepted more than once is delivered twice.

"In flight" (the rule printed with the figures): the relay numbers its connections; a
connection belongs to the daemon run during which the relay accepted its first
transaction (a run lasts from its spawn to the next spawn). The transaction in flight
at a kill is, for each connection of a run that ended in SIGKILL, the last transaction
the relay accepted on it: the daemon commits each transaction's outcome before it starts
the next one on that connection, so only that one can have been accepted without its
outcome committed. A duplicate counts as "in flight" when its first acceptance was such a
transaction, "outside" otherwise (outside must be 0 too).

Restart to first delivery: from spawning the restarted daemon to the first transaction
the relay accepted after that.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session
from common import Daemon, LmtpClient, message, write_config
from fanout import add_members
from ingest import _pg_schema

RCPT = "discuss@lists.example.org"
MSGID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)
RULE = ("in flight = the last transaction the relay accepted on each connection of a "
        "daemon run that ended in SIGKILL")


@dataclass
class Accepted:
    at: float  # time.monotonic() when the relay answered DATA with 250
    conn: int
    msgid: str
    rcpts: list[str]


@dataclass
class Relay:
    """A recording SMTP relay that notes, for each transaction, when and on which
    connection it was accepted (tests/sink.py records neither)."""

    accepted: list[Accepted] = field(default_factory=list)
    port: int = 0
    _conns: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, decode_data=False, hostname="relay"), "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        conn = getattr(session, "bench_conn", None)
        if conn is None:
            self._conns += 1
            conn = self._conns
            session.bench_conn = conn  # type: ignore[attr-defined]
        found = MSGID.search(envelope.original_content or b"")
        msgid = found.group(1).decode() if found else "?"
        self.accepted.append(Accepted(time.monotonic(), conn, msgid, list(envelope.rcpt_tos)))
        return "250 2.0.0 queued"


@dataclass
class Run:
    spawned: float
    killed: float | None = None


@dataclass
class Load:
    """Member posts at a steady rate over a few LMTP connections; follows the daemon's
    port across restarts and keeps the Message-ID of every post answered with 250."""

    sender: str
    rate: float
    concurrency: int
    port: int = 0
    up: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False
    acked: list[str] = field(default_factory=list)
    sent: int = 0

    async def client(self) -> None:
        interval = self.concurrency / self.rate
        while not self.stopping:
            await self.up.wait()
            lmtp = LmtpClient(self.port)
            try:
                await lmtp.connect()
                while not self.stopping:
                    i = self.sent
                    self.sent += 1
                    data = message(i, self.sender, size=2048)
                    started = time.monotonic()
                    await lmtp.send(self.sender, [RCPT], data)
                    found = MSGID.search(data)
                    assert found is not None
                    self.acked.append(found.group(1).decode())
                    await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
                await lmtp.close()
            except (AssertionError, OSError, asyncio.IncompleteReadError):
                # The daemon died under this connection: the post had no 250, so it is
                # not acknowledged. Wait for the restart.
                await asyncio.sleep(0.05)


async def run(args: argparse.Namespace) -> int:
    rnd = random.Random(args.seed)
    relay = Relay()
    await relay.start()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        schema = await _pg_schema() if args.db == "postgresql" else None
        url = (f"sqlite+aiosqlite:///{tmp}/listbot.db" if schema is None else
               "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D"
               + schema)
        members = await add_members(url, args.members)
        # A long lease: the restart takes the dead run's claims back, it does not wait.
        config = write_config(Path(tmp), url, relay.port,
                              {"worker": {"lease_seconds": 300}})
        load = Load(members[0], args.rate, args.concurrency)
        clients = [asyncio.create_task(load.client()) for _ in range(args.concurrency)]
        daemon = await spawn(config, runs, load)
        for _ in range(args.kills):
            await asyncio.sleep(rnd.uniform(args.min_up, args.max_up))
            load.up.clear()
            runs[-1].killed = time.monotonic()
            daemon.kill()
            await daemon.wait()
            daemon = await spawn(config, runs, load)
        await asyncio.sleep(rnd.uniform(args.min_up, args.max_up))
        load.stopping = True
        await asyncio.gather(*clients)
        drained = await drain(relay, set(load.acked), members, args.drain)
        code = await daemon.terminate(60)
        if schema is not None:
            await _drop_schema(schema)
    relay.stop()
    lost = report(args, relay, runs, load, members, drained)
    return 1 if lost or code != 0 else 0


async def _drop_schema(schema: str) -> None:
    import psycopg
    async with await psycopg.AsyncConnection.connect(
            "host=127.0.0.1 dbname=test user=postgres", autocommit=True) as conn:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")


async def spawn(config: Path, runs: list[Run], load: Load) -> Daemon:
    daemon = Daemon(config)
    runs.append(Run(time.monotonic()))
    await daemon.start(60)
    load.port = daemon.ports["lmtp"]
    load.up.set()
    return daemon


async def drain(relay: Relay, acked: set[str], members: list[str], limit: float) -> float:
    """Wait until every acknowledged post reached every member; seconds it took."""
    start = time.monotonic()
    want = len(acked) * len(members)
    while time.monotonic() - start < limit:
        got = {(a.msgid, r) for a in relay.accepted if a.msgid in acked for r in a.rcpts}
        if len(got) >= want:
            break
        await asyncio.sleep(0.2)
    return time.monotonic() - start


def in_flight(relay: Relay, runs: list[Run]) -> set[int]:
    """Indexes into relay.accepted of the transactions in flight at a kill (see RULE)."""
    spawns = [r.spawned for r in runs]
    first: dict[int, float] = {}
    last: dict[int, int] = {}
    for i, a in enumerate(relay.accepted):
        first.setdefault(a.conn, a.at)
        last[a.conn] = i
    out = set()
    for conn, i in last.items():
        owner = max(n for n, s in enumerate(spawns) if s <= first[conn])
        if runs[owner].killed is not None:
            out.add(i)
    return out


def report(args: argparse.Namespace, relay: Relay, runs: list[Run], load: Load,
           members: list[str], drained: float) -> int:
    acked = set(load.acked)
    first_at: dict[tuple[str, str], int] = {}
    copies: Counter[tuple[str, str]] = Counter()
    for i, a in enumerate(relay.accepted):
        for r in a.rcpts:
            copies[(a.msgid, r)] += 1
            first_at.setdefault((a.msgid, r), i)
    lost = sum(1 for m in acked for r in members if copies[(m, r)] == 0)
    flight = in_flight(relay, runs)
    twice = [k for k, n in copies.items() if n > 1]
    twice_in = sum(1 for k in twice if first_at[k] in flight)
    unacked = {m for m, _ in copies} - acked
    restarts = runs[1:]
    firsts = [next((a.at - r.spawned for a in relay.accepted if a.at >= r.spawned), None)
              for r in restarts]
    known = [f for f in firsts if f is not None]
    print(f"crash test ({args.db}): {args.kills} SIGKILLs at random moments "
          f"({args.min_up}-{args.max_up} s after each start), member posts at "
          f"{args.rate:.0f}/s over {args.concurrency} LMTP connections, "
          f"fanned out to {args.members} members")
    print(f"rule: {RULE}")
    print(f"posts acknowledged: {len(acked)} ({len(acked) * len(members)} copies expected; "
          f"{len(unacked)} posts without a 250 were delivered as well)")
    print(f"lost: {lost}")
    print(f"delivered twice: {len(twice)} copies in {len({first_at[k] for k in twice})} "
          f"transactions (in flight {twice_in} / outside {len(twice) - twice_in})")
    print(f"transactions at the relay: {len(relay.accepted)}, of them in flight at a kill: "
          f"{len(flight)}")
    print(f"kills: {sum(1 for r in runs if r.killed is not None)}, restarts: {len(restarts)}")
    if known:
        print(f"restart to first delivery: min {min(known):.2f} s, median "
              f"{statistics.median(known):.2f} s, max {max(known):.2f} s ("
              + ", ".join("-" if f is None else f"{f:.2f}" for f in firsts) + ")")
    else:
        print("restart to first delivery: none")
    print(f"drained {drained:.1f} s after the load stopped")
    return lost


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--rate", type=float, default=40.0, help="posts per second")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--min-up", type=float, default=0.5,
                        help="least seconds between a start and the next kill")
    parser.add_argument("--max-up", type=float, default=2.0)
    parser.add_argument("--drain", type=float, default=120.0,
                        help="seconds to wait for the last deliveries")
    parser.add_argument("--seed", type=int, default=None)
    sys.exit(asyncio.run(run(parser.parse_args())))
