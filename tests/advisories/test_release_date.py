"""Public copies are dated at their release instant, not when the text was made."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from email import message_from_bytes
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

from listbot.advisories import schedule as sched
from listbot.app import App
from listbot.core.clock import FakeClock
from listbot.core.mail.pgp import Keyring
from listbot.settings import Settings
from tests import pgp_fixtures
from tests.advisories.test_release import ALL_PUBLIC, cfg_for
from tests.advisories.test_release_staging import encrypted, rows
from tests.advisory_helpers import (
    KEYED,
    PLAIN,
    TEAM,
    add_members,
    draft,
    released_once,
    service,
)
from tests.pgp_fixtures import PgpKeys
from tests.sink import Sink

pgp_template = pgp_fixtures.pgp_template
pgp_keys = pgp_fixtures.pgp_keys
pgp_home = pgp_fixtures.pgp_home


def date_of(raw: bytes) -> str:
    value = message_from_bytes(raw)["Date"]
    assert isinstance(value, str)
    return value


def rfc5322(when: datetime) -> str:
    return format_datetime(when)  # e.g. "Tue, 15 Dec 2026 12:00:00 +0000"


async def signed_text(raw: bytes, member_home: Path) -> bytes:
    """The clear-signed text part of a copy, decrypted first when it is sealed."""
    if encrypted(raw):
        armored = raw[raw.index(b"-----BEGIN PGP MESSAGE-----"):]
        armored = armored[:armored.index(b"-----END PGP MESSAGE-----") + 25]
        result = await Keyring(member_home).decrypt(armored)
        assert result.ok and result.plaintext is not None
        raw = b"Content-Type: message/rfc822\r\n\r\n" + result.plaintext
    msg = message_from_bytes(raw)
    part = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload


async def assert_signed_by_team(app: App, raw: bytes, home: Path, keys: PgpKeys,
                                now: datetime) -> None:
    verdict = await app.keyring.verify_clearsigned(await signed_text(raw, home), [keys.team],
                                                   now)
    assert verdict.valid, verdict


async def test_public_copies_carry_the_instant_and_still_verify(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    cfg = cfg_for(make_config, sink, pgp_home, pgp_keys, encrypting=True)
    created = clock.now()
    instant = (created + timedelta(weeks=3)).replace(hour=12, minute=0)
    app = App.create(cfg, clock=clock)
    await app.start()
    try:
        await add_members(app, pgp_keys)
        svc = service(app, cfg)
        await svc.create(draft(embargo=instant), "cli:alice")
        await svc.predisclose(465, "cli:alice")
        app.outbound_waker.wake()
        await sink.wait_deliveries(len(PLAIN) + 1 + len(TEAM))
        # Pre-disclosure copies keep the date they were made and sent with.
        assert {date_of(rec.data) for rec in sink.received} == {rfc5322(created)}
        sink.received.clear()
        assert await sched.schedule(svc, 465, "cli:alice") == "scheduled"
        clock.set(instant)
        await released_once(app, svc)
        app.outbound_waker.wake()
        await sink.wait_deliveries(len(ALL_PUBLIC))
        got = {rcpt: rec.data for rcpt, rec in sink.deliveries()}
        assert sorted(got) == ALL_PUBLIC
        assert encrypted(got[KEYED]) and not encrypted(got[PLAIN[0]])
        for rcpt, raw in got.items():
            assert date_of(raw) == rfc5322(instant), rcpt
            assert parsedate_to_datetime(date_of(raw)) == instant
            await assert_signed_by_team(app, raw, pgp_home, pgp_keys, instant)
        assert got[PLAIN[0]] == await sched.show(svc, 465, public=True)  # show == sent
    finally:
        await app.stop()


async def test_a_moved_instant_moves_the_date_of_the_staged_copies(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    cfg = cfg_for(make_config, sink, pgp_home, pgp_keys, encrypting=True)
    first = (clock.now() + timedelta(weeks=2)).replace(hour=12, minute=0)
    later = first + timedelta(days=9, hours=3)
    app = App.create(cfg, clock=clock)
    await app.start()
    try:
        await add_members(app, pgp_keys)
        svc = service(app, cfg)
        await svc.create(draft(embargo=first), "cli:alice")
        await sched.schedule(svc, 465, "cli:alice")
        assert {date_of(b) for _, _, s, b in await rows(app) if s == "staged"} == {
            rfc5322(first)}
        await sched.reschedule(svc, 465, later, "cli:alice")
        staged = [(r, b) for _, r, s, b in await rows(app) if s == "staged"]
        assert sorted(r for r, _ in staged) == ALL_PUBLIC
        assert {date_of(b) for _, b in staged} == {rfc5322(later)}
        clock.set(later)
        await released_once(app, svc)
        app.outbound_waker.wake()
        await sink.wait_deliveries(len(ALL_PUBLIC))
        for rcpt, rec in sink.deliveries():
            assert date_of(rec.data) == rfc5322(later), rcpt
            await assert_signed_by_team(app, rec.data, pgp_home, pgp_keys, later)
    finally:
        await app.stop()
