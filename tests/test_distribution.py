"""A discuss post goes out the same way whatever approved it: a rule or a moderator."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from email import message_from_bytes
from typing import Any, cast

from listbot.app import App
from listbot.core.clock import FakeClock
from listbot.core.config import Config
from listbot.core.mail.safe import Mailbox
from listbot.core.model import Inbound, Member, OutgoingMessage, RecipientRole, Route
from listbot.core.store import Arrival, Tx
from listbot.discuss.handler import DiscussHandler
from listbot.moderation.classify import Verdict
from listbot.moderation.rules import Action, Role
from tests.daemon import post

DISCUSS = "discuss@lists.example.org"
POSTER = "security@vendor-a.example"
MEMBERS = (("Vendor A", POSTER), ("Vendor B", "psirt@vendor-b.example"))


class Recorded:
    """The transaction, with what was enqueued in it kept aside to be read."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx
        self.sent: list[OutgoingMessage] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tx, name)

    async def enqueue(self, out: OutgoingMessage) -> list[int]:
        self.sent.append(out)
        ids: list[int] = await self.tx.enqueue(out)
        return ids


class Approving(DiscussHandler):
    """The rule path with a rule that approves: the verdict is all it changes."""

    async def verdict(self, msg: Inbound, sender: Mailbox, role: Role,
                      members: Mapping[str, Member]) -> Verdict:
        return Verdict(Action.APPROVE, "ok", "approved by rule", None, ("signed",))


def headers(out: list[OutgoingMessage]) -> list[tuple[str, str]]:
    [distributed] = [o for o in out if o.reason == "discuss.post"]
    return list(message_from_bytes(distributed.raw).items())


async def test_a_rule_and_a_moderator_approval_send_the_same_headers(
        make_config: Callable[..., Config], clock: FakeClock) -> None:
    cfg = make_config()
    app = App.create(cfg, clock=clock)
    await app.store.upgrade()
    try:
        async with app.store.unit() as tx:
            for name, address in MEMBERS:
                await tx.add_member(name, address, None)
        raw = post(f"Vendor A <{POSTER}>", subject="Re: [XSA-465] the same post")
        route = Route("discuss", RecipientRole.POST, None)
        await app.store.store_arrivals([Arrival("lmtp", POSTER, DISCUSS, route, raw)] * 2)
        by_rule, by_moderator = await app.store.claim_inbound("t", timedelta(minutes=1), 2)
        lc = cfg.lists["discuss"]
        rules = Approving(cfg=cfg, lc=lc, store=app.store, clock=clock, keyring=app.keyring)
        moderation = app.moderations["discuss"]

        effects = await rules.decide(by_rule)
        async with app.store.unit() as tx:
            ruled = Recorded(tx)
            await effects.apply(cast(Tx, ruled))

        held = await moderation.hold(by_moderator, POSTER, Verdict(
            Action.HOLD, "ok", "held by rule", None, ("signed",)))
        async with app.store.unit() as tx:
            await held.apply(tx)
        async with app.store.unit() as tx:
            moderated = Recorded(tx)
            await moderation.decide_now(cast(Tx, moderated), by_moderator.id,
                                        decider="alice@example.org", verb="approve",
                                        reason="", via="test")

        assert headers(ruled.sent) == headers(moderated.sent)
        assert dict(headers(ruled.sent))["X-Listbot-Rule-Hits"] == "signed"
        [out] = [o for o in moderated.sent if o.reason == "discuss.post"]
        assert sorted(out.recipients) == sorted(a for _, a in MEMBERS)
    finally:
        await app.store.close()
