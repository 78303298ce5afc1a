"""One daemon vs two daemons on one PostgreSQL: end-to-end fan-out in the same run.

    python3 bench/cluster.py [--posts 500] [--members 20] [--concurrency 10]

Both daemons take posts over LMTP (the load is split between them), claim inbound
and outbound work from the shared database and deliver to the same recording sink.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from common import Daemon, Sink, load, rss_mb, write_config
from fanout import add_members
from ingest import _pg_schema


async def run(daemons_n: int, posts: int, members: int, concurrency: int) -> dict[str, float]:
    sink = Sink()
    await sink.start()
    url = ("postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D"
           + await _pg_schema())
    with tempfile.TemporaryDirectory() as tmp:
        addresses = await add_members(url, members)
        daemons = []
        for n in range(daemons_n):
            d = Path(tmp) / f"node{n}"
            d.mkdir()
            daemons.append(Daemon(write_config(d, url, sink.port,
                                               {"instance": {"name": f"node{n}"}})))
        await asyncio.gather(*(d.start() for d in daemons))
        share = posts // daemons_n
        start = time.perf_counter()
        results = await asyncio.gather(*(
            load(d.ports["lmtp"], addresses[0], "discuss@lists.example.org", share,
                 max(1, concurrency // daemons_n)) for d in daemons))
        first = min(r[1] for r in results)
        accepted = time.perf_counter() - start
        peak = [rss_mb(d.proc.pid) for d in daemons if d.proc is not None]
        await sink.wait_deliveries(share * daemons_n * members, timeout=600)
        done = time.perf_counter()
        peak = [max(p, rss_mb(d.proc.pid)) for p, d in zip(peak, daemons, strict=True)
                if d.proc is not None]
        await asyncio.gather(*(d.terminate(60) for d in daemons))
    await sink.stop()
    total = done - first
    return {"posts_per_s": share * daemons_n / total, "accepted_s": accepted,
            "total_s": total, "peak_rss_mb": max(peak)}


async def main(args: argparse.Namespace) -> None:
    one = await run(1, args.posts, args.members, args.concurrency)
    two = await run(2, args.posts, args.members, args.concurrency)
    print(f"{args.posts} posts x {args.members} members on PostgreSQL, concurrency "
          f"{args.concurrency}")
    for name, r in (("1 daemon", one), ("2 daemons", two)):
        print(f"  {name:>9}: {r['posts_per_s']:.0f} posts/s end to end "
              f"({r['total_s']:.2f} s), peak RSS {r['peak_rss_mb']:.0f} MB per daemon")
    print(f"  ratio two/one: {two['posts_per_s'] / one['posts_per_s']:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=500)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=10)
    asyncio.run(main(parser.parse_args()))
