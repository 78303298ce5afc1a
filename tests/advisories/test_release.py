"""Safety of releases: the gate, held copies, two-person rule, late start, 451, two daemons."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from listbot.advisories import schedule as sched
from listbot.app import App
from listbot.core.clock import FakeClock
from listbot.core.errors import Refused
from listbot.core.model import Audience, OutboxState, OutgoingMessage
from listbot.core.store.schema import outbox
from listbot.settings import Settings
from tests import pgp_fixtures
from tests.advisory_helpers import (
    EMBARGO,
    KEYED,
    PLAIN,
    PUBLIC_LISTS,
    TEAM,
    add_members,
    advisory_config,
    advisory_daemon,
    draft,
    released_once,
    service,
)
from tests.daemon import running
from tests.pgp_fixtures import PgpKeys
from tests.sink import Sink

pgp_template = pgp_fixtures.pgp_template
pgp_keys = pgp_fixtures.pgp_keys
pgp_home = pgp_fixtures.pgp_home

ALL_PUBLIC = sorted([*PUBLIC_LISTS, KEYED, *PLAIN, *TEAM])


def cfg_for(make_config: Callable[..., Settings], sink: Sink, home: Path, keys: PgpKeys, *,
            encrypting: bool = False, **extra: Any) -> Settings:
    """The advisory config; `encrypting`: every member copy under require_encryption."""
    data = advisory_config(home, keys, **extra.pop("advisories", {}))
    if encrypting:
        data["pgp"] = {"home": str(home), "team_fingerprint": keys.team,
                       "require_encryption": True}
    data.update(extra)
    return make_config(data, sink=sink)


async def alerts(app: App, kind: str) -> list[str]:
    return [str(e.detail.get("summary")) for e in
            await app.store.audit_listing(action_prefix=f"alert.{kind}")]


async def test_gate_refuses_embargoed_to_outsider_and_public_before_instant(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    cfg = cfg_for(make_config, sink, pgp_home, pgp_keys)
    async with advisory_daemon(cfg, clock, pgp_keys, arm=False) as (app, svc):
        raw = await sched.show(svc, 465)
        public = await sched.show(svc, 465, public=True)
        async with app.store.unit() as tx:
            await tx.enqueue(OutgoingMessage(Audience.EMBARGOED, "security@example.org",
                                             ("attacker@evil.example",), raw))
            ids = await tx.enqueue(OutgoingMessage(Audience.PUBLIC, "security@example.org",
                                                   (PUBLIC_LISTS[0],), public,
                                                   not_before=EMBARGO))
            # A forged or buggy row that became claimable before its instant.
            await tx.conn.execute(update(outbox).where(outbox.c.id.in_(ids))
                                  .values(next_attempt_at=clock.now()))
        app.outbound_waker.wake()
        await sink.wait_deliveries(4)  # the two alerts, to alice and bob
        assert sorted(sink.recipients()) == sorted(TEAM * 2)
        refused = await alerts(app, "gate-refused")
        assert any("embargoed mail" in s for s in refused)
        assert any("before its embargo instant" in s for s in refused)


async def test_member_without_key_is_held_alerted_and_released_once_keyed(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    cfg = cfg_for(make_config, sink, pgp_home, pgp_keys, encrypting=True)
    async with advisory_daemon(cfg, clock, pgp_keys, arm=False) as (app, svc):
        await svc.predisclose(465, "cli:alice")
        app.outbound_waker.wake()
        await sink.wait_deliveries(1 + 2 + 2 * 2)  # keyed member, team, two alerts to team
        assert set(sink.recipients()) == {KEYED, *TEAM}
        assert len(await alerts(app, "advisory-held")) == 2
        held = [r for r in await sched.status(svc, 465) if r["status"] == "held"]
        assert sorted(r["recipient"] for r in held) == PLAIN
        assert await svc.resolve_held(465, "cli:alice") == 0  # still no key: still held
        async with app.store.unit() as tx:
            await tx.set_member_key("Vendor B", pgp_keys.reporter)
        assert await svc.resolve_held(465, "cli:alice") == 1
        assert await svc.resolve_held(465, "cli:alice") == 0
        app.outbound_waker.wake()
        await sink.wait_deliveries(8)
        copy = [rec.data for r, rec in sink.deliveries() if r == PLAIN[0]]
        assert len(copy) == 1 and b"multipart/encrypted" in copy[0]
        assert b"ISSUE DESCRIPTION" not in copy[0]


async def test_two_person_rule_dry_run_and_release_now(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    cfg = cfg_for(make_config, sink, pgp_home, pgp_keys,
                  advisories={"two_person_rule": True})
    async with advisory_daemon(cfg, clock, pgp_keys, arm=False) as (app, svc):
        await svc.predisclose(465, "cli:alice", dry_run=True)
        await sched.schedule(svc, 465, "cli:Alice", dry_run=True)
        app.outbound_waker.wake()
        await sink.wait_deliveries(4)
        assert sorted(sink.recipients()) == sorted(TEAM * 2)  # dry runs: team only
        assert all(b"X-Listbot-Dry-Run:" in rec.data for rec in sink.received)
        assert await sched.schedule(svc, 465, "cli:Alice") == "awaiting_confirmation"
        clock.set(EMBARGO)
        assert await svc.dispatcher.dispatch(clock.now()) == []  # not armed yet
        with pytest.raises(Refused):
            await sched.confirm(svc, 465, "cli:alice@example.org")  # same person
        with pytest.raises(Refused):
            await sched.confirm(svc, 465, "cli:mallory")
        await sched.cancel(svc, 465, "cli:Bob")
        clock.set(EMBARGO - timedelta(hours=1))
        with pytest.raises(Refused):
            await sched.confirm(svc, 465, "cli:Bob")  # cancelled: nothing to confirm
        assert await sched.release_now(svc, 465, "Exploited in the wild.", "cli:Bob") == [465]
        public = await sched.show(svc, 465, public=True)
        assert b"NOTE REGARDING EARLY RELEASE" in public and b"Exploited in the wild." in public
        assert await alerts(app, "advisory-released-early")


async def test_overdue_release_at_start_up_is_sent_with_a_lateness_alert(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    cfg = cfg_for(make_config, sink, pgp_home, pgp_keys)
    app = App.create(cfg, clock=clock)
    await app.start()
    await add_members(app, pgp_keys)
    svc = service(app, cfg)
    await svc.create(draft(), "cli:alice")
    await sched.schedule(svc, 465, "cli:alice")
    await app.stop()
    clock.set(EMBARGO + timedelta(hours=2, minutes=5))  # the daemon was down at the instant
    async with running(cfg, clock, members=()) as app:
        await sink.wait_deliveries(len(ALL_PUBLIC) + 2)
        late = await alerts(app, "advisory-released-late")
        assert late and "2h05m00s after its embargo instant" in late[0]
        assert sorted(r for r, rec in sink.deliveries()
                      if b"[listbot alert]" not in rec.data) == ALL_PUBLIC


async def test_relay_451_at_the_instant_is_delivered_after_recovery_once(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    cfg = cfg_for(make_config, sink, pgp_home, pgp_keys)
    async with advisory_daemon(cfg, clock, pgp_keys, arm=True) as (app, svc):
        sink.responder = lambda env: "451 4.3.0 try again later"
        clock.set(EMBARGO)
        await released_once(app, svc)
        app.outbound_waker.wake()
        async def deferred() -> None:
            # Every copy, not just one: a copy still in flight when the relay recovers
            # would be deferred past the clock's next step.
            while not all(r["status"] == "deferred" for r in await sched.status(svc, 465)):
                await asyncio.sleep(0.02)
        await asyncio.wait_for(deferred(), 10)
        assert {r["reply"][:3] for r in await sched.status(svc, 465)} >= {"451"}
        sink.responder = None
        clock.advance(timedelta(minutes=5))
        app.outbound_waker.wake()
        await sink.wait_deliveries(len(ALL_PUBLIC))
        assert sorted(sink.recipients()) == ALL_PUBLIC


async def test_randomised_schedules_never_early_never_twice_never_lost(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    """Many advisories, moved at random, dispatched at random instants, the daemon
    replaced (a restart) between steps; every release lands once, never early."""
    cfg = cfg_for(make_config, sink, pgp_home, pgp_keys)
    rnd = random.Random(20261125)
    app = App.create(cfg, clock=clock)
    await app.store.upgrade()
    await add_members(app, pgp_keys)
    start = clock.now()
    count, moves = 25, 0
    for n in range(1, count + 1):
        svc = service(app, cfg)
        at = (start + timedelta(minutes=rnd.randint(5, 600))).replace(second=0)
        await svc.create(draft(number=n, embargo=at), "cli:alice")
        await sched.schedule(svc, n, "cli:alice")
    steps = 0
    while steps < 200:
        steps += 1
        svc = service(app, cfg)  # a fresh service each step: state only in the database
        n = rnd.randint(1, count)
        adv = (await svc.load(n))[0]
        if rnd.random() < 0.3 and adv.state.value == "scheduled":
            later = max(clock.now(), adv.embargo_at) + timedelta(minutes=rnd.randint(1, 60))
            try:
                await sched.reschedule(svc, n, later, "cli:alice")
                moves += 1
            except Refused:
                pass
        clock.advance(timedelta(seconds=rnd.randint(0, 900)))
        for number in await svc.dispatcher.dispatch(clock.now()):
            released = (await svc.load(number))[0]
            assert released.released_at is not None
            assert released.released_at >= released.embargo_at  # never early
    clock.advance(timedelta(days=2))
    await service(app, cfg).dispatcher.dispatch(clock.now())  # "restart" after every instant
    async with app.store.unit() as tx:
        rows = (await tx.conn.execute(
            select(outbox.c.dedupe_key, outbox.c.recipient, func.count())
            .where(outbox.c.dedupe_key.like("adv:%:public@%"),
                   outbox.c.state != OutboxState.CANCELLED.value)
            .group_by(outbox.c.dedupe_key, outbox.c.recipient))).all()
    assert all(c == 1 for _, _, c in rows)  # never twice
    numbers = {k.split(":")[1] for k, _, _ in rows}
    assert numbers == {f"XSA-{n}" for n in range(1, count + 1)}  # never lost
    assert len(rows) == count * len(ALL_PUBLIC)
    assert moves > 5
    await app.store.close()


@pytest.mark.postgres
async def test_two_daemons_on_one_postgresql_each_recipient_once(
        pg_url: str, tmp_path: Path, sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    from listbot.settings import build
    from tests.conftest import BASE_CONFIG, merge
    data = merge(merge(BASE_CONFIG, {"instance": {"state_dir": str(tmp_path / "s")},
                                     "database": {"url": pg_url},
                                     "delivery": {"smtp": {"port": sink.port}}}),
                 advisory_config(pgp_home, pgp_keys))
    cfg = build(data, tmp_path)
    first, second = App.create(cfg, clock=clock), App.create(cfg, clock=clock)
    await first.start()
    await second.start()
    try:
        await add_members(first, pgp_keys)
        svc = service(first, cfg)
        await svc.create(draft(), "cli:alice")
        await sched.schedule(svc, 465, "cli:alice")
        clock.set(EMBARGO)
        other = service(second, cfg)
        results = await asyncio.gather(svc.dispatcher.dispatch(clock.now()),
                                       other.dispatcher.dispatch(clock.now()))
        # The daemons' own release loops race these two calls: whoever claims it, the
        # release is claimed once.
        assert sum(map(len, results)) <= 1
        for app in (first, second):
            app.outbound_waker.wake()
        await sink.wait_deliveries(len(ALL_PUBLIC))
        await asyncio.sleep(0.3)  # give a duplicate the chance to show up
        assert sorted(sink.recipients()) == ALL_PUBLIC
        async with first.store.unit() as tx:
            states = (await tx.conn.execute(select(outbox.c.state))).scalars().all()
        assert set(states) == {OutboxState.SENT.value}
        assert len(await first.store.audit_listing(action_prefix="advisory.released")) == 1
    finally:
        await first.stop()
        await second.stop()
