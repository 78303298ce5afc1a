"""The daemon under a service manager: signals, reload, and systemd notifications.

SIGTERM/SIGINT drain and stop; SIGHUP reloads the configuration, the rules of its rules
directory and the handlers of its lists atomically (a bad file keeps all the old ones,
and STATUS and the log say why). READY/RELOADING/STOPPING/STATUS follow
Type=notify-reload; watchdog pings come from a task on the daemon's own loop and only
while every worker task is still running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from listbot import settings as settings_mod
from listbot.app import App
from listbot.core.config import ListKind
from listbot.core.errors import ConfigError
from listbot.core.sdnotify import Notifier, watchdog_interval
from listbot.settings import Settings

log = structlog.get_logger("listbot.lifecycle")

# Settings a reload cannot change in place (sockets and the database stay open).
RESTART_ONLY: tuple[tuple[str, Callable[[Settings], Any]], ...] = (
    ("database.url", lambda s: s.core.database_url),
    ("listen.lmtp", lambda s: s.core.lmtp),
    ("listen.smtp", lambda s: s.core.smtp),
    ("instance.state_dir", lambda s: s.core.state_dir),
    # The keyring is opened once and shared, so its gpg calls stay one at a time.
    ("pgp.home", lambda s: s.pgp.home),
    # The transport, the IMAP poller and the metrics endpoint are built once at start.
    ("delivery", lambda s: s.core.delivery),
    ("imap", lambda s: s.imap),
    ("metrics", lambda s: s.metrics),
    # Reminders, the release service and the member watch are built once at start
    # with the team, case, advisory and member settings (and only with a security list).
    ("team", lambda s: (s.core.team_address, s.core.team_name, s.core.team_members)),
    ("cases", lambda s: s.cases),
    ("advisories", lambda s: s.advisories),
    ("members", lambda s: s.members),
    ("security list", lambda s: sorted(
        lc.name for lc in s.core.lists.values() if lc.kind is ListKind.SECURITY)),
)


@dataclass(frozen=True)
class ReloadResult:
    ok: bool
    status: str


def ready_status(app: App) -> str:
    listening = ", ".join(f"{k} {h}:{p}" for k, (h, p) in sorted(app.bound.items()))
    return f"serving {len(app.cfg.lists)} lists; {listening or 'no listeners'}"


def _first_problems(exc: ConfigError, limit: int = 2) -> str:
    shown = "; ".join(exc.problems[:limit])
    more = len(exc.problems) - limit
    return shown + (f" (+{more} more)" if more > 0 else "")


async def reload_app(app: App) -> ReloadResult:
    """Build the whole new state (config, its rules, a handler for every list) beside the
    running one and swap it in only if all of it is good; otherwise keep all of the old."""
    source = app.cfg.source
    if source is None:
        return ReloadResult(False, "reload ignored: the daemon was not started from a file")
    try:
        new = settings_mod.load(source)
        serving = app.prepare(new)
        stale = [name for name, get in RESTART_ONLY if get(new) != get(app.settings)]
    except ConfigError as exc:
        log.error("reload.refused", problems=exc.problems)
        return ReloadResult(False, f"reload failed, old config and rules kept: "
                                   f"{_first_problems(exc)}")
    except Exception as exc:  # a reload must never take the running daemon down
        log.error("reload.failed", error=type(exc).__name__, detail=str(exc))
        return ReloadResult(False, f"reload failed, old config and rules kept: "
                                   f"{type(exc).__name__} (see the log)")
    app.install(serving)
    log.info("reload.done", restart_needed=stale)
    status = ready_status(app) + "; reloaded"
    if stale:
        status += f"; restart needed for {', '.join(stale)}"
    return ReloadResult(True, status)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def watchdog(app: App, notifier: Notifier, interval: float,
                   stop: asyncio.Event) -> None:
    """Ping only while the loop runs this task AND no worker task has died."""
    while not stop.is_set():
        dead = sorted(t.get_name() for t in app.tasks if t.done())
        if dead:
            # No ping: systemd's watchdog restarts us, which is what a dead worker needs.
            notifier.status(f"unhealthy: {', '.join(dead)} stopped")
            log.error("watchdog.unhealthy", stopped=dead)
        else:
            notifier.watchdog()
        await _sleep_or_stop(stop, interval)


async def run_service(app: App, notifier: Notifier, *,
                      env: Mapping[str, str] = os.environ) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reload_requested = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload_requested.set)
    try:
        await app.start()
    except BaseException:
        # What did start (workers, the store, the lock) stops before the error is told.
        await app.stop()
        raise
    notifier.ready(ready_status(app))
    interval = watchdog_interval(env)
    pinger = (loop.create_task(watchdog(app, notifier, interval, stop), name="watchdog")
              if interval else None)
    try:
        while not stop.is_set():
            waiters = [loop.create_task(stop.wait()), loop.create_task(reload_requested.wait())]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()
            if reload_requested.is_set() and not stop.is_set():
                reload_requested.clear()
                notifier.reloading()
                result = await reload_app(app)
                notifier.send(READY="1", STATUS=result.status)
    finally:
        notifier.stopping()
        stop.set()
        if pinger is not None:
            await pinger
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await app.stop()


async def serve(app: App) -> None:
    """Run until SIGTERM or SIGINT; SIGHUP reloads; systemd hears of each step."""
    await run_service(app, Notifier.from_env())
