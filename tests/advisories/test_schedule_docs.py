"""What reschedule and release-now store is what later versions are built from."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from listbot.advisories import schedule as sched
from listbot.advisories.service import Change
from listbot.core.clock import FakeClock
from listbot.settings import Settings
from tests import pgp_fixtures
from tests.advisories.test_release import cfg_for
from tests.advisory_helpers import EMBARGO, advisory_daemon
from tests.pgp_fixtures import PgpKeys
from tests.sink import Sink

pgp_template = pgp_fixtures.pgp_template
pgp_keys = pgp_fixtures.pgp_keys
pgp_home = pgp_fixtures.pgp_home

NOTE = b"NOTE REGARDING EARLY RELEASE"
REASON = b"Exploited in the wild."


async def test_amend_after_release_now_keeps_the_early_release_note(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    cfg = cfg_for(make_config, sink, pgp_home, pgp_keys)
    async with advisory_daemon(cfg, clock, pgp_keys, arm=False) as (_app, svc):
        assert await sched.release_now(svc, 465, REASON.decode(), "cli:bob") == [465]
        assert await svc.amend(465, Change(updates=("Patch for 4.19 added.",)),
                               "cli:alice") == 2
        v2 = await sched.show(svc, 465, public=True)
        assert NOTE in v2 and REASON in v2
        assert b"Patch for 4.19 added." in v2


async def test_release_now_after_a_reschedule_keeps_the_moved_line(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    cfg = cfg_for(make_config, sink, pgp_home, pgp_keys)
    async with advisory_daemon(cfg, clock, pgp_keys, arm=True) as (_app, svc):
        await svc.predisclose(465, "cli:alice")
        later = EMBARGO + timedelta(days=2)
        assert await sched.reschedule(svc, 465, later, "cli:alice") == 2
        moved = f"Public release moved to {later:%Y-%m-%d %H:%M} UTC.".encode()
        assert moved in await sched.show(svc, 465)
        # Released early: the public v2 still says what v2 changed, and why it is early.
        assert await sched.release_now(svc, 465, REASON.decode(), "cli:bob") == [465]
        public = await sched.show(svc, 465, public=True)
        assert moved in public and NOTE in public and REASON in public
