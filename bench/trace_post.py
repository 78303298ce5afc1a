"""Which listbot modules one discuss post runs through, from its arrival over LMTP to
the sink's 250 for the last member copy; and the sizes of the package's modules.

    python3 bench/trace_post.py [--members 3] [--cold]

The real daemon (App, SQLite, the shipped rules) runs in-process against a recording
SMTP sink, as the daemon tests run it. A warm-up post goes through first, untraced, so
the figure is a steady-state post's and not the first post's one-off set-up; --cold
traces the first post instead. Only `call` events count: a module whose code runs
while the post is in flight, whichever daemon task runs it (intake, worker, delivery,
or a task the post's commit wakes). The harness calls no listbot code inside that
window, and the daemon's polling backstops are set far beyond it. A second count
leaves out what only the side tasks ran (the roster watch the commit wakes): the
post's own path from LMTP to the relay.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import structlog
from common import ROOT, Sink, write_config

from listbot.core.clock import SystemClock
from listbot.core.config import load
from listbot.core.log import setup as setup_logging
from tests.daemon import MEMBERS, lmtp_send, outbox_settled, post, running, settle

PACKAGE = ROOT / "listbot"
DISCUSS = "discuss@lists.example.org"
QUIET = {"worker": {"poll_interval_seconds": 600.0}}  # no idle wake-up inside the window
# Daemon tasks (App._spawn names) that a post wakes or that run beside it but that the
# post does not need on its way out: the roster watch its commit wakes, and the rest.
SIDE_TASKS = frozenset({"members", "release", "notify", "metrics", "imap"})


class ModuleTrace:
    """listbot modules whose functions are called, each with the tasks that called them."""

    def __init__(self) -> None:
        self.seen: dict[str, set[str]] = defaultdict(set)
        self._labels: dict[int, str] = {}

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        name = frame.f_globals.get("__name__", "")
        if name == "listbot" or name.startswith("listbot."):
            self.seen[name].add(self._task_label())

    def _task_label(self) -> str:
        if threading.current_thread() is not threading.main_thread():
            return f"thread {threading.current_thread().name}"
        try:
            task = asyncio.current_task()
        except RuntimeError:
            return "no task"
        if task is None:
            return "loop callback"
        label = self._labels.get(id(task))
        if label is None:
            # Named tasks are the daemon's own (App._spawn); the rest are named after
            # their coroutine (an aiosmtpd session, an APScheduler job).
            label = task.get_name()
            if label.startswith("Task-"):
                label = getattr(task.get_coro(), "__qualname__", label)
            self._labels[id(task)] = label
        return label

    @contextmanager
    def recording(self) -> Iterator[None]:
        hook: Callable[[FrameType, str, Any], None] = self
        sys.setprofile(hook)
        threading.setprofile(hook)  # threads started inside the window (gpg, to_thread)
        try:
            yield
        finally:
            sys.setprofile(None)
            threading.setprofile(None)


async def trace_one_post(members: int, cold: bool, log: TextIO) -> ModuleTrace:
    setup_logging("json")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(log))
    sink = Sink()
    await sink.start()
    roster = [(f"Vendor {i}", f"security@vendor{i}.example") for i in range(members)]
    trace = ModuleTrace()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{tmp}/listbot.db"
            cfg = load(write_config(Path(tmp), url, sink.port, QUIET))
            async with running(cfg, SystemClock(), members=roster) as app:
                sender = roster[0][1]
                if not cold:
                    await _one_post(app, sink, sender, "warm-up", len(roster))
                    await settle(app)
                    await outbox_settled(app)
                    sink.received.clear()
                with trace.recording():
                    await _one_post(app, sink, sender, "traced", len(roster))
                await outbox_settled(app)
    finally:
        await sink.stop()
    return trace


async def _one_post(app: Any, sink: Sink, sender: str, tag: str, copies: int) -> None:
    """LMTP in, then wait for the sink to have every member copy (no listbot code here)."""
    data = post(f"Vendor <{sender}>", subject=f"Re: [XSA-465] backport ({tag})",
                body="The backport applies and builds cleanly.\r\n")
    refused = await lmtp_send(app, sender, [DISCUSS], data)
    if refused:
        raise SystemExit(f"the daemon refused the post: {refused}")
    await sink.wait_deliveries(copies, timeout=60)


def by_package(modules: Iterator[str] | list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for name in sorted(modules):
        package, _, leaf = name.rpartition(".")
        groups[package or name].append(leaf or name)
    return dict(sorted(groups.items()))


def module_sizes() -> list[tuple[int, str]]:
    sizes = [(len(p.read_text().splitlines()), str(p.relative_to(ROOT)))
             for p in PACKAGE.rglob("*.py")]
    return sorted(sizes, key=lambda s: (-s[0], s[1]))


def report(trace: ModuleTrace, members: int, cold: bool) -> None:
    state = "first post after start-up" if cold else "steady state, after a warm-up post"
    print(f"one discuss post to {members} members (SQLite, {state}):")
    print(f"modules per discuss post: {len(trace.seen)}")
    own = [m for m, labels in trace.seen.items() if labels - SIDE_TASKS]
    print(f"  on the post's own path (without the {'/'.join(sorted(SIDE_TASKS))} tasks): "
          f"{len(own)}")
    for package, leaves in by_package(list(trace.seen)).items():
        print(f"  {package} ({len(leaves)}): {', '.join(leaves)}")
    tasks: dict[str, set[str]] = defaultdict(set)
    for module, labels in trace.seen.items():
        for label in labels:
            tasks[label].add(module)
    print("by the task that ran them:")
    for label, modules in sorted(tasks.items()):
        print(f"  {label} ({len(modules)}): {', '.join(sorted(modules))}")
    sizes = module_sizes()
    no_migrations = [s for s in sizes if "/migrations/" not in s[1]]
    print(f"listbot modules: {len(sizes)} ({len(no_migrations)} without migrations), "
          f"{sum(n for n, _ in sizes)} lines")
    print("largest 15 modules (lines):")
    for lines, path in sizes[:15]:
        print(f"  {lines:>5} {path}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=len(MEMBERS))
    parser.add_argument("--cold", action="store_true",
                        help="trace the first post after start-up instead of a later one")
    args = parser.parse_args()
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    with tempfile.TemporaryFile("w+") as log:
        trace = asyncio.run(trace_one_post(max(1, args.members), args.cold, log))
    report(trace, max(1, args.members), args.cold)


if __name__ == "__main__":
    main()
