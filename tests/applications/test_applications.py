"""Applications end to end: real mail in over LMTP, the sink out, real gpg for decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from listbot.app import App
from listbot.core.store import applications as app_ops
from listbot.core.store import roster as roster_ops
from tests.application_helpers import (
    LIST,
    SUBSCRIBERS,
    decision_reply,
    example,
    send,
    text_of,
    to,
    tokens_for,
)
from tests.applications.test_appcheck import EXPECTED
from tests.moderation_helpers import ALICE, BOB, signed_reply
from tests.pgp_fixtures import PgpKeys
from tests.sink import Sink

TEAM = [ALICE, BOB]


async def applications(app: App) -> list[app_ops.ApplicationRow]:
    async with app.store.unit() as tx:
        return await app_ops.listing(tx, None)


async def audit_actions(app: App, prefix: str = "application.") -> list[str]:
    return [e.action for e in await app.store.audit_listing(action_prefix=prefix)]


async def sign_and_send(app: App, home: Path, fpr: str, sender: str, token: str,
                        text: str) -> None:
    await send(app, signed_reply(home, fpr, sender, text),
               rcpt=f"applications-mod+{token}@lists.example.org", envelope=sender)


async def test_complete_application_is_answered_distributed_and_accepted(
        app: App, sink: Sink, pgp_home: Path, pgp_keys: PgpKeys) -> None:
    applicant = "jana.weber@nimbus-cloud.example"
    await send(app, example("free_cloud_narrative.eml"))
    # the applicant, each subscriber, each team member
    await sink.wait_deliveries(1 + len(SUBSCRIBERS) + len(TEAM))
    reply = to(sink, applicant)[0]
    text = text_of(reply)
    assert reply.mail_from == ""
    assert reply.message["Auto-Submitted"] == "auto-replied"
    assert reply.message["Reply-To"] == LIST
    assert "Every required item was found" in text
    assert 'FOUND: "security@nimbus-cloud.example"' in text
    post = to(sink, SUBSCRIBERS[0])[0]
    assert post.message["List-Id"] == "applications <applications.lists.example.org>"
    assert post.message["X-Listbot-Application"] == "1 (complete)"
    assert post.message["Precedence"] == "list"
    assert example("free_cloud_narrative.eml").split(b"\r\n\r\n", 1)[1] in post.data
    tokens = tokens_for(sink)
    assert sorted(tokens) == TEAM
    assert "accept" in text_of(to(sink, ALICE)[0])

    before = len(sink.deliveries())
    await sign_and_send(app, pgp_home, pgp_keys.moderator, ALICE, tokens[ALICE], "accept\n")
    await sink.wait_deliveries(before + len(SUBSCRIBERS) + 1)
    decision = sink.received[-1]
    assert sorted(decision.rcpts) == sorted([*SUBSCRIBERS, applicant])
    assert "accepted the application of Nimbus Cloud GmbH" in text_of(decision)
    members = await app.store.members()
    assert [(m.name, m.address) for m in members] == [
        ("Nimbus Cloud GmbH", "security@nimbus-cloud.example")]
    async with app.store.unit() as tx:
        changes = await roster_ops.changes(tx)
    assert [(c.text, c.at) for c in changes] == [("Added Nimbus Cloud GmbH", app.clock.now())]
    assert (await applications(app))[0].state == "accepted"

    # Bob's token arrives too late: told who decided, nothing changes.
    before = len(sink.deliveries())
    await sign_and_send(app, pgp_home, pgp_keys.team, BOB, tokens[BOB], "reject too late\n")
    await sink.wait_deliveries(before + 1)
    assert "already decided by alice@example.org" in text_of(sink.received[-1])
    assert len(await app.store.members()) == 1


async def test_every_example_gets_its_checklist(app: App, sink: Sink) -> None:
    singles = sorted(n for n in EXPECTED if not n.startswith(("duplicate", "followup",
                                                              "subscribe")))
    assert len(singles) >= 10
    for name in singles:
        await send(app, example(name))
    rows = {r.id: r for r in await applications(app)}
    assert len(rows) == len(singles)
    await sink.wait_deliveries(len(singles) * (1 + len(SUBSCRIBERS) + len(TEAM)))
    for app_id, name in enumerate(singles, start=1):
        missing, unacceptable = EXPECTED[name]
        row = rows[app_id]
        assert row.complete == (not missing and not unacceptable), name
        reply = next(r for r in sink.received
                     if r.message["X-Listbot-Application"] == str(app_id))
        text = text_of(reply)
        marks = [line.strip().split(":")[0] for line in text.splitlines()
                 if line.startswith("   ")]
        assert marks.count("MISSING") == len(missing), name
        assert marks.count("NOT ACCEPTABLE") == len(unacceptable), name
        assert marks.count("FOUND") == 9 - len(missing) - len(unacceptable), name
        if missing or unacceptable:
            assert "cannot be accepted" in text and "Role alias: [" in text, name


async def test_blog_and_video_only_is_flagged_and_cannot_be_accepted(
        app: App, sink: Sink, pgp_home: Path, pgp_keys: PgpKeys) -> None:
    await send(app, example("blog_and_video.eml"))
    await sink.wait_deliveries(1 + len(SUBSCRIBERS) + len(TEAM))
    text = text_of(to(sink, "marco@orbitvps.example")[0])
    assert "INCOMPLETE" in text and "a blog post" in text and "a video" in text
    tokens = tokens_for(sink)
    before = len(sink.deliveries())
    await sign_and_send(app, pgp_home, pgp_keys.moderator, ALICE, tokens[ALICE], "accept\n")
    await sink.wait_deliveries(before + 1)
    answer = sink.received[-1]
    assert answer.rcpts == [ALICE]
    assert "incomplete" in text_of(answer) and "cannot be accepted" in text_of(answer)
    assert await app.store.members() == []
    assert (await applications(app))[0].state == "open"
    assert "application.accept_refused" in await audit_actions(app)
    # The refusal did not spend the token: a rejection with it still works.
    before = len(sink.deliveries())
    await sign_and_send(app, pgp_home, pgp_keys.moderator, ALICE, tokens[ALICE],
                        "reject evidence is a blog post and a video\n")
    await sink.wait_deliveries(before + len(SUBSCRIBERS) + 1)
    assert "Reason: evidence is a blog post and a video" in text_of(sink.received[-1])
    assert (await applications(app))[0].state == "rejected"


async def test_sent_twice_is_one_application_posted_once(app: App, sink: Sink) -> None:
    await send(app, example("duplicate_1.eml"))
    await send(app, example("duplicate_2.eml"))
    rows = await applications(app)
    assert len(rows) == 1 and rows[0].messages == 2
    await sink.wait_deliveries(2 + len(SUBSCRIBERS) + len(TEAM))
    await app.store.outbox_listing([])  # nothing else pending
    assert len(to(sink, SUBSCRIBERS[0])) == 1
    assert len(to(sink, ALICE)) == 1
    assert len(to(sink, "admin@velox-hosting.example")) == 2  # each copy answered


async def test_follow_up_completes_the_same_application(
        app: App, sink: Sink, pgp_home: Path, pgp_keys: PgpKeys) -> None:
    applicant = "sofia.alves@atlantico-cloud.example"
    await send(app, example("followup_1.eml"))
    await sink.wait_deliveries(1 + len(SUBSCRIBERS) + len(TEAM))
    assert "INCOMPLETE" in text_of(to(sink, applicant)[0])
    start = len(sink.deliveries())
    await send(app, example("followup_2.eml"))
    await sink.wait_deliveries(start + 1 + len(SUBSCRIBERS) + len(TEAM))
    rows = await applications(app)
    assert len(rows) == 1 and rows[0].complete and rows[0].messages == 2
    assert "Every required item was found" in text_of(to(sink, applicant)[1])
    tokens = tokens_for(sink, start)
    assert "An updated application" in text_of(to(sink, BOB)[1])
    before = len(sink.deliveries())
    await sign_and_send(app, pgp_home, pgp_keys.team, BOB, tokens[BOB], "accept\n")
    await sink.wait_deliveries(before + len(SUBSCRIBERS) + 1)
    assert [(m.name, m.address) for m in await app.store.members()] == [
        ("Atlantico Cloud S.A.", "security@atlantico-cloud.example")]


# --- attempts to break it --------------------------------------------------------------

async def test_forged_acceptances_change_nothing(
        app: App, sink: Sink, pgp_home: Path, pgp_keys: PgpKeys) -> None:
    await send(app, example("form_hosting.eml"))
    await sink.wait_deliveries(1 + len(SUBSCRIBERS) + len(TEAM))
    tokens = tokens_for(sink)
    token = tokens[ALICE]
    rcpt = f"applications-mod+{token}@lists.example.org"
    # a non-team address holding a real token
    await send(app, decision_reply("mallory@evil.example", "accept"), rcpt=rcpt,
               envelope="mallory@evil.example")
    # the team address, unsigned
    await send(app, decision_reply(ALICE, "accept"), rcpt=rcpt, envelope=ALICE)
    # signed, but by a key that is not Alice's
    await send(app, signed_reply(pgp_keys.foreign_home, pgp_keys.outsider, ALICE, "accept\n"),
               rcpt=rcpt, envelope=ALICE)
    # Bob's valid signature on Alice's token
    await sign_and_send(app, pgp_home, pgp_keys.team, BOB, token, "accept\n")
    # no token at all, and a made-up one
    await send(app, decision_reply(ALICE, "accept"),
               rcpt="applications-moderation@lists.example.org", envelope=ALICE)
    await send(app, decision_reply(ALICE, "accept"),
               rcpt="applications-moderation+" + "A" * 32 + "@lists.example.org",
               envelope=ALICE)
    assert await app.store.members() == []
    assert (await applications(app))[0].state == "open"
    assert (await audit_actions(app)).count("application.reply_ignored") == 6
    # ... and the genuine reply still works afterwards: the token was never spent.
    before = len(sink.deliveries())
    await sign_and_send(app, pgp_home, pgp_keys.moderator, ALICE, token, "accept\n")
    await sink.wait_deliveries(before + len(SUBSCRIBERS) + 1)
    assert len(await app.store.members()) == 1


async def test_personal_address_and_two_aliases_cannot_be_accepted_from_the_shell(
        app: App, sink: Sink) -> None:
    await send(app, example("personal_address.eml"))
    await send(app, example("two_aliases.eml"))
    await send(app, example("no_policy_statement.eml"))
    from listbot.applications.handler import Applications
    lc = app.cfg.lists["applications"]
    service = Applications(cfg=app.cfg, lc=lc, ac=app.settings.applications,
                           store=app.store, clock=app.clock, keyring=None)
    from listbot.core.errors import Refused
    for app_id in (1, 2, 3):
        with pytest.raises(Refused, match="incomplete"):
            async with app.store.unit() as tx:
                await service.decide_now(tx, app_id, decider="cli:test", verb="accept",
                                         reason="", via="cli")
    with pytest.raises(Refused, match="reason"):
        async with app.store.unit() as tx:
            await service.decide_now(tx, 1, decider="cli:test", verb="reject", reason=" ",
                                     via="cli")
    assert await app.store.members() == []
    assert {r.state for r in await applications(app)} == {"open"}


@pytest.mark.parametrize("rcpt", [LIST, "applications-request@lists.example.org",
                                  "applications-join@lists.example.org",
                                  "applications-subscribe@lists.example.org"])
async def test_subscription_requests_change_nothing_and_get_no_reply(
        app: App, sink: Sink, rcpt: str) -> None:
    await send(app, example("subscribe_only.eml"), rcpt=rcpt)
    # A real application afterwards proves the pipeline ran past the request.
    await send(app, example("form_opensource.eml"))
    await sink.wait_deliveries(1 + len(SUBSCRIBERS) + len(TEAM))
    assert to(sink, "bob.smith@gmail.com") == []
    assert len(await applications(app)) == 1
    assert await app.store.members() == []
    entries = await app.store.audit_listing(action_prefix="subscription_request_ignored")
    assert len(entries) == 1


async def test_automatic_mail_is_never_answered_nor_posted(app: App, sink: Sink) -> None:
    data = example("free_vendor_terse.eml").replace(
        b"MIME-Version:", b"Auto-Submitted: auto-replied\r\nMIME-Version:", 1)
    await send(app, data)
    await send(app, example("form_opensource.eml"))
    await sink.wait_deliveries(1 + len(SUBSCRIBERS) + len(TEAM))
    assert len(await applications(app)) == 1
    assert "application.automatic_ignored" in await audit_actions(app)


async def test_checklist_replies_are_rate_limited(app: App, sink: Sink) -> None:
    limit = app.cfg.reply_rate_per_hour
    base = example("form_hosting.eml")
    for i in range(limit + 3):
        await send(app, base.replace(b"Organisation:", f"Note: copy {i}\r\nOrganisation:"
                                     .encode(), 1))
    await sink.wait_deliveries(limit + (limit + 3) * (len(SUBSCRIBERS) + len(TEAM)))
    assert len(to(sink, "ingrid.solberg@fjordhost.example")) == limit


async def test_accept_of_an_existing_member_is_refused_not_quarantined(
        app: App, sink: Sink, pgp_home: Path, pgp_keys: PgpKeys) -> None:
    async with app.store.unit() as tx:
        await tx.add_member("Someone else", "security@nimbus-cloud.example", None)
    await send(app, example("free_cloud_narrative.eml"))
    await sink.wait_deliveries(1 + len(SUBSCRIBERS) + len(TEAM))
    before = len(sink.deliveries())
    await sign_and_send(app, pgp_home, pgp_keys.moderator, ALICE, tokens_for(sink)[ALICE],
                        "accept\n")
    await sink.wait_deliveries(before + 1)
    assert "already a member" in text_of(sink.received[-1])
    assert (await applications(app))[0].state == "open"
    assert (await app.store.queue_counts())["inbound"].get("quarantined", 0) == 0
