"""Moderation end to end: real posts and replies through the real daemon, real gpg."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from listbot.app import App
from listbot.core.clock import FakeClock
from listbot.core.model import OutboxItem, OutboxState
from listbot.core.store import moderation as held_ops
from listbot.settings import Settings
from tests import pgp_fixtures
from tests.daemon import MEMBERS, lmtp_send, outbox_settled, post, running, settle
from tests.moderation_helpers import (
    ALICE,
    BOB,
    DISCUSS,
    MEMBER,
    held_post,
    hold_one,
    inline_signed_reply,
    moderation_config,
    payload_text,
    reply,
    send_reply,
    signed_reply,
)
from tests.pgp_fixtures import PgpKeys
from tests.sink import Sink

pgp_template = pgp_fixtures.pgp_template
pgp_keys = pgp_fixtures.pgp_keys
pgp_home = pgp_fixtures.pgp_home


@pytest.fixture
async def app(make_config: Callable[..., Settings], sink: Sink, clock: FakeClock,
              pgp_home: Path, pgp_keys: PgpKeys) -> AsyncIterator[App]:
    cfg = make_config(moderation_config(pgp_home, pgp_keys), sink=sink)
    async with running(cfg, clock) as application:
        yield application


async def audit(app: App, prefix: str = "moderation.") -> list[tuple[str, str, dict[str, object]]]:
    return [(e.actor, e.action, dict(e.detail))
            for e in await app.store.audit_listing(action_prefix=prefix)]


async def actions(app: App) -> list[str]:
    return [a for _, a, _ in await audit(app)]


async def test_signed_approval_distributes_the_held_post_once(
        app: App, sink: Sink, pgp_home: Path, pgp_keys: PgpKeys) -> None:
    tokens = await hold_one(app, sink)
    assert sorted(tokens) == [ALICE, BOB]
    request = sink.received[0]
    assert request.message["Auto-Submitted"] == "auto-generated"
    assert "approve" in payload_text(request.data)
    before = len(sink.deliveries())
    await send_reply(app, tokens[ALICE], signed_reply(pgp_home, pgp_keys.moderator, ALICE,
                                                      "approve\n\n> quoted request\n"))
    await sink.wait_deliveries(before + len(MEMBERS))
    post = sink.received[-1].message
    assert post["X-Listbot-Rule-Hits"] == "none"
    assert "moderation.approve" in await actions(app)
    actor, _, detail = next(e for e in await audit(app) if e[1] == "moderation.approve")
    assert actor == ALICE and detail["via"] == "signed reply" and detail["token_id"]


async def test_inline_signed_reject_with_canned_reason_sends_policy_notice(
        app: App, sink: Sink, pgp_home: Path, pgp_keys: PgpKeys) -> None:
    tokens = await hold_one(app, sink)
    before = len(sink.deliveries())
    await send_reply(app, tokens[BOB], inline_signed_reply(pgp_home, pgp_keys.team, BOB,
                                                           "reject policy\n"), envelope=BOB)
    await sink.wait_deliveries(before + 1)
    notice = sink.received[-1]
    assert notice.rcpts == [MEMBER]
    text = payload_text(notice.data)
    assert "security@example.org" in text and "announce@lists.example.org" in text


# --- attempts to break it --------------------------------------------------------------

async def _nothing_happened(app: App, sink: Sink, before: int, reason: str) -> None:
    await settle(app)
    assert len(sink.deliveries()) == before
    ignored = [d for _, a, d in await audit(app) if a == "moderation.reply_ignored"]
    assert ignored and reason in str(ignored[-1]["reason"]), ignored
    assert "moderation.approve" not in await actions(app)


async def test_forged_moderator_from_without_token(app: App, sink: Sink) -> None:
    await hold_one(app, sink)
    before = len(sink.deliveries())
    await send_reply(app, "", reply(ALICE, "approve\n"))
    await _nothing_happened(app, sink, before, "unknown token")


async def test_valid_token_from_a_non_moderator(app: App, sink: Sink, pgp_home: Path,
                                                pgp_keys: PgpKeys) -> None:
    tokens = await hold_one(app, sink)
    before = len(sink.deliveries())
    data = signed_reply(pgp_home, pgp_keys.member, MEMBER, "approve\n")
    await send_reply(app, tokens[ALICE], data, envelope=MEMBER)
    await _nothing_happened(app, sink, before, "not a decider")


async def test_leaked_token_with_forged_unsigned_from(app: App, sink: Sink) -> None:
    tokens = await hold_one(app, sink)
    before = len(sink.deliveries())
    await send_reply(app, tokens[ALICE], reply(ALICE, "approve\n"))
    await _nothing_happened(app, sink, before, "not signed")


async def test_leaked_token_signed_by_another_key(app: App, sink: Sink, pgp_home: Path,
                                                  pgp_keys: PgpKeys) -> None:
    tokens = await hold_one(app, sink)
    before = len(sink.deliveries())
    data = signed_reply(pgp_home, pgp_keys.member, ALICE, "approve\n")
    await send_reply(app, tokens[ALICE], data)
    await _nothing_happened(app, sink, before, "not signed")


async def test_token_of_one_moderator_used_by_the_other(app: App, sink: Sink,
                                                        pgp_home: Path,
                                                        pgp_keys: PgpKeys) -> None:
    tokens = await hold_one(app, sink)
    before = len(sink.deliveries())
    await send_reply(app, tokens[ALICE], signed_reply(pgp_home, pgp_keys.team, BOB,
                                                      "approve\n"), envelope=BOB)
    await _nothing_happened(app, sink, before, "issued to someone else")


async def test_token_reused_after_decision_is_told_who_decided(
        app: App, sink: Sink, pgp_home: Path, pgp_keys: PgpKeys) -> None:
    tokens = await hold_one(app, sink)
    good = signed_reply(pgp_home, pgp_keys.moderator, ALICE, "discard\n")
    await send_reply(app, tokens[ALICE], good)
    before = len(sink.deliveries())
    again = signed_reply(pgp_home, pgp_keys.moderator, ALICE, "approve\n")
    await send_reply(app, tokens[ALICE], again)
    await sink.wait_deliveries(before + 1)
    answer = sink.received[-1]
    assert answer.rcpts == [ALICE]
    assert "already decided by alice@example.org at 2026-11-25 09:00 UTC" in payload_text(
        answer.data)
    assert (await actions(app)).count("moderation.discard") == 1
    assert "moderation.approve" not in await actions(app)


async def test_token_for_another_post_decides_only_that_post(
        app: App, sink: Sink, pgp_home: Path, pgp_keys: PgpKeys) -> None:
    first = await hold_one(app, sink, "first question")
    await hold_one(app, sink, "second question")
    await send_reply(app, first[ALICE], signed_reply(pgp_home, pgp_keys.moderator, ALICE,
                                                     "discard\n"))
    async with app.store.unit() as tx:
        from listbot.core.store import moderation as held_ops
        states = {p.subject: p.state for p in await held_ops.listing(tx, None)}
    assert states == {"first question": "discarded", "second question": "held"}


async def test_mutated_token_is_unknown(app: App, sink: Sink, pgp_home: Path,
                                        pgp_keys: PgpKeys) -> None:
    tokens = await hold_one(app, sink)
    token = tokens[ALICE]
    mutated = token[:-2] + ("a" if token[-2] != "a" else "b") + token[-1]
    before = len(sink.deliveries())
    await send_reply(app, mutated, signed_reply(pgp_home, pgp_keys.moderator, ALICE,
                                                "approve\n"))
    await _nothing_happened(app, sink, before, "unknown token")


async def test_approval_only_inside_quoted_text(app: App, sink: Sink, pgp_home: Path,
                                                pgp_keys: PgpKeys) -> None:
    tokens = await hold_one(app, sink)
    before = len(sink.deliveries())
    text = "On Monday Bob wrote:\n> approve\n\nThanks\n"
    await send_reply(app, tokens[ALICE], signed_reply(pgp_home, pgp_keys.moderator, ALICE,
                                                      text))
    await _nothing_happened(app, sink, before, "command")


async def test_approve_in_html_but_reject_in_plain_part(app: App, sink: Sink,
                                                        pgp_home: Path,
                                                        pgp_keys: PgpKeys) -> None:
    tokens = await hold_one(app, sink)
    before = len(sink.deliveries())
    entity = (b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n"
              b"Content-Type: text/html\r\n\r\n<p>approve</p>\r\n--b\r\n"
              b"Content-Type: text/plain\r\n\r\nreject not on topic\r\n--b--\r\n")
    await send_reply(app, tokens[ALICE], signed_reply(pgp_home, pgp_keys.moderator, ALICE,
                                                      "", entity=entity))
    await sink.wait_deliveries(before + 1)
    assert [r for r, _ in sink.deliveries()[before:]] == [MEMBER], "a notice, no distribution"
    assert "not on topic" in payload_text(sink.received[-1].data)
    assert "moderation.reject" in await actions(app)
    assert "moderation.approve" not in await actions(app)


async def test_out_of_office_from_a_moderator(app: App, sink: Sink) -> None:
    tokens = await hold_one(app, sink)
    before = len(sink.deliveries())
    data = reply(ALICE, "approve\nI am out of the office.\n",
                 extra="Auto-Submitted: auto-replied\r\n")
    await send_reply(app, tokens[ALICE], data)
    await _nothing_happened(app, sink, before, "automatic reply")


async def test_two_moderators_at_the_same_moment(app: App, sink: Sink, pgp_home: Path,
                                                 pgp_keys: PgpKeys) -> None:
    tokens = await hold_one(app, sink)
    before = len(sink.deliveries())
    a = signed_reply(pgp_home, pgp_keys.moderator, ALICE, "approve\n")
    b = signed_reply(pgp_home, pgp_keys.team, BOB, "discard\n")
    await asyncio.gather(
        lmtp_send(app, ALICE, [f"discuss-mod+{tokens[ALICE]}@lists.example.org"], a),
        lmtp_send(app, BOB, [f"discuss-mod+{tokens[BOB]}@lists.example.org"], b))
    await settle(app)
    decided = [(actor, a) for actor, a, _ in await audit(app)
               if a in ("moderation.approve", "moderation.discard")]
    assert len(decided) == 1
    assert (await actions(app)).count("moderation.already_decided") == 1
    winner = decided[0][0]
    loser = BOB if winner == ALICE else ALICE
    expected = len(MEMBERS) if decided[0][1] == "moderation.approve" else 0
    await sink.wait_deliveries(before + expected + 1)
    assert [r for r, _ in sink.deliveries()[before:]].count(loser) == 1


# --- the reject notice obeys the auto-reply rules (docs/design.md "No loops, no backscatter")

async def _notices_to(app: App, address: str) -> list[OutboxItem]:
    return [i for i in await app.store.outbox_listing(list(OutboxState))
            if i.envelope_from == "" and i.recipient == address]


async def _hold(app: App, subject: str, extra: str = "") -> int:
    data = post(f"Vendor A <{MEMBER}>", subject=subject, body="What do you all think?\r\n",
                extra=extra)
    assert await lmtp_send(app, MEMBER, [DISCUSS], data) == {}
    await settle(app)
    async with app.store.read() as tx:
        held = await held_ops.listing(tx, ["held"])
    return next(p.id for p in held if p.subject == subject)


async def _reject(app: App, post_id: int) -> None:
    async with app.store.unit() as tx:
        await app.moderations["discuss"].decide_now(tx, post_id, decider=ALICE, verb="reject",
                                                    reason="policy", via="shell")


@pytest.mark.parametrize("extra", ["Auto-Submitted: auto-replied\r\n",
                                   "Precedence: bulk\r\n",
                                   "Content-Type: multipart/report; report-type=x\r\n"])
async def test_rejecting_automatic_mail_sends_no_notice(app: App, extra: str) -> None:
    post_id = await _hold(app, "Out of office", extra)
    await _reject(app, post_id)
    assert "moderation.reject" in await actions(app)
    assert await _notices_to(app, MEMBER) == []
    _, _, detail = next(e for e in await audit(app) if e[1] == "moderation.reject")
    assert detail["notice"] is None and detail["no_reply_reason"]


async def test_rejecting_a_post_from_a_bounce_address_sends_no_notice(app: App) -> None:
    # The From is a member, but the envelope is the null sender: a bounce.
    data = post(f"Vendor A <{MEMBER}>", subject="Undelivered", body="What now?\r\n")
    assert await lmtp_send(app, "", [DISCUSS], data) == {}
    await settle(app)
    async with app.store.read() as tx:
        (held,) = await held_ops.listing(tx, ["held"])
    await _reject(app, held.id)
    assert await _notices_to(app, MEMBER) == []


async def test_reject_notices_are_rate_limited_per_sender(app: App) -> None:
    limit = app.cfg.reply_rate_per_hour
    posts = [await _hold(app, f"question {i}") for i in range(limit + 2)]
    for post_id in posts:
        await _reject(app, post_id)
    assert len(await _notices_to(app, MEMBER)) == limit
    rejects = [d for _, a, d in await audit(app) if a == "moderation.reject"]
    assert len(rejects) == limit + 2
    assert [d["notice"] for d in rejects].count(None) == 2


async def test_reject_notice_does_not_reach_a_poster_removed_since_the_hold(
        app: App, sink: Sink) -> None:
    # The notice quotes the held post's subject and the moderator's reason: embargoed
    # text, for current members only.
    post_id = await _hold(app, "XSA-470 follow-up")
    async with app.store.unit() as tx:
        await tx.remove_member(MEMBER, "left the programme")
    await outbox_settled(app)  # the moderators' requests, which do carry the subject
    before = len(sink.deliveries())
    async with app.store.unit() as tx:
        await app.moderations["discuss"].decide_now(
            tx, post_id, decider=ALICE, verb="reject", reason="XSA-471 covers this",
            via="shell")
    await outbox_settled(app)
    assert MEMBER not in [r for r, _ in sink.deliveries()[before:]]
    assert all(b"XSA-47" not in rec.data for rec in sink.received[before:])
    refused = await app.store.audit_listing(action_prefix="alert.gate-refused")
    assert [e.detail["recipient"] for e in refused] == [MEMBER]


async def test_a_moderator_outside_the_team_never_gets_the_held_post(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    # The request carries the held post: team mail. Moderating is the team's job
    # (docs/design.md "People and addresses"), so a configured moderator who is not on
    # it is refused by the gate.
    outside = "psirt@vendor-b.example"
    settings = moderation_config(pgp_home, pgp_keys)
    settings["lists"]["discuss"]["moderators"] = [ALICE, BOB, outside]
    async with running(make_config(settings, sink=sink), clock) as app:
        assert await lmtp_send(app, MEMBER, [DISCUSS], held_post("XSA-472 question")) == {}
        await settle(app)
        await outbox_settled(app)
        assert outside not in sink.recipients()
        refused = await app.store.audit_listing(action_prefix="alert.gate-refused")
        assert [e.detail["recipient"] for e in refused] == [outside]
