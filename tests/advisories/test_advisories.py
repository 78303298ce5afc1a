"""A whole advisory on a fake clock: create, pre-disclose, amend, release, v3 after it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path

import pytest

from listbot.advisories import schedule as sched
from listbot.advisories.service import Advisories, Change
from listbot.app import App
from listbot.core.clock import FakeClock
from listbot.core.errors import Refused
from listbot.core.mail.pgp import Keyring
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
    draft,
    released_once,
    service,
    wait_until,
)
from tests.pgp_fixtures import PgpKeys
from tests.sink import Sink

pgp_template = pgp_fixtures.pgp_template
pgp_keys = pgp_fixtures.pgp_keys
pgp_home = pgp_fixtures.pgp_home


@pytest.fixture
async def daemon(make_config: Callable[..., Settings], sink: Sink, clock: FakeClock,
                 pgp_home: Path, pgp_keys: PgpKeys) -> AsyncIterator[tuple[App, Advisories]]:
    cfg = make_config(advisory_config(pgp_home, pgp_keys), sink=sink)
    app = App.create(cfg, clock=clock)
    await app.start()
    await add_members(app, pgp_keys)
    try:
        yield app, service(app, cfg)
    finally:
        await app.stop()


def by_rcpt(sink: Sink) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for rcpt, rec in sink.deliveries():
        out.setdefault(rcpt, []).append(rec.data)
    return out


async def test_whole_advisory_create_predisclose_amend_release_v3(
        daemon: tuple[App, Advisories], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    app, svc = daemon
    assert await svc.create(draft(), "cli:alice") == 465
    shown = await sched.show(svc, 465)
    assert b"Subject: [EMBARGOED until 2026-12-01 12:00 UTC] Xen Security Advisory 465 v1" \
        in shown
    assert b"X-Embargoed-Until: 2026-12-01T12:00:00Z" in shown
    assert b"-----BEGIN PGP SIGNED MESSAGE-----" in shown
    # Deterministic: show twice gives the same bytes.
    assert await sched.show(svc, 465) == shown

    await svc.predisclose(465, "cli:alice")
    app.outbound_waker.wake()
    await sink.wait_deliveries(5)
    got = by_rcpt(sink)
    assert sorted(got) == sorted([KEYED, *PLAIN, *TEAM])
    for rcpt in [*PLAIN, *TEAM]:
        assert got[rcpt] == [shown]  # show == sent, byte for byte
    sealed = got[KEYED][0]
    assert b"multipart/encrypted" in sealed and b"ISSUE DESCRIPTION" not in sealed
    assert b"[EMBARGOED until 2026-12-01 12:00 UTC]" in sealed  # the subject still warns
    # The member can decrypt it to exactly the signed advisory.
    member_ring = Keyring(pgp_home)
    armored = sealed[sealed.index(b"-----BEGIN PGP MESSAGE-----"):]
    armored = armored[:armored.index(b"-----END PGP MESSAGE-----") + 25]
    plain = await member_ring.decrypt(armored)
    assert plain.ok and plain.plaintext is not None
    assert shown.split(b"\r\n\r\n", 1)[1] in plain.plaintext

    # An amendment during the embargo goes to the pre-disclosure list at once.
    assert await svc.amend(465, Change(updates=("Patch for Xen 4.16 added.",)), "cli:bob") == 2
    app.outbound_waker.wake()
    await sink.wait_deliveries(10)
    v2 = await sched.show(svc, 465)
    assert b"Advisory 465 v2" in v2 and b"UPDATES IN VERSION 2" in v2
    assert by_rcpt(sink)[PLAIN[0]][-1] == v2

    assert await sched.schedule(svc, 465, "cli:alice") == "scheduled"
    clock.set(EMBARGO - timedelta(seconds=1))
    assert await svc.dispatcher.dispatch(clock.now()) == []  # never early
    clock.set(EMBARGO)
    await released_once(app, svc)
    assert await svc.dispatcher.dispatch(clock.now()) == []  # never twice
    app.outbound_waker.wake()
    await sink.wait_deliveries(10 + 2 + 3 + 2)
    public = await sched.show(svc, 465, public=True)
    assert b"EMBARGOED" not in public and b"Public release." in public
    got = by_rcpt(sink)
    for rcpt in [*PUBLIC_LISTS, KEYED, *PLAIN, *TEAM]:
        assert got[rcpt][-1] == public

    # Version 3 after the release: public lists and members, no embargo marking.
    assert await svc.amend(465, Change(updates=("Patch for Xen 4.19 added.",)), "cli:bob") == 3
    app.outbound_waker.wake()
    await sink.wait_deliveries(17 + 7)
    v3 = await sched.show(svc, 465, public=True)
    assert b"Advisory 465 v3" in v3 and b"EMBARGOED" not in v3
    assert b"Public release." not in v3
    with pytest.raises(Refused):
        await sched.show(svc, 465, version=3)
    assert by_rcpt(sink)[PUBLIC_LISTS[0]][-1] == v3
    assert message_from_bytes(v3)["In-Reply-To"] == "<xsa465.v1.public@example.org>"

    async def settled() -> bool:
        return {r["status"] for r in await sched.status(svc, 465)
                if r["status"] != "cancelled"} == {"accepted"}
    await wait_until(settled)  # the sink has the bytes; the outcome commits just after
    rows = [r for r in await sched.status(svc, 465) if r["status"] != "cancelled"]
    assert {(r["version"], r["recipient"]) for r in rows if r["kind"] == "predisclosure"} == {
        (v, a) for v in (1, 2) for a in [KEYED, *PLAIN, *TEAM]}
    actions = [e.action for e in await sched.report(svc, 465) if e.action != "advisory.staged"]
    assert actions[:5] == ["advisory.create", "advisory.predisclose", "advisory.amend",
                           "advisory.schedule", "advisory.released"]
    # The public index on disk now shows the full entry.
    index = json.loads((app.cfg.state_dir / "public" / "pending.json").read_text())
    assert "CVE-2024-45819" in json.dumps(index)


async def test_embargoed_index_shows_number_and_time_only(
        daemon: tuple[App, Advisories]) -> None:
    app, svc = daemon
    await svc.create(draft(), "cli:alice")
    await sched.schedule(svc, 465, "cli:alice")
    for name in ("pending.json", "pending.ics", "pending.html"):
        text = (app.cfg.state_dir / "public" / name).read_text()
        assert "465" in text
        for secret in ("CVE-2024", "XSAVE", "bounds", "x86"):
            assert secret not in text, (name, secret)
    await sched.reschedule(svc, 465, EMBARGO + timedelta(days=1), "cli:alice")
    ics = (app.cfg.state_dir / "public" / "pending.ics").read_text()
    assert "SEQUENCE:1" in ics and "20261202T120000Z" in ics
