"""A member key gpg refuses at the instant costs nobody the public release.

The expired fixture key is valid on the injected clock (its 2020 era) but gpg,
on the real clock, refuses to encrypt to it: exactly the failure that once
rolled back the release claim, so the advisory stayed scheduled for ever.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listbot.advisories import schedule as sched
from listbot.core.clock import FakeClock
from listbot.settings import Settings
from tests import pgp_fixtures
from tests.advisories.test_release import alerts, cfg_for
from tests.advisory_helpers import (
    KEYED,
    PLAIN,
    PUBLIC_LISTS,
    TEAM,
    add_members,
    draft,
    service,
    wait_until,
)
from tests.daemon import running
from tests.pgp_fixtures import PgpKeys
from tests.sink import Sink

pgp_template = pgp_fixtures.pgp_template
pgp_keys = pgp_fixtures.pgp_keys
pgp_home = pgp_fixtures.pgp_home

ERA = datetime(2020, 6, 1, 9, 0, tzinfo=UTC)  # inside the expired key's validity
INSTANT = datetime(2020, 6, 10, 12, 0, tzinfo=UTC)
STALE = "security@vendor-d.example"


def encrypted(raw: bytes) -> bool:
    return b"multipart/encrypted" in raw and b"ISSUE DESCRIPTION" not in raw


@pytest.mark.parametrize(("added", "hidden"), [
    ("before arming", False), ("after arming", False),
    # One ciphertext for the keyed members: the refused key fails the whole group.
    ("before arming", True)])
async def test_member_key_refused_by_gpg_gets_plaintext_and_the_release_goes_once(
        added: str, hidden: bool, make_config: Callable[..., Settings], sink: Sink,
        clock: FakeClock, pgp_home: Path, pgp_keys: PgpKeys) -> None:
    cfg = cfg_for(make_config, sink, pgp_home, pgp_keys, advisories={
        "hidden_recipients": hidden}, encrypting=True)
    clock.set(ERA)
    async with running(cfg, clock, members=()) as app:
        await add_members(app, pgp_keys)
        svc = service(app, cfg)
        await svc.create(draft(embargo=INSTANT), "cli:alice")

        async def add_stale() -> None:
            async with app.store.unit() as tx:
                await tx.add_member("Vendor D", STALE, pgp_keys.expired)

        # Before arming, staging meets the key; after it, the release claim does.
        if added == "before arming":
            await add_stale()
        await sched.schedule(svc, 465, "cli:alice")
        if added == "after arming":
            await add_stale()
        clock.set(INSTANT)  # the daemon's own release loop wakes and claims
        # Public lists, three members, Vendor D, the team copy; the alert to the team.
        await sink.wait_deliveries(len(PUBLIC_LISTS) + 4 + 2 * len(TEAM))
        copies = {r: rec.data for r, rec in sink.deliveries()
                  if b"[listbot alert]" not in rec.data}
        assert sorted(copies) == sorted([*PUBLIC_LISTS, KEYED, *PLAIN, STALE, *TEAM])
        assert encrypted(copies[KEYED])
        assert b"ISSUE DESCRIPTION" in copies[STALE]  # public now: plaintext beats nothing
        assert len(sink.deliveries()) == len(PUBLIC_LISTS) + 4 + 2 * len(TEAM)
        refused = await alerts(app, "advisory-key-refused")
        assert len(refused) == 1 and STALE in refused[0]

        async def all_accepted() -> bool:  # the relay saw them; the outcomes commit after
            return all(r["status"] == "accepted" for r in await sched.status(svc, 465))
        await wait_until(all_accepted)
        assert len(await app.store.audit_listing(action_prefix="advisory.released")) == 1
        assert await svc.dispatcher.dispatch(clock.now() + timedelta(minutes=1)) == []


@pytest.mark.parametrize("hidden", [False, True])
async def test_member_key_refused_by_gpg_holds_only_that_predisclosure_copy(
        hidden: bool, make_config: Callable[..., Settings], sink: Sink, clock: FakeClock,
        pgp_home: Path, pgp_keys: PgpKeys) -> None:
    cfg = cfg_for(make_config, sink, pgp_home, pgp_keys, advisories={
        "hidden_recipients": hidden}, encrypting=True)
    clock.set(ERA)
    async with running(cfg, clock, members=()) as app:
        await add_members(app, pgp_keys)
        async with app.store.unit() as tx:
            await tx.add_member("Vendor D", STALE, pgp_keys.expired)
        svc = service(app, cfg)
        await svc.create(draft(embargo=INSTANT), "cli:alice")
        await svc.predisclose(465, "cli:alice")  # gpg's refusal stops nobody else's copy
        app.outbound_waker.wake()
        await sink.wait_deliveries(1 + len(TEAM))
        copies = {r: rec.data for r, rec in sink.deliveries()
                  if b"[listbot alert]" not in rec.data}
        assert sorted(copies) == sorted([KEYED, *TEAM])  # keyless and refused: held
        assert encrypted(copies[KEYED])
        assert all(b"ISSUE DESCRIPTION" not in data for r, data in copies.items()
                   if r not in TEAM)
        refused = await alerts(app, "advisory-key-refused")
        assert len(refused) == 1 and STALE in refused[0] and "waits" in refused[0]
        held = {row["recipient"] for row in await sched.status(svc, 465)
                if row["status"] == "held"}
        assert held == {STALE, *PLAIN}
