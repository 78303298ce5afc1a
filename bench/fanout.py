"""End to end: posts to a discuss list of N members, from the first 250 to the last
delivery at the recording sink; and one post to 1,000 members.

    python3 bench/fanout.py [--posts 500] [--members 20] [--big 1000] [--db sqlite]
                            [--mailman [--venv DIR]]

--mailman runs GNU Mailman 3 on the same posts in the same run (bench/mailman_ref.py
sets it up) and prints listbot's end-to-end posts/s as a multiple of Mailman's.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from common import Daemon, LmtpClient, Sink, cpu_s, load, rss_mb, write_config
from ingest import _pg_schema

from listbot.core.clock import SystemClock
from listbot.core.store import Store

RCPT = "discuss@lists.example.org"


async def add_members(url: str, count: int) -> list[str]:
    store = Store.open(url, SystemClock())
    await store.upgrade()
    addresses = [f"security@vendor{i:04d}.example" for i in range(count)]
    async with store.unit() as tx:
        for i, address in enumerate(addresses):
            await tx.add_member(f"Vendor {i:04d}", address, None)
    await store.close()
    return addresses


async def run(posts: int, members: int, db: str, concurrency: int) -> dict[str, float]:
    sink = Sink()
    await sink.start()
    with tempfile.TemporaryDirectory() as tmp:
        url = (f"sqlite+aiosqlite:///{tmp}/listbot.db" if db == "sqlite" else
               "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D"
               + await _pg_schema())
        addresses = await add_members(url, members)
        daemon = Daemon(write_config(Path(tmp), url, sink.port))
        await daemon.start()
        assert daemon.proc is not None
        idle_rss = rss_mb(daemon.proc.pid)
        expected = posts * members
        cpu_start = cpu_s(daemon.proc.pid)
        start = time.perf_counter()
        if posts == 1:
            client = LmtpClient(daemon.ports["lmtp"])
            await client.connect()
            first = await client.send(addresses[0], [RCPT], _one_post(addresses[0]))
            await client.close()
            accepted = first - start
        else:
            accepted, first = await load(daemon.ports["lmtp"], addresses[0], RCPT, posts,
                                         concurrency)
        peak = rss_mb(daemon.proc.pid)
        await sink.wait_deliveries(expected, timeout=600)
        done = time.perf_counter()
        cpu = cpu_s(daemon.proc.pid) - cpu_start
        peak = max(peak, rss_mb(daemon.proc.pid))
        await daemon.terminate(60)
    await sink.stop()
    total = done - first
    return {"posts": posts, "members": members, "accept_s": accepted, "total_s": total,
            "posts_per_s": posts / total, "deliveries_per_s": expected / total,
            "idle_rss_mb": idle_rss, "peak_rss_mb": peak, "cpu_s": cpu,
            "transactions": len(sink.received)}


def _one_post(sender: str) -> bytes:
    # Worded as the shipped rules approve: a held post would never reach the sink.
    return (f"From: <{sender}>\r\nTo: {RCPT}\r\nSubject: Re: [XSA-465] fixed packages\r\n"
            f"Message-ID: <one@bench.example>\r\n\r\nFixed packages for XSA-465 are "
            f"available to list members in our private repository.\r\n").encode()


async def main(args: argparse.Namespace) -> None:
    r = await run(args.posts, args.members, args.db, args.concurrency)
    print(f"{r['posts']} posts x {r['members']} members ({args.db}, concurrency "
          f"{args.concurrency}): accepted in {r['accept_s']:.2f} s, last delivery "
          f"{r['total_s']:.2f} s after the first 250")
    print(f"  {r['posts_per_s']:.0f} posts/s end to end, {r['deliveries_per_s']:.0f} "
          f"deliveries/s, {r['transactions']:.0f} SMTP transactions at the sink")
    print(f"  daemon RSS idle {r['idle_rss_mb']:.0f} MB, peak {r['peak_rss_mb']:.0f} MB; "
          f"daemon CPU {r['cpu_s']:.1f} s ({1000 * r['cpu_s'] / r['posts']:.1f} ms per post)")
    if args.mailman:
        from mailman_ref import run_mailman
        m = await run_mailman(args.posts, args.members, args.concurrency, venv=args.venv)
        print(f"  reference: mailman {m['version']} {m['posts_per_s']:.1f} posts/s end to "
              f"end ({m['accept_per_s']:.0f} msgs/s over LMTP); listbot / mailman = "
              f"{r['posts_per_s'] / m['posts_per_s']:.1f}x")
    if args.big:
        b = await run(1, args.big, args.db, 1)
        print(f"1 post x {args.big} members: delivered {b['total_s']:.2f} s after its 250 "
              f"({b['transactions']:.0f} SMTP transactions)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=500)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--big", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--mailman", action="store_true",
                        help="also run GNU Mailman 3 on the same load (the reference)")
    parser.add_argument("--venv", help="Mailman's virtual environment to create or reuse")
    asyncio.run(main(parser.parse_args()))
