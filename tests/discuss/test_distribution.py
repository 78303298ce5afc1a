"""A discuss post goes out the same way whatever approved it: a rule or a moderator."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any, cast

from listbot.app import App
from listbot.core.clock import FakeClock
from listbot.core.mail.address import Mailbox
from listbot.core.model import Inbound, Member, OutgoingMessage, RecipientRole, Route
from listbot.core.store import Arrival, Tx
from listbot.discuss.handler import DiscussHandler
from listbot.moderation.classify import Verdict
from listbot.moderation.rules import Action, Role
from listbot.settings import Settings
from tests import pgp_fixtures
from tests.daemon import post
from tests.pgp_fixtures import PgpKeys, gpg

DISCUSS = "discuss@lists.example.org"
POSTER = "security@vendor-a.example"
OTHER, UNKEYED = "psirt@vendor-b.example", "secalert@vendor-c.example"
MEMBERS = (("Vendor A", POSTER), ("Vendor B", OTHER))

pgp_template = pgp_fixtures.pgp_template
pgp_keys = pgp_fixtures.pgp_keys
pgp_home = pgp_fixtures.pgp_home


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


async def approve_both(app: App, clock: FakeClock, members: Sequence[tuple[str, str, str | None]],
                       ) -> tuple[list[OutgoingMessage], list[OutgoingMessage]]:
    """The same post twice: approved by a rule, and held then approved by a moderator;
    what each approval enqueued."""
    async with app.store.unit() as tx:
        for name, address, fingerprint in members:
            await tx.add_member(name, address, fingerprint)
    raw = post(f"Vendor A <{POSTER}>", subject="Re: [XSA-465] the same post")
    route = Route("discuss", RecipientRole.POST, None)
    await app.store.store_arrivals([Arrival("lmtp", POSTER, DISCUSS, route, raw)] * 2)
    by_rule, by_moderator = await app.store.claim_inbound("t", timedelta(minutes=1), 2)
    rules = Approving(cfg=app.cfg, lc=app.cfg.lists["discuss"], pgp=app.settings.pgp,
                      store=app.store, clock=clock, keyring=app.keyring)
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
                                    decider="alice@example.org", verb="approve", reason="",
                                    via="test")
    return ruled.sent, moderated.sent


async def test_a_rule_and_a_moderator_approval_send_the_same_headers(
        make_config: Callable[..., Settings], clock: FakeClock) -> None:
    app = App.create(make_config(), clock=clock)
    await app.store.upgrade()
    try:
        ruled, moderated = await approve_both(app, clock, [(n, a, None) for n, a in MEMBERS])
        assert headers(ruled) == headers(moderated)
        assert dict(headers(ruled))["X-Listbot-Rule-Hits"] == "signed"
        [out] = [o for o in moderated if o.reason == "discuss.post"]
        assert sorted(out.recipients) == sorted(a for _, a in MEMBERS)
    finally:
        await app.store.close()


def sealed_headers(home: Path, out: list[OutgoingMessage]) -> dict[str, Any]:
    """Per recipient: the outer headers (less the MIME boundary) and the sealed post's."""
    found: dict[str, Any] = {}
    for o in out:
        if o.reason != "discuss.post":
            continue
        outer = message_from_bytes(o.raw)
        parts = outer.get_payload()
        assert isinstance(parts, list)
        armored = parts[1].get_payload(decode=True)
        assert isinstance(armored, bytes)
        inner = message_from_bytes(gpg(home, "--decrypt", data=armored).stdout)
        sealed = inner.get_payload()
        assert isinstance(sealed, list)
        found[o.recipients[0]] = ([(k, v) for k, v in outer.items() if k != "Content-Type"],
                                  list(sealed[0].items()))
    return found


async def test_sealed_copies_carry_the_same_headers_whatever_approved_the_post(
        make_config: Callable[..., Settings], clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    app = App.create(make_config({"pgp": {"home": str(pgp_home),
                                          "team_fingerprint": pgp_keys.team,
                                          "require_encryption": True},
                                  # moderators are asked by encrypted mail: Alice has a key
                                  "team": {"members": [
                                      {"name": "Alice", "address": "alice@example.org",
                                       "fingerprint": pgp_keys.moderator}]}}), clock=clock)
    await app.store.upgrade()
    try:
        ruled, moderated = await approve_both(app, clock, [
            ("Vendor A", POSTER, pgp_keys.member), ("Vendor B", OTHER, pgp_keys.reporter),
            ("Vendor C", UNKEYED, None)])
        by_rule = sealed_headers(pgp_home, ruled)
        assert sorted(by_rule) == sorted([POSTER, OTHER])
        assert by_rule == sealed_headers(pgp_home, moderated)
        for out in (ruled, moderated):  # the unkeyed member's copy is held, empty
            [held] = [o for o in out if o.reason == "discuss.post.held"]
            assert held.recipients == (UNKEYED,) and held.raw == b""
    finally:
        await app.store.close()
