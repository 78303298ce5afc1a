"""An advisory released to N members, each copy encrypted, through the real daemon.

The daemon (a subprocess, system clock) relays to the recording sink. This script
plays the team's CLI: it adds N members with distinct cv25519 keys, creates the
advisory and schedules it for the next whole minute that leaves time to stage
(encrypt) every member's public copy. It then reports, against the instant, when
the first and the last copy reached the sink, and as a reference measured in the
same run: gpg time per recipient with one process per recipient vs one ciphertext
for all recipients (hidden recipients).

    python3 bench/release.py [--members 1000] [--db sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import Daemon, Sink, write_config
from ingest import _pg_schema

from listbot.advisories import schedule as sched
from listbot.advisories.service import build_service, whole_minute
from listbot.core.clock import SystemClock
from listbot.core.mail.pgp import Keyring
from listbot.core.store import Store
from listbot.settings import load
from tests.advisory_helpers import draft
from tests.pgp_fixtures import gpg, make_key, new_home, remove_home

PUBLIC_LISTS = ["announce@lists.example.org"]
KEY_BLOCK = """Key-Type: eddsa
Key-Curve: ed25519
Key-Usage: sign
Subkey-Type: ecdh
Subkey-Curve: cv25519
Subkey-Usage: encrypt
Name-Email: {email}
Expire-Date: 0
%commit
"""


def generate_member_keys(home: Path, count: int) -> dict[str, str]:
    """One gpg batch run making `count` unprotected keys; address -> fingerprint."""
    emails = [f"security@vendor{i:04d}.example" for i in range(count)]
    params = "%no-protection\n" + "".join(KEY_BLOCK.format(email=e) for e in emails)
    gpg(home, "--gen-key", data=params.encode())
    fprs: dict[str, str] = {}
    fpr = ""
    for line in gpg(home, "--with-colons", "--list-keys").stdout.decode().splitlines():
        parts = line.split(":")
        if parts[0] == "fpr" and not fpr:
            fpr = parts[9]
        elif parts[0] == "uid":
            fprs[parts[9].strip("<>")] = fpr
        elif parts[0] == "pub":
            fpr = ""
    return {e: fprs[e] for e in emails}


class TimedSink(Sink):
    """The recording sink, with the wall-clock arrival time of every transaction."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[tuple[float, int]] = []

    def _record(self, env: Any) -> None:
        self.times.append((time.time(), len(env.rcpt_tos)))
        super()._record(env)


async def reference(keyring: Keyring, fprs: list[str],
                    payload: bytes) -> tuple[float, float]:
    """ms per recipient: one gpg run each, and one run with every recipient hidden."""
    start = time.perf_counter()
    for fpr in fprs:
        await keyring.encrypt(payload, [fpr])
    each = (time.perf_counter() - start) / len(fprs) * 1000
    start = time.perf_counter()
    await keyring.encrypt(payload, fprs, hidden_recipients=True)
    hidden = (time.perf_counter() - start) / len(fprs) * 1000
    return each, hidden


async def run(members: int, db: str) -> None:
    sink = TimedSink()
    await sink.start()
    team_home = new_home()
    keys_home = new_home()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        team = make_key(team_home, "Security Team <security@example.org>")
        member_keys = generate_member_keys(keys_home, members)
        gpg(team_home, "--import", data=gpg(keys_home, "--export").stdout)
        keygen = time.perf_counter() - t0
        print(f"key generation (not counted): {members} cv25519 keys + import "
              f"in {keygen:.1f} s")

        url = (f"sqlite+aiosqlite:///{tmp}/listbot.db" if db == "sqlite" else
               "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D"
               + await _pg_schema())
        path = write_config(Path(tmp), url, sink.port, {
            "project": {"name": "Xen", "advisory_prefix": "XSA"},
            "pgp": {"home": str(team_home), "team_fingerprint": team,
                    "require_encryption": True},
            "advisories": {"public_lists": PUBLIC_LISTS},
            "worker": {"poll_interval_seconds": 1.0},
        })
        cfg = load(path)
        store = Store.open(url, SystemClock())
        await store.upgrade()
        async with store.unit() as tx:
            for i, (address, fpr) in enumerate(member_keys.items()):
                await tx.add_member(f"Vendor {i:04d}", address, fpr)
        daemon = Daemon(path)
        await daemon.start()

        keyring = Keyring(team_home)
        svc = build_service(cfg.core, cfg.advisories, cfg.pgp, store, SystemClock(),
                            keyring=keyring)
        each, hidden = await reference(keyring, list(member_keys.values()),
                                       b"Content-Type: text/plain\r\n\r\n" + b"x" * 6000)
        # Staging takes about one encryption per member plus a key check: leave room.
        lead = timedelta(seconds=members * (each / 1000) * 2.5 + 15)
        instant = whole_minute(datetime.now(UTC) + lead + timedelta(minutes=1))
        await svc.create(draft(number=1, embargo=instant, case_id=None), "cli:alice")
        t0 = time.perf_counter()
        await sched.schedule(svc, 1, "cli:alice")
        staging = time.perf_counter() - t0
        assert datetime.now(UTC) < instant, "staging overran the instant; raise the lead"
        print(f"staging (encrypting {members} member copies ahead): {staging:.1f} s; "
              f"instant {instant:%H:%M:%S} UTC, "
              f"{(instant - datetime.now(UTC)).total_seconds():.0f} s away")

        expected = members + len(PUBLIC_LISTS) + len(cfg.core.team_recipients)
        await sink.wait_deliveries(expected, timeout=(instant - datetime.now(UTC))
                                   .total_seconds() + 120)
        at = instant.timestamp()
        early = [t for t, _ in sink.times if t < at]
        first = min(t for t, _ in sink.times) - at
        last = max(t for t, _ in sink.times) - at
        print(f"release to {members} members, each encrypted ({db}): first copy at the "
              f"sink {first:+.3f} s after the instant, last {last:+.3f} s "
              f"({len(sink.deliveries())} deliveries, {len(sink.received)} SMTP "
              f"transactions, {len(early)} before the instant)")
        print(f"reference, gpg per recipient: one process each {each:.2f} ms, "
              f"one ciphertext with {members} hidden recipients {hidden:.3f} ms "
              f"(x{each / hidden:.1f}); serial at the instant would be "
              f"~{each * members / 1000:.1f} s")
        await daemon.terminate(60)
        await store.close()
    await sink.stop()
    remove_home(team_home)
    remove_home(keys_home)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    asyncio.run(run(args.members, args.db))
