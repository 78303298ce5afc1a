"""Shared set-up for advisory tests: a daemon with a real keyring and the recording sink."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from listbot.advisories import schedule as sched
from listbot.advisories.service import Advisories, Draft, build_service
from listbot.app import App
from listbot.core.clock import FakeClock
from listbot.settings import Settings
from tests.advisory_samples import PATCHES, SECTIONS_FILE
from tests.pgp_fixtures import PgpKeys

PUBLIC_LISTS = ["announce@lists.example.org", "oss-security@lists.example.net"]
TEAM = ["alice@example.org", "bob@example.org"]
KEYED = "security@vendor-a.example"
PLAIN = ["psirt@vendor-b.example", "secalert@vendor-c.example"]
EMBARGO = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def advisory_config(home: Path, keys: PgpKeys, **adv: Any) -> dict[str, Any]:
    return {
        "project": {"name": "Xen", "advisory_prefix": "XSA"},
        "pgp": {"home": str(home), "team_fingerprint": keys.team},
        "advisories": {"public_lists": PUBLIC_LISTS, "index_dir": "public", **adv},
    }


async def add_members(app: App, keys: PgpKeys) -> None:
    async with app.store.unit() as tx:
        await tx.add_member("Vendor A", KEYED, keys.member)
        await tx.add_member("Vendor B", PLAIN[0], None)
        await tx.add_member("Vendor C", PLAIN[1], None)


def service(app: App, cfg: Settings) -> Advisories:
    return build_service(cfg.core, cfg.advisories, cfg.pgp, app.store, app.clock,
                         keyring=app.keyring)


@asynccontextmanager
async def advisory_daemon(cfg: Settings, clock: FakeClock, keys: PgpKeys, *,
                          arm: bool) -> AsyncIterator[tuple[App, Advisories]]:
    """A started daemon with the members and advisory 465 drafted (and armed if asked)."""
    app = App.create(cfg, clock=clock)
    await app.start()
    try:
        await add_members(app, keys)
        svc = service(app, cfg)
        await svc.create(draft(), "cli:alice")
        if arm:
            await sched.schedule(svc, 465, "cli:alice")
        yield app, svc
    finally:
        await app.stop()


async def released_once(app: App, svc: Advisories, number: int = 465) -> None:
    """Dispatch at the clock's instant and see the advisory released exactly once.

    The daemon's own release loop (its backstop poll, or a NOTIFY on PostgreSQL) may
    claim it before this call does: which of the two claims is not the point, once is.
    """
    await svc.dispatcher.dispatch(app.clock.now())
    entries = await app.store.audit_listing(action_prefix="advisory.released")
    assert [e.subject for e in entries] == [f"advisory:{svc.adv.prefix}-{number}"]


def draft(number: int = 465, embargo: datetime = EMBARGO, **changes: Any) -> Draft:
    values: dict[str, Any] = {
        "number": number, "case_id": None,
        "title": "x86/HVM: missing bounds check on the XSAVE area",
        "cves": ("CVE-2024-45819",), "sections_text": SECTIONS_FILE,
        "patches": tuple(replace(p, filename=p.filename.replace("xsa465", f"xsa{number}"))
                        for p in PATCHES), "embargo_at": embargo, **changes}
    return Draft(**values)


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll a database condition that has no event of its own (an outcome commit)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)
