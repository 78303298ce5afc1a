"""The spine end to end through real sockets: LMTP in, the recording sink out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest

from listbot.app import App
from listbot.core.clock import FakeClock
from listbot.core.model import Audience, InboundState, OutboxState, OutgoingMessage
from listbot.settings import Settings
from tests.daemon import (
    MEMBERS,
    add_members,
    deferred_once,
    lmtp_send,
    outbox_in,
    post,
    raw_session,
    running,
    settle,
)
from tests.sink import Sink

DISCUSS = "discuss@lists.example.org"
MEMBER = "security@vendor-a.example"


@pytest.fixture
async def app(make_config: Callable[..., Settings], sink: Sink,
              clock: FakeClock) -> AsyncIterator[App]:
    async with running(make_config(sink=sink), clock) as application:
        yield application


async def test_member_post_reaches_every_member_once_with_list_headers(
        app: App, sink: Sink) -> None:
    data = post(f"Vendor A <{MEMBER}>", body="The patch applies.\r\n")
    assert await lmtp_send(app, MEMBER, [DISCUSS], data) == {}
    await sink.wait_deliveries(len(MEMBERS))
    await settle(app)
    assert sink.recipients() == sorted(a for _, a in MEMBERS)
    msg = sink.received[0].message
    assert msg["List-Id"] == "Example discuss <discuss.lists.example.org>"
    assert msg["List-Post"] == f"<mailto:{DISCUSS}>"
    assert msg["Precedence"] == "list"
    assert msg["X-Loop"] == DISCUSS
    assert msg["From"] == f'"Vendor A via Example discuss" <{DISCUSS}>'
    assert msg["Reply-To"] == f'"Vendor A" <{MEMBER}>'
    assert msg["List-Help"].startswith("<mailto:")
    # The original bytes follow our headers: body and the other headers unchanged.
    assert sink.received[0].data.endswith(data[data.index(b"To: "):].split(b"\r\n\r\n")[1])
    assert b"Subject: Re: [XSA-465] backport\r\n" in sink.received[0].data
    assert sink.received[0].mail_from == "discuss-bounces@lists.example.org"


async def test_nonmember_gets_notice_and_nothing_is_distributed(app: App, sink: Sink) -> None:
    outsider = "eve@evil.example"
    await lmtp_send(app, outsider, [DISCUSS], post(outsider))
    await sink.wait_deliveries(1)
    await settle(app)
    assert sink.recipients() == [outsider]
    notice = sink.received[0]
    assert notice.mail_from == "", "notices go out with the null sender (no bounce loops)"
    assert notice.message["Auto-Submitted"] == "auto-replied"
    assert "security@example.org" in notice.message.get_payload()


async def test_nonmember_notice_never_quotes_the_post(app: App, sink: Sink) -> None:
    # The envelope sender the notice goes to need not be the writer (a forwarder, a
    # member's staff writing from a personal address): nothing of the post goes back.
    subject = "Re: [XSA-465] exploit for the XSAVE bounds check"
    await lmtp_send(app, "forwarder@elsewhere.example", [DISCUSS],
                    post("Staff <staff@vendor-a.example>", subject=subject,
                         body="Here is the exploit: overflow the XSAVE area.\r\n"))
    await sink.wait_deliveries(1)
    assert sink.recipients() == ["forwarder@elsewhere.example"]
    notice = sink.received[0].data
    assert b"XSA-465" not in notice and b"XSAVE" not in notice and b"exploit" not in notice
    assert b"In-Reply-To:" in notice


async def test_forged_member_display_name_is_still_a_nonmember(app: App, sink: Sink) -> None:
    forged = f'"{MEMBER}" <eve@evil.example>'
    await lmtp_send(app, "eve@evil.example", [DISCUSS], post(forged))
    await sink.wait_deliveries(1)
    assert sink.recipients() == ["eve@evil.example"]


async def test_automatic_mail_from_nonmember_gets_no_reply(app: App, sink: Sink) -> None:
    for extra in ("Auto-Submitted: auto-replied\r\n", "Precedence: bulk\r\n"):
        await lmtp_send(app, "bot@elsewhere.example", [DISCUSS],
                        post("bot@elsewhere.example", extra=extra))
    await lmtp_send(app, "", [DISCUSS], post("MAILER-DAEMON@elsewhere.example"))
    await settle(app)
    entries = await app.store.audit_listing(action_prefix="discuss.reject_nonmember")
    assert len(entries) == 3
    assert all(e.detail["notice"] is False for e in entries)
    assert sink.received == []


async def test_replies_are_rate_limited_per_address(app: App, sink: Sink) -> None:
    limit = app.cfg.reply_rate_per_hour
    for i in range(limit + 3):
        await lmtp_send(app, "eve@evil.example", [DISCUSS],
                        post("eve@evil.example", subject=f"spam {i}"))
    await settle(app)
    await sink.wait_deliveries(limit)
    while await app.store.outbox_listing([OutboxState.PENDING, OutboxState.SENDING]):
        await asyncio.sleep(0.02)
    assert len(sink.deliveries()) == limit
    audited = await app.store.audit_listing(action_prefix="discuss.reject_nonmember")
    assert [e.detail["notice"] for e in audited].count(False) == 3


async def test_unknown_recipient_refused_at_rcpt(app: App) -> None:
    replies = await raw_session(app.bound["lmtp"][1], [
        (b"LHLO test\r\n", 1), (b"MAIL FROM:<a@b.example>\r\n", 1),
        (b"RCPT TO:<nobody@lists.example.org>\r\n", 1)])
    assert replies[-1].startswith("550")


async def test_lmtp_one_reply_per_recipient(app: App) -> None:
    data = post(MEMBER).replace(b"\r\n.", b"\r\n..")
    replies = await raw_session(app.bound["lmtp"][1], [
        (b"LHLO test\r\n", 1), (f"MAIL FROM:<{MEMBER}>\r\n".encode(), 1),
        (f"RCPT TO:<{DISCUSS}>\r\n".encode(), 1),
        (b"RCPT TO:<discuss-request@lists.example.org>\r\n", 1),
        (b"DATA\r\n", 1), (data + b".\r\n", 2)])
    assert replies[-2].startswith("250") and replies[-1].startswith("250")
    rows = await app.store.inbound_listing(list(InboundState))
    assert sorted(r["role"] for r in rows) == ["post", "request"]


@pytest.mark.parametrize("payload", [
    b"Subject: x\r\n\r\nline\n.\nMAIL FROM:<evil@x>\r\n",   # bare LF smuggling
    b"Subject: x\r\n\r\nline\r.\rMAIL FROM:<evil@x>\r\n",   # bare CR smuggling
    b"Subject: x\r\n\r\nline\n.\r\nRCPT TO:<evil@x>\r\n",
    b"Subject: x\rBcc: evil@x\r\n\r\nbody\r\n",              # bare CR inside a header
])
async def test_bare_cr_or_lf_is_refused(app: App, payload: bytes) -> None:
    replies = await raw_session(app.bound["smtp"][1], [
        (b"EHLO test\r\n", 1), (f"MAIL FROM:<{MEMBER}>\r\n".encode(), 1),
        (f"RCPT TO:<{DISCUSS}>\r\n".encode(), 1), (b"DATA\r\n", 1),
        (payload + b".\r\n", 1)])
    assert replies[-1].startswith("550")
    assert await app.store.inbound_listing(list(InboundState)) == []


async def test_size_limit_answers_552_with_the_limit(app: App) -> None:
    big = post(MEMBER, body="x" * 998 + "\r\n") * 80
    replies = await raw_session(app.bound["lmtp"][1], [
        (b"LHLO test\r\n", 1), (f"MAIL FROM:<{MEMBER}>\r\n".encode(), 1),
        (f"RCPT TO:<{DISCUSS}>\r\n".encode(), 1), (b"DATA\r\n", 1), (big + b".\r\n", 1)])
    assert replies[-1].startswith("552") and str(app.cfg.max_message_bytes) in replies[-1]


async def test_store_failure_answers_451_and_keeps_nothing_half_done(app: App) -> None:
    async with app.store.unit() as tx:
        await tx.conn.exec_driver_sql("ALTER TABLE inbound RENAME TO inbound_away")
    replies = await raw_session(app.bound["lmtp"][1], [
        (b"LHLO test\r\n", 1), (f"MAIL FROM:<{MEMBER}>\r\n".encode(), 1),
        (f"RCPT TO:<{DISCUSS}>\r\n".encode(), 1), (b"DATA\r\n", 1),
        (post(MEMBER) + b".\r\n", 1)])
    assert replies[-1].startswith("451")
    async with app.store.unit() as tx:
        await tx.conn.exec_driver_sql("ALTER TABLE inbound_away RENAME TO inbound")
    assert await lmtp_send(app, MEMBER, [DISCUSS], post(MEMBER)) == {}


async def test_relay_451_then_250_delivers_exactly_once(app: App, sink: Sink,
                                                        clock: FakeClock) -> None:
    answers = iter(["451 4.3.0 try later"])
    sink.responder = lambda env: next(answers, None)
    await lmtp_send(app, MEMBER, [DISCUSS], post(MEMBER))
    await settle(app)

    async def deferred() -> bool:
        items = await app.store.outbox_listing([OutboxState.PENDING])
        return len(items) == len(MEMBERS) and all(i.attempts == 1 for i in items)

    while not await deferred():
        await asyncio.sleep(0.02)
    assert sink.received == []
    clock.advance(timedelta(minutes=5))
    app.outbound_waker.wake()
    await sink.wait_deliveries(len(MEMBERS))
    await outbox_in(app, OutboxState.SENT, len(MEMBERS))
    assert sink.recipients() == sorted(a for _, a in MEMBERS)
    assert sink.attempts == 2


async def test_relay_5xx_is_permanent_failure_with_reply(app: App, sink: Sink) -> None:
    sink.rcpt_responder = lambda rcpt: "550 5.1.1 no such user" if "vendor-b" in rcpt else None
    await lmtp_send(app, MEMBER, [DISCUSS], post(MEMBER))
    await sink.wait_deliveries(len(MEMBERS) - 1)
    (item,) = await outbox_in(app, OutboxState.FAILED)
    assert item.recipient == "psirt@vendor-b.example"
    assert item.last_reply is not None and item.last_reply.startswith("550")


@pytest.mark.parametrize("raw", [
    b"Subject: no from at all\r\n\r\nbody\r\n",
    b"From: Vendor A <security@vendor-a.example>\r\nContent-Type: multipart/mixed; "
    b"boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nunterminated\r\n",
    b"From: =?utf-8?b?////?= <\xff\xfe@vendor-a.example>\r\nSubject: \xe9\xff\r\n\r\nx\r\n",
    b"From: a@b.example, c@d.example\r\nSubject: two authors\r\n\r\nx\r\n",
    b"\r\n\r\n",
    b"From: <>\r\n\r\n",
])
async def test_malformed_messages_never_stop_the_worker(app: App, sink: Sink,
                                                        raw: bytes) -> None:
    await lmtp_send(app, "x@y.example", [DISCUSS], raw)
    await settle(app)
    await lmtp_send(app, MEMBER, [DISCUSS], post(MEMBER))
    await settle(app)
    await sink.wait_deliveries(len(MEMBERS))
    states = [r["state"] for r in await app.store.inbound_listing(list(InboundState))]
    assert states[-1] == "done"
    assert states[0] in ("done", "quarantined")


async def test_gate_refuses_embargoed_mail_to_nonmember_with_alert(app: App,
                                                                   sink: Sink) -> None:
    async with app.store.unit() as tx:
        await tx.enqueue(OutgoingMessage(
            Audience.EMBARGOED, "discuss-bounces@lists.example.org",
            ("security@vendor-a.example", "leak@press.example"), b"Subject: embargoed\r\n\r\nx",
            list_name="discuss"))
    app.outbound_waker.wake()
    await sink.wait_deliveries(1 + len(app.cfg.team_recipients))
    refused = await app.store.outbox_listing([OutboxState.REFUSED])
    assert [i.recipient for i in refused] == ["leak@press.example"]
    assert "leak@press.example" not in sink.recipients()
    alerts = [r for r in sink.received if b"[listbot alert]" in r.data]
    assert alerts and sorted(alerts[0].rcpts) == list(app.cfg.team_recipients)
    assert (await app.store.audit_listing(action_prefix="alert.gate-refused"))


async def test_gate_refuses_public_copy_before_its_instant(app: App, sink: Sink,
                                                          clock: FakeClock) -> None:
    instant = clock.now() + timedelta(hours=2)
    async with app.store.unit() as tx:
        ids = await tx.enqueue(OutgoingMessage(Audience.PUBLIC, "security@example.org",
                                               ("announce@lists.example.org",), b"x",
                                               not_before=instant))
        # Simulate a row that became claimable too early (clock skew, a bug elsewhere).
        await tx.conn.exec_driver_sql(
            f"UPDATE outbox SET next_attempt_at = created_at WHERE id = {ids[0]}")
    app.outbound_waker.wake()
    await sink.wait_deliveries(len(app.cfg.team_recipients))
    assert "announce@lists.example.org" not in sink.recipients()
    (refused,) = await app.store.outbox_listing([OutboxState.REFUSED])
    assert "before its embargo instant" in (refused.last_reply or "")


async def test_team_mail_never_leaves_the_team(app: App, sink: Sink) -> None:
    async with app.store.unit() as tx:
        await tx.enqueue(OutgoingMessage(Audience.TEAM, "security@example.org",
                                         ("alice@example.org", "mallory@evil.example"), b"x"))
    app.outbound_waker.wake()
    await sink.wait_deliveries(1 + len(app.cfg.team_recipients))
    assert "mallory@evil.example" not in sink.recipients()


async def test_sigterm_style_stop_finishes_in_flight_work(make_config: Callable[..., Settings],
                                                          sink: Sink, clock: FakeClock) -> None:
    application = App.create(make_config(sink=sink), clock=clock)
    await application.start()
    await add_members(application)
    await lmtp_send(application, MEMBER, [DISCUSS], post(MEMBER))
    await application.stop()
    restarted = App.create(make_config(sink=sink), clock=clock)
    await restarted.start()
    try:
        await sink.wait_deliveries(len(MEMBERS))
    finally:
        await restarted.stop()
    assert len(sink.deliveries()) == len(MEMBERS)


async def test_gate_facts_are_read_without_waiting_for_the_writer(app: App) -> None:
    # Each delivery batch loads the facts: a long write elsewhere must not stall mail.
    async with app.store.unit():
        facts = await asyncio.wait_for(app.gate.read(), 5)
    assert MEMBER in facts.members



async def test_member_removed_before_delivery_is_refused_and_the_team_alerted(
        app: App, sink: Sink, clock: FakeClock) -> None:
    leaver = "psirt@vendor-b.example"
    sink.rcpt_responder = lambda rcpt: "451 4.3.0 try later" if leaver in rcpt else None
    await lmtp_send(app, MEMBER, [DISCUSS], post(MEMBER))
    await sink.wait_deliveries(len(MEMBERS) - 1)
    await deferred_once(app, leaver)
    async with app.store.unit() as tx:
        await tx.remove_member(leaver, "left the programme")
    sink.rcpt_responder = None
    clock.advance(timedelta(hours=1))
    app.outbound_waker.wake()
    await sink.wait_deliveries(len(MEMBERS) - 1 + len(app.cfg.team_recipients))
    assert leaver not in sink.recipients()
    (refused,) = await app.store.outbox_listing([OutboxState.REFUSED])
    assert refused.recipient == leaver and "not a current member" in (refused.last_reply or "")
    alert = sink.received[-1]
    assert b"[listbot alert]" in alert.data
    assert sorted(alert.rcpts) == sorted(app.cfg.team_recipients)
    assert await app.store.audit_listing(action_prefix="alert.gate-refused")


async def _notice_and_post_in_one_batch(app: App, to: str) -> None:
    async with app.store.unit() as tx:
        await tx.enqueue(OutgoingMessage(Audience.NOTICE, "", (to,),
                                         b"Subject: notice\r\n\r\nx\r\n"))
        await tx.enqueue(OutgoingMessage(Audience.NOTICE, "", ("eve@example.net",),
                                         b"Subject: other\r\n\r\ny\r\n"))
    app.outbound_waker.wake()


async def test_an_internationalised_address_goes_out_with_smtputf8(app: App,
                                                                  sink: Sink) -> None:
    await _notice_and_post_in_one_batch(app, "jörg@exämple.net")
    await sink.wait_deliveries(2)
    assert sorted(sink.recipients()) == ["eve@example.net", "jörg@exämple.net"]
    await outbox_in(app, OutboxState.SENT, 2)


@pytest.fixture
def ascii_sink() -> Sink:
    return Sink(smtputf8=False)


async def test_an_internationalised_address_the_relay_cannot_take_fails_alone(
        make_config: Callable[..., Settings], ascii_sink: Sink, clock: FakeClock) -> None:
    await ascii_sink.start()
    try:
        async with running(make_config(sink=ascii_sink), clock) as application:
            await _notice_and_post_in_one_batch(application, "jörg@exämple.net")
            await ascii_sink.wait_deliveries(1)
            (item,) = await outbox_in(application, OutboxState.FAILED)
            assert item.recipient == "jörg@exämple.net"
            assert item.last_reply is not None and item.last_reply.startswith("553")
            # Its neighbour in the batch went out once and is recorded as sent.
            await outbox_in(application, OutboxState.SENT)
            assert ascii_sink.recipients() == ["eve@example.net"]
    finally:
        await ascii_sink.stop()


@pytest.mark.parametrize("bad", [
    "a b@example.net",  # aiosmtplib refuses it before the transaction
    "a\x01b@example.net",  # ...or only at its RCPT line, mid-transaction
    "a<b@example.net",  # ...or, its parser being lenient, sends "b@example.net"
])
async def test_an_address_smtp_cannot_carry_fails_alone(app: App, sink: Sink,
                                                        bad: str) -> None:
    # The rest of the transaction still goes out, once.
    async with app.store.unit() as tx:
        await tx.enqueue(OutgoingMessage(Audience.NOTICE, "", (bad, "eve@example.net"),
                                         b"Subject: notice\r\n\r\nx\r\n"))
    app.outbound_waker.wake()
    await sink.wait_deliveries(1)
    failed = await outbox_in(app, OutboxState.FAILED)
    assert [i.recipient for i in failed] == [bad]
    assert failed[0].last_reply is not None and failed[0].last_reply.startswith("553 5.1.3")
    await outbox_in(app, OutboxState.SENT)
    assert sink.recipients() == ["eve@example.net"]


async def test_only_a_security_commit_re_arms_the_case_reminders(app: App, sink: Sink) -> None:
    # A re-arm is a write transaction over every open case: discuss traffic skips it.
    assert app.reminders is not None
    await lmtp_send(app, MEMBER, [DISCUSS], post(MEMBER))
    await settle(app)
    assert app.reminders.rearming is None
    report = (b"From: Reporter <r@example.net>\r\nTo: security@example.org\r\n"
              b"Subject: overflow in the parser\r\nMessage-ID: <r1@example.net>\r\n\r\n"
              b"Details follow.\r\n")
    await lmtp_send(app, "r@example.net", ["security@example.org"], report)
    await settle(app)
    assert app.reminders.rearming is not None
    await app.reminders.rearming
