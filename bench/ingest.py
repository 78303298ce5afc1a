"""Durable ingest vs a bare aiosmtpd server that answers 250 at once (same run).

    python3 bench/ingest.py [--count 2000] [--db sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
from pathlib import Path

from common import Daemon, Sink, load, start_bare, write_config

SENDER = "security@vendor-a.example"
RCPT = "discuss@lists.example.org"


async def main(count: int, db: str) -> None:
    sink = Sink()
    await sink.start()
    bare, bare_port = await start_bare()
    with tempfile.TemporaryDirectory() as tmp:
        url = (f"sqlite+aiosqlite:///{tmp}/listbot.db" if db == "sqlite" else
               "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D"
               + await _pg_schema())
        daemon = Daemon(write_config(Path(tmp), url, sink.port))
        await daemon.start()
        print(f"ingest of {count} messages of ~4 KB over LMTP ({db})")
        print(f"{'concurrency':>11} {'bare msgs/s':>12} {'listbot msgs/s':>15} {'ratio':>6}")
        for concurrency in (1, 10, 50):
            bare_s, _ = await load(bare_port, SENDER, RCPT, count, concurrency)
            lb_s, _ = await load(daemon.ports["lmtp"], SENDER, RCPT, count, concurrency)
            print(f"{concurrency:>11} {count / bare_s:>12.0f} {count / lb_s:>15.0f} "
                  f"{bare_s / lb_s:>6.2f}")
        await daemon.terminate(60)
    bare.kill()
    await bare.wait()
    await sink.stop()


async def _pg_schema() -> str:
    import psycopg
    schema = f"bench_{secrets.token_hex(4)}"
    async with await psycopg.AsyncConnection.connect(
            "host=127.0.0.1 dbname=test user=postgres", autocommit=True) as conn:
        await conn.execute(f"CREATE SCHEMA {schema}")
    return schema


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    asyncio.run(main(args.count, args.db))
