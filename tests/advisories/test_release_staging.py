"""Public copies built ahead of the instant: sent at the claim, never for a stale instant."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from listbot.advisories import fanout
from listbot.advisories import schedule as sched
from listbot.advisories import stage as staging
from listbot.advisories.service import Change
from listbot.app import App
from listbot.core.clock import FakeClock
from listbot.core.model import Audience, OutboxState
from listbot.core.store.schema import bodies, outbox
from listbot.settings import Settings
from tests import pgp_fixtures
from tests.advisories.test_release import ALL_PUBLIC, alerts, cfg_for
from tests.advisory_helpers import (
    EMBARGO,
    KEYED,
    PLAIN,
    PUBLIC_LISTS,
    TEAM,
    advisory_daemon,
    released_once,
)
from tests.pgp_fixtures import PgpKeys
from tests.sink import Sink

pgp_template = pgp_fixtures.pgp_template
pgp_keys = pgp_fixtures.pgp_keys
pgp_home = pgp_fixtures.pgp_home

LATE_MEMBER = "psirt@vendor-late.example"


async def rows(app: App) -> list[tuple[str, str, str, bytes]]:
    """(dedupe_key, recipient, state, body) of every public advisory row."""
    async with app.store.unit() as tx:
        result = await tx.conn.execute(
            select(outbox.c.dedupe_key, outbox.c.recipient, outbox.c.state, bodies.c.raw)
            .join(bodies, bodies.c.id == outbox.c.body_id)
            .where(outbox.c.dedupe_key.like("adv:%:public@%")))
        return [(r[0], r[1], r[2], bytes(r[3])) for r in result]


def encrypted(raw: bytes) -> bool:
    return b"multipart/encrypted" in raw and b"ISSUE DESCRIPTION" not in raw


async def test_armed_release_is_encrypted_ahead_and_only_sent_at_the_claim(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    cfg = cfg_for(make_config, sink, pgp_home, pgp_keys, encrypting=True)
    async with advisory_daemon(cfg, clock, pgp_keys, arm=True) as (app, svc):
        staged = await rows(app)
        assert {s for _, _, s, _ in staged} == {OutboxState.STAGED.value}
        assert sorted(r for _, r, _, _ in staged) == ALL_PUBLIC
        keyed_body = next(b for _, r, _, b in staged if r == KEYED)
        assert encrypted(keyed_body)  # encrypted when armed, not at the instant
        assert all(not encrypted(b) for _, r, _, b in staged if r in PLAIN)  # public text
        async with app.store.unit() as tx:  # a member who joins after the arming
            await tx.add_member("Late Vendor", LATE_MEMBER, pgp_keys.reporter)
        clock.set(EMBARGO - timedelta(seconds=1))
        assert await svc.dispatcher.dispatch(clock.now()) == []
        claimed, _ = await app.store.claim_outbox("probe", timedelta(minutes=1), 100)
        assert claimed == []  # staged rows are never claimed by delivery
        clock.set(EMBARGO)
        await released_once(app, svc)
        app.outbound_waker.wake()
        await sink.wait_deliveries(len(ALL_PUBLIC) + 1)
        assert sorted(sink.recipients()) == sorted([*ALL_PUBLIC, LATE_MEMBER])
        got = {r: rec.data for r, rec in sink.deliveries()}
        assert got[KEYED] == keyed_body  # the very bytes built ahead
        assert encrypted(got[LATE_MEMBER])  # built at the claim, the slow way
        assert all(not encrypted(got[a]) for a in [*PUBLIC_LISTS, *TEAM])


async def test_reschedule_later_never_lets_prebuilt_copies_out_at_the_old_instant(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    cfg = cfg_for(make_config, sink, pgp_home, pgp_keys)
    async with advisory_daemon(cfg, clock, pgp_keys, arm=True) as (app, svc):
        later = EMBARGO + timedelta(hours=1)
        await sched.reschedule(svc, 465, later, "cli:alice")
        by_state: dict[str, list[str]] = {}
        for _key, rcpt, state, _ in await rows(app):
            by_state.setdefault(state, []).append(rcpt)
        assert sorted(by_state["cancelled"]) == ALL_PUBLIC
        assert sorted(by_state["staged"]) == ALL_PUBLIC
        clock.set(EMBARGO)  # the old instant
        assert await svc.dispatcher.dispatch(clock.now()) == []
        # Try to break it: a bug or a hand edit makes the old rows sendable at the old
        # instant. The gate refuses them: the advisory is not released.
        async with app.store.unit() as tx:
            await tx.conn.execute(
                update(outbox).where(outbox.c.state == OutboxState.CANCELLED.value,
                                     outbox.c.audience == Audience.PUBLIC.value)
                .values(state=OutboxState.PENDING.value, next_attempt_at=clock.now()))
        app.outbound_waker.wake()
        outside = len(ALL_PUBLIC) - len(TEAM)
        await sink.wait_deliveries(outside * len(TEAM))  # one alert per row, to the team
        assert set(sink.recipients()) == set(TEAM)
        refused = await alerts(app, "gate-refused")
        assert len(refused) == outside
        assert all("not released" in s for s in refused)
        sink.received.clear()
        clock.set(later)
        await released_once(app, svc)
        app.outbound_waker.wake()
        await sink.wait_deliveries(len(ALL_PUBLIC))
        assert sorted(sink.recipients()) == ALL_PUBLIC  # once each, the new rows


async def test_stale_row_after_release_is_refused_for_its_instant(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    """Released at the moved instant; a row built for the old instant still may not go."""
    cfg = cfg_for(make_config, sink, pgp_home, pgp_keys)
    async with advisory_daemon(cfg, clock, pgp_keys, arm=True) as (app, svc):
        earlier = EMBARGO - timedelta(hours=2)
        await sched.reschedule(svc, 465, earlier, "cli:alice")
        clock.set(earlier)
        await released_once(app, svc)
        app.outbound_waker.wake()
        await sink.wait_deliveries(len(ALL_PUBLIC))
        sink.received.clear()
        async with app.store.unit() as tx:
            await tx.conn.execute(
                update(outbox).where(outbox.c.state == OutboxState.CANCELLED.value,
                                     outbox.c.recipient == PUBLIC_LISTS[0])
                .values(state=OutboxState.PENDING.value, next_attempt_at=clock.now()))
        clock.set(EMBARGO)  # even after the stale row's own not_before
        app.outbound_waker.wake()
        await sink.wait_deliveries(len(TEAM))
        assert set(sink.recipients()) == set(TEAM)
        assert any("built for" in s for s in await alerts(app, "gate-refused"))


async def test_cancel_rearm_and_amend_replace_the_staged_rows(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    cfg = cfg_for(make_config, sink, pgp_home, pgp_keys)
    async with advisory_daemon(cfg, clock, pgp_keys, arm=True) as (app, svc):
        await sched.cancel(svc, 465, "cli:alice")
        assert {s for _, _, s, _ in await rows(app)} == {"cancelled"}
        await sched.schedule(svc, 465, "cli:alice")  # same instant, same version
        await svc.amend(465, Change(updates=("Corrected the affected versions.",)),
                        "cli:alice")
        live = [(k, r) for k, r, s, _ in await rows(app) if s == "staged"]
        assert sorted(r for _, r in live) == ALL_PUBLIC
        assert all(":v2:" in k for k, _ in live)
        clock.set(EMBARGO)
        await released_once(app, svc)
        app.outbound_waker.wake()
        await sink.wait_deliveries(len(ALL_PUBLIC))
        assert sorted(sink.recipients()) == ALL_PUBLIC
        assert all(b"version 2" in rec.data for rec in sink.received)


async def test_staging_for_an_instant_that_moved_meanwhile_stores_nothing(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    """Encryption runs outside the transaction; if the release moved while it ran, the
    rows it built are dropped (the arming that moved it staged its own)."""
    cfg = cfg_for(make_config, sink, pgp_home, pgp_keys)
    async with advisory_daemon(cfg, clock, pgp_keys, arm=True) as (app, svc):
        seen, cur = await svc.load(465)  # what a slow staging run started from
        old_key = fanout.public_key("XSA", 465, cur.version, seen.embargo_at)
        fan = fanout.public(svc.r, svc.doc(seen, cur), cur.public_raw,
                            await app.store.members(), seen.embargo_at)
        await sched.reschedule(svc, 465, EMBARGO + timedelta(hours=3), "cli:alice")
        before = await rows(app)
        assert await staging._store(svc, seen, fan, old_key, "cli:alice") == 0
        assert await rows(app) == before  # nothing added, nothing revived
        assert not [k for k, _, s, _ in before if k == old_key and s == "staged"]
