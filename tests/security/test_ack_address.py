"""The security@ acknowledgement goes to the envelope sender only (RFC 3834): a forged
From is recorded as the case's reporter, but nothing automatic is aimed at it."""

from __future__ import annotations

from collections.abc import Callable

from listbot.core.clock import FakeClock
from listbot.core.model import OutboxState
from listbot.core.store import cases as case_store
from listbot.settings import Settings
from tests.daemon import lmtp_send, running, settle
from tests.security.test_cases import CASE1, SECURITY, message, to
from tests.sink import Sink

TEAM = ["alice@example.org", "bob@example.org"]
FORGED_FROM = "victim@innocent.example"
ENVELOPE = "reporter@example.net"


async def test_forged_from_the_ack_goes_to_the_envelope_sender_only(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock) -> None:
    async with running(make_config(sink=sink), clock, members=()) as app:
        data = message(f"Victim <{FORGED_FROM}>", "Heap overflow", "<f1@example.net>",
                       b"The parser overflows.\r\n")
        assert await lmtp_send(app, ENVELOPE, [SECURITY], data) == {}
        await sink.wait_deliveries(1 + len(TEAM))
        await settle(app)
        items = await app.store.outbox_listing(list(OutboxState))
        assert sorted(i.recipient for i in items) == sorted([ENVELOPE, *TEAM])
        assert to(sink, FORGED_FROM) == []
        [ack] = to(sink, ENVELOPE)
        assert ack.message["To"] == ENVELOPE
        assert FORGED_FROM.encode() not in ack.data  # it says nothing to the From
        assert ack.message["Auto-Submitted"] == "auto-replied"
        # The case's reporter stays the From, as the team writes to it later.
        async with app.store.unit() as tx:
            case = await case_store.find_case(tx, CASE1)
        assert case is not None and case.reporter == FORGED_FROM
        # The team sees both addresses.
        for member in TEAM:
            [copy] = to(sink, member)
            assert copy.message["X-Original-From"] == FORGED_FROM
            assert copy.message["X-Listbot-Envelope-Sender"] == ENVELOPE


async def test_same_from_and_envelope_team_copy_has_no_envelope_line(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock) -> None:
    async with running(make_config(sink=sink), clock, members=()) as app:
        # A forged envelope line in the report itself is dropped, never shown as ours.
        data = message(f"Reporter <{ENVELOPE}>", "Heap overflow", "<f2@example.net>",
                       b"The parser overflows.\r\n",
                       extra="X-Listbot-Envelope-Sender: someone@else.example\r\n")
        assert await lmtp_send(app, ENVELOPE, [SECURITY], data) == {}
        await sink.wait_deliveries(1 + len(TEAM))
        assert len(to(sink, ENVELOPE)) == 1
        for member in TEAM:
            [copy] = to(sink, member)
            assert copy.message["X-Listbot-Envelope-Sender"] is None


async def test_null_sender_with_a_from_gets_nothing(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock) -> None:
    async with running(make_config(sink=sink), clock, members=()) as app:
        data = message(f"Victim <{FORGED_FROM}>", "Heap overflow", "<f3@example.net>",
                       b"The parser overflows.\r\n")
        assert await lmtp_send(app, "", [SECURITY], data) == {}
        await sink.wait_deliveries(len(TEAM))
        await settle(app)
        items = await app.store.outbox_listing(list(OutboxState))
        assert sorted(i.recipient for i in items) == TEAM
        [entry] = await app.store.audit_listing(action_prefix="case.report")
        assert entry.detail["acknowledged"] is False
