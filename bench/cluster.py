"""One daemon vs two daemons on one PostgreSQL: end-to-end fan-out in the same run.

    python3 bench/cluster.py [--posts 500] [--members 20] [--concurrency 10]

Both daemons take posts over LMTP (the load is split between them), claim inbound
and outbound work from the shared database and deliver to the same recording sink.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from common import Daemon, Sink, cpu_s, load, named_cpu_s, rss_mb, write_config
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
        pids = [d.proc.pid for d in daemons if d.proc is not None]
        cpu0 = ([cpu_s(p) for p in pids], named_cpu_s("postgres"), time.process_time())
        start = time.perf_counter()
        results = await asyncio.gather(*(
            load(d.ports["lmtp"], addresses[0], "discuss@lists.example.org", share,
                 max(1, concurrency // daemons_n)) for d in daemons))
        first = min(r[1] for r in results)
        accepted = time.perf_counter() - start
        peak = [rss_mb(d.proc.pid) for d in daemons if d.proc is not None]
        await sink.wait_deliveries(share * daemons_n * members, timeout=600)
        done = time.perf_counter()
        cpu = {"daemons_cpu_s": sum(cpu_s(p) for p in pids) - sum(cpu0[0]),
               "postgres_cpu_s": named_cpu_s("postgres") - cpu0[1],
               "bench_cpu_s": time.process_time() - cpu0[2],
               "capacity_cpu_s": (os.cpu_count() or 1) * (done - start)}
        peak = [max(p, rss_mb(d.proc.pid)) for p, d in zip(peak, daemons, strict=True)
                if d.proc is not None]
        await asyncio.gather(*(d.terminate(60) for d in daemons))
    await sink.stop()
    total = done - first
    return {"posts_per_s": share * daemons_n / total, "accepted_s": accepted,
            "total_s": total, "peak_rss_mb": max(peak), **cpu}


async def main(args: argparse.Namespace) -> None:
    one = await run(1, args.posts, args.members, args.concurrency)
    two = await run(2, args.posts, args.members, args.concurrency)
    print(f"{args.posts} posts x {args.members} members on PostgreSQL, concurrency "
          f"{args.concurrency}")
    for name, r in (("1 daemon", one), ("2 daemons", two)):
        print(f"  {name:>9}: {r['posts_per_s']:.0f} posts/s end to end "
              f"({r['total_s']:.2f} s), peak RSS {r['peak_rss_mb']:.0f} MB per daemon")
        print(f"{'':>13}CPU s: daemons {r['daemons_cpu_s']:.1f}, PostgreSQL "
              f"{r['postgres_cpu_s']:.1f}, sink and load {r['bench_cpu_s']:.1f}, of "
              f"{r['capacity_cpu_s']:.1f} (cores x wall)")
    print(f"  ratio two/one: {two['posts_per_s'] / one['posts_per_s']:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=500)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=10)
    asyncio.run(main(parser.parse_args()))
