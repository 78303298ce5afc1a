"""The Prometheus endpoint: a real HTTP scrape of a running daemon."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Callable

import pytest

from listbot.core.clock import FakeClock
from listbot.core.errors import ConfigError
from listbot.settings import Settings
from tests.daemon import MEMBERS, add_members, lmtp_send, post, running, settle
from tests.sink import Sink

MEMBER = "security@vendor-a.example"


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return str(resp.read().decode())


async def test_counters_and_gauges_after_a_post(make_config: Callable[..., Settings],
                                                sink: Sink, clock: FakeClock) -> None:
    cfg = make_config({"metrics": {"listen": "127.0.0.1:0", "refresh_seconds": 0.05}},
                      sink=sink)
    async with running(cfg, clock, members=()) as app:
        await add_members(app)
        await lmtp_send(app, MEMBER, ["discuss@lists.example.org"], post(MEMBER))
        await sink.wait_deliveries(len(MEMBERS))
        await settle(app)
        port = app.bound["metrics"][1]

        async def until_sent() -> str:
            wanted = ('listbot_messages_out_total{list="discuss",outcome="sent"} 3.0',
                      'listbot_queue_depth{queue="outbox",state="sent"} 3.0')
            while True:
                text = await asyncio.to_thread(scrape, port)
                if all(w in text for w in wanted):
                    return text
                await asyncio.sleep(0.05)

        text = await asyncio.wait_for(until_sent(), 10)
        assert 'listbot_messages_in_total{list="discuss",source="lmtp"} 1.0' in text
        assert 'listbot_messages_processed_total{list="discuss",outcome="done"} 1.0' in text
        assert 'listbot_queue_depth{queue="inbound",state="done"}' in text
        assert "listbot_held_posts" in text and "listbot_release_lag_seconds" in text


def test_metrics_refuse_a_non_loopback_listener(make_config: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError) as info:
        make_config({"metrics": {"listen": "0.0.0.0:9464"}})
    assert "metrics.listen: must be a loopback address" in info.value.problems
    assert make_config().metrics is None
