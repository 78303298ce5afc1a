"""Optional Prometheus endpoint on loopback ([metrics]); one registry per daemon.

Counters move at the edges (intake, worker, delivery); queue gauges are refreshed
from the database by a task, so a scrape never touches the database itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from listbot.core.clock import Clock
from listbot.core.config import Document, Endpoint, parse_endpoint, section
from listbot.core.store import Store

log = structlog.get_logger("listbot.metrics")

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class MetricsConfig:
    listen: Endpoint
    refresh_seconds: float


def parse_metrics(doc: Document, problems: list[str]) -> MetricsConfig | None:
    """The [metrics] section, or None when it is absent or disabled."""
    if "metrics" not in doc:
        return None

    def parse(raw: Mapping[str, Any], problems: list[str]) -> MetricsConfig | None:
        problems.extend(f"metrics.{k}: unknown key" for k in raw
                        if k not in ("enabled", "listen", "refresh_seconds"))
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            problems.append("metrics.enabled: expected true or false")
        if enabled is not True:
            return None
        try:
            listen = parse_endpoint(str(raw.get("listen", "127.0.0.1:9464")))
        except ValueError as exc:
            problems.append(f"metrics.listen: {exc}")
            return None
        if listen.host not in LOOPBACK:
            # The endpoint has no authentication: queue sizes hint at embargo activity.
            problems.append("metrics.listen: must be a loopback address")
        refresh = raw.get("refresh_seconds", 15.0)
        if not isinstance(refresh, (int, float)) or refresh <= 0:
            problems.append("metrics.refresh_seconds: expected a positive number")
            refresh = 15.0
        return MetricsConfig(listen, float(refresh))

    return section(doc, "metrics", parse, problems)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages_in = Counter("listbot_messages_in", "Messages stored at intake",
                                   ["list", "source"], registry=r)
        self.processed = Counter("listbot_messages_processed",
                                 "Inbound messages handled by the worker",
                                 ["list", "outcome"], registry=r)
        self.messages_out = Counter("listbot_messages_out",
                                    "Outgoing deliveries by outcome",
                                    ["list", "outcome"], registry=r)
        self.delivery_failures = Counter("listbot_delivery_failures",
                                         "Deliveries that failed permanently or were refused",
                                         ["list"], registry=r)
        self.queue_depth = Gauge("listbot_queue_depth", "Rows per queue and state",
                                 ["queue", "state"], registry=r)
        self.held = Gauge("listbot_held_posts", "Outgoing items waiting for a person",
                          registry=r)
        self.release_lag = Gauge("listbot_release_lag_seconds",
                                 "How far the oldest due, unsent item is past its instant",
                                 registry=r)
        self._server: WSGIServer | None = None

    # --- edges -------------------------------------------------------------------------
    def received(self, list_name: str, source: str) -> None:
        self.messages_in.labels(list_name, source).inc()

    def handled(self, list_name: str, outcome: str) -> None:
        self.processed.labels(list_name, outcome).inc()

    def delivered(self, list_name: str | None, outcome: str) -> None:
        name = list_name or "-"
        self.messages_out.labels(name, outcome).inc()
        if outcome in ("failed", "refused"):
            self.delivery_failures.labels(name).inc()

    # --- gauges ------------------------------------------------------------------------
    async def refresh(self, store: Store, clock: Clock) -> None:
        counts = await store.queue_counts()
        for queue, states in counts.items():
            for state, n in states.items():
                self.queue_depth.labels(queue, state).set(n)
        self.held.set(counts.get("outbox", {}).get("held", 0))
        due = await store.next_outbox_due()
        lag = (clock.now() - due).total_seconds() if due is not None else 0.0
        self.release_lag.set(max(0.0, lag))

    async def run(self, store: Store, clock: Clock, every: float,
                  stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.refresh(store, clock)
            except Exception as exc:  # the database may be down; the endpoint stays up
                log.warning("metrics.refresh_failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), every)

    def serve(self, listen: Endpoint) -> tuple[str, int]:
        server, _thread = start_http_server(listen.port, listen.host, registry=self.registry)
        self._server = server
        host, port = server.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
