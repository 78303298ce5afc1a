"""Discuss rejection notices go to the envelope sender only (RFC 3834), never to a From
that differs from it, never to the null sender."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from listbot.app import App
from listbot.core.clock import FakeClock
from listbot.core.model import OutboxItem, OutboxState
from listbot.core.store import moderation as held_ops
from listbot.settings import Settings
from tests import pgp_fixtures
from tests.daemon import MEMBERS, lmtp_send, post, running, settle
from tests.moderation_helpers import ALICE, DISCUSS, MEMBER, moderation_config
from tests.pgp_fixtures import PgpKeys
from tests.sink import Sink

pgp_template = pgp_fixtures.pgp_template
pgp_keys = pgp_fixtures.pgp_keys
pgp_home = pgp_fixtures.pgp_home

FORGED_FROM = "victim@innocent.example"
ENVELOPE = "sender@origin.example"
OTHER_MEMBER = MEMBERS[1][1]


@pytest.fixture
async def app(make_config: Callable[..., Settings], sink: Sink, clock: FakeClock,
              pgp_home: Path, pgp_keys: PgpKeys) -> AsyncIterator[App]:
    cfg = make_config(moderation_config(pgp_home, pgp_keys), sink=sink)
    async with running(cfg, clock) as application:
        yield application


async def notices(app: App) -> list[OutboxItem]:
    """Every automatic reply queued (they go with the null envelope sender)."""
    return [i for i in await app.store.outbox_listing(list(OutboxState))
            if i.envelope_from == ""]


async def test_nonmember_notice_goes_to_the_envelope_sender_not_the_from(app: App) -> None:
    assert await lmtp_send(app, ENVELOPE, [DISCUSS], post(f"Victim <{FORGED_FROM}>")) == {}
    await settle(app)
    assert [i.recipient for i in await notices(app)] == [ENVELOPE]


async def test_nonmember_post_from_the_null_sender_gets_nothing(app: App) -> None:
    assert await lmtp_send(app, "", [DISCUSS], post(f"Victim <{FORGED_FROM}>")) == {}
    await settle(app)
    assert await notices(app) == []


async def test_held_post_rejection_goes_to_the_envelope_sender_not_the_from(app: App) -> None:
    # The From is one member's role address, the envelope another's: the notice (which
    # quotes the subject, so only the embargo audience may get it) goes to the envelope.
    data = post(f"Vendor A <{MEMBER}>", subject="Question on the embargo",
                body="What do you all think?\r\n")
    assert await lmtp_send(app, OTHER_MEMBER, [DISCUSS], data) == {}
    await settle(app)
    async with app.store.read() as tx:
        (held,) = await held_ops.listing(tx, ["held"])
    async with app.store.unit() as tx:
        await app.moderations["discuss"].decide_now(tx, held.id, decider=ALICE,
                                                    verb="reject", reason="policy",
                                                    via="shell")
    assert [i.recipient for i in await notices(app)] == [OTHER_MEMBER]
