"""The audience gate (docs/design.md "The audience gate"): a pure decision, checked by
the delivery worker just before any message is handed to the relay."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from listbot.core.model import Audience, OutboxItem
from listbot.core.store import Store
from listbot.core.store.advisories import release_instants
from listbot.core.store.cases import case_parties


@dataclass(frozen=True)
class GateFacts:
    members: frozenset[str]
    team: frozenset[str]
    # Outside parties added to a case may receive that case's embargoed mail only.
    case_parties: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Advisory ("XSA-465") -> its embargo instant once released, None while not released.
    # None as a whole: not loaded (unit tests); the daemon always loads it.
    releases: Mapping[str, datetime | None] | None = None


class GateFactsReader:
    """The gate's facts as the store has them now, under the team and advisory prefix
    of the running config (`use` swaps them in on a reload)."""

    def __init__(self, store: Store, *, team: frozenset[str], advisory_prefix: str) -> None:
        self.store = store
        self.use(team=team, advisory_prefix=advisory_prefix)

    def use(self, *, team: frozenset[str], advisory_prefix: str) -> None:
        self.team, self.advisory_prefix = team, advisory_prefix

    async def read(self) -> GateFacts:
        # A read: every delivery batch loads these, and must not queue behind writers.
        async with self.store.read() as tx:
            members = frozenset(m.address for m in await tx.members())
            parties = await case_parties(tx)
            released = await release_instants(tx)
        prefix = self.advisory_prefix
        return GateFacts(members=members, team=self.team, case_parties=parties,
                         releases={f"{prefix}-{n}": at for n, at in released.items()})


def advisory_of(dedupe_key: str | None) -> str | None:
    """The advisory a row belongs to, from its dedupe key "adv:XSA-465:v1:..."."""
    if not dedupe_key or not dedupe_key.startswith("adv:"):
        return None
    return dedupe_key.split(":", 2)[1]


def _embargoed(item: OutboxItem, rcpt: str, facts: GateFacts, now: datetime) -> str | None:
    parties = facts.case_parties.get(item.case_id, frozenset()) if item.case_id else frozenset()
    if rcpt in facts.members or rcpt in facts.team or rcpt in parties:
        return None
    return "embargoed mail to an address that is not a current member, the team or a party"


def _team(item: OutboxItem, rcpt: str, facts: GateFacts, now: datetime) -> str | None:
    return None if rcpt in facts.team else "team mail to an address outside the team"


def _public(item: OutboxItem, rcpt: str, facts: GateFacts, now: datetime) -> str | None:
    if item.not_before is not None and now < item.not_before:
        return f"public copy before its embargo instant {item.not_before.isoformat()}"
    adv = advisory_of(item.dedupe_key)
    if adv is None or facts.releases is None:
        return None
    # Rows built ahead of the instant carry the instant they were built for: they may
    # go only once the advisory is released AT THAT instant (a moved instant strands them).
    released_at = facts.releases.get(adv)
    if released_at is None:
        return f"public copy of {adv}, which is not released"
    if item.not_before is not None and item.not_before != released_at:
        return (f"public copy of {adv} built for {item.not_before.isoformat()}, "
                f"but it was released for {released_at.isoformat()}")
    return None


def _notice(item: OutboxItem, rcpt: str, facts: GateFacts, now: datetime) -> str | None:
    return None


_CHECKS = {Audience.EMBARGOED: _embargoed, Audience.TEAM: _team, Audience.PUBLIC: _public,
           Audience.NOTICE: _notice}


def refusal(item: OutboxItem, facts: GateFacts, now: datetime) -> str | None:
    """The reason this item must not be sent, or None when it may go."""
    return _CHECKS[item.audience](item, item.recipient.lower(), facts, now)
