"""Discuss posts under `[pgp] require_encryption`: ciphertext per member, or held."""

from __future__ import annotations

from collections.abc import Callable
from email import message_from_bytes
from pathlib import Path
from typing import Any

from sqlalchemy import select

from listbot.app import App
from listbot.core.clock import FakeClock
from listbot.core.model import OutboxState
from listbot.core.store.schema import bodies, outbox
from listbot.settings import Settings
from tests import pgp_fixtures
from tests.daemon import lmtp_send, post, settle
from tests.pgp_fixtures import PgpKeys, gpg
from tests.sink import Sink

pgp_template = pgp_fixtures.pgp_template
pgp_keys = pgp_fixtures.pgp_keys
pgp_home = pgp_fixtures.pgp_home

DISCUSS = "discuss@lists.example.org"
A, B, C = "security@vendor-a.example", "psirt@vendor-b.example", "secalert@vendor-c.example"
TEAM = ["alice@example.org", "bob@example.org"]
SECRET = ("The XSAVE area overflow is reachable from PV guests; the backport of the patch "
          "builds and the crash reproduces without it")


def decrypt(home: Path, raw: bytes) -> bytes:
    outer = message_from_bytes(raw)
    assert outer.get_content_type() == "multipart/encrypted"
    parts = outer.get_payload()
    assert isinstance(parts, list)
    armored = parts[1].get_payload(decode=True)
    assert isinstance(armored, bytes)
    return gpg(home, "--decrypt", data=armored).stdout


async def start(make_config: Callable[..., Settings], sink: Sink, clock: FakeClock,
                home: Path, keys: PgpKeys, require: bool,
                extra: dict[str, Any] | None = None) -> App:
    app = App.create(make_config({"pgp": {"home": str(home), "team_fingerprint": keys.team,
                                          "require_encryption": require}, **(extra or {})},
                                 sink=sink),
                     clock=clock)
    await app.start()
    async with app.store.unit() as tx:
        await tx.add_member("Vendor A", A, keys.member)
        await tx.add_member("Vendor B", B, keys.reporter)
        await tx.add_member("Vendor C", C, None)
    return app


async def test_post_goes_encrypted_to_keyed_members_and_is_held_for_the_rest(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    app = await start(make_config, sink, clock, pgp_home, pgp_keys, True)
    try:
        data = post(f"Vendor A <{A}>", subject="Re: [XSA-465] PV guests too",
                    body=f"{SECRET}.\r\n")
        assert await lmtp_send(app, A, [DISCUSS], data) == {}
        await sink.wait_deliveries(2 + len(TEAM))  # A, B encrypted; the alert to the team
        await settle(app)
        got = {r: rec.data for r, rec in sink.deliveries()}
        assert sorted(got) == sorted([A, B, *TEAM])  # C gets nothing at all
        original_id = message_from_bytes(data)["Message-ID"]
        for rcpt in (A, B):
            raw = got[rcpt]
            # Nothing of the post in the clear: not the body, not the subject.
            assert SECRET.encode() not in raw and b"XSA-465" not in raw
            outer = message_from_bytes(raw)
            assert outer["Subject"] == "Encrypted message via Example discuss"
            assert outer["Message-ID"] == original_id  # replies thread as usual
            assert outer["List-Id"] == "Example discuss <discuss.lists.example.org>"
            assert outer["X-Loop"] == DISCUSS
        inner = decrypt(pgp_home, got[A])
        assert inner.startswith(b"Content-Type: message/rfc822\r\n\r\n")
        # The poster's bytes are intact inside, after our list headers.
        assert inner.endswith(data[data.index(b"To: "):])
        assert b"Subject: Re: [XSA-465] PV guests too\r\n" in inner
        assert SECRET.encode() in decrypt(pgp_home, got[B])
        alerts = await app.store.audit_listing(action_prefix="alert.discuss-held")
        assert len(alerts) == 1 and C in str(alerts[0].detail["summary"])
        async with app.store.unit() as tx:
            held = (await tx.conn.execute(
                select(outbox.c.recipient, outbox.c.state, bodies.c.raw)
                .join(bodies, bodies.c.id == outbox.c.body_id)
                .where(outbox.c.state == OutboxState.HELD.value))).all()
        # Held without bytes: releasing it by mistake can never send the plaintext.
        assert [(r, bytes(b)) for r, _, b in held] == [(C, b"")]
    finally:
        await app.stop()


async def test_without_require_encryption_posts_are_unchanged(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    app = await start(make_config, sink, clock, pgp_home, pgp_keys, False)
    try:
        data = post(f"Vendor A <{A}>", body=f"{SECRET}.\r\n")
        await lmtp_send(app, A, [DISCUSS], data)
        await sink.wait_deliveries(3)
        await settle(app)
        assert sink.recipients() == sorted([A, B, C])
        assert len(sink.received) == 1  # one plaintext transaction, original bytes
        assert sink.received[0].data.endswith(data[data.index(b"To: "):])
    finally:
        await app.stop()


async def test_held_post_approved_later_still_goes_out_only_as_ciphertext(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    # Moderators here have no keys: their requests go in clear (the post is not the point).
    app = await start(make_config, sink, clock, pgp_home, pgp_keys, True,
                      {"moderation": {"encrypt_requests": False}})
    try:
        unclear = "Has anyone seen the XSAVE thing on their fleet? Curious what you all think"
        data = post(f"Vendor A <{A}>", subject="question", body=f"{unclear}\r\n")
        assert await lmtp_send(app, A, [DISCUSS], data) == {}
        await settle(app)
        held = await app.store.audit_listing(action_prefix="moderation.hold")
        assert held, "an unclear post is held for a moderator"
        post_id = int(held[0].subject.split(":")[1])
        before = len(sink.deliveries())
        async with app.store.unit() as tx:
            await app.moderations["discuss"].decide_now(
                tx, post_id, decider="alice@example.org", verb="approve", reason="",
                via="cli")
        app.outbound_waker.wake()
        await sink.wait_deliveries(before + 2)
        await settle(app)
        for rcpt, rec in sink.deliveries()[before:]:
            if rcpt in (A, B):
                assert unclear.encode() not in rec.data
                assert message_from_bytes(rec.data).get_content_type() == "multipart/encrypted"
        assert C not in [r for r, _ in sink.deliveries()]
    finally:
        await app.stop()
