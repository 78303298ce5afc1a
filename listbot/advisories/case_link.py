"""An advisory's case: that it exists, and who besides the members gets its embargoed copies.

The reporter and the outside parties added to the case receive the pre-disclosure
copies too; the outbox rows carry the case id, which is what lets the audience
gate pass them (docs/design.md "The audience gate") — and only while they are
parties of that case.
"""

from __future__ import annotations

from collections.abc import Sequence

from listbot.core.model import Member
from listbot.core.store import Store, Tx
from listbot.core.store.cases import find_case, parties


async def case_exists(tx: Tx, case_id: str) -> bool:
    """The case check of `advisory create --case`: the case is in the cases table."""
    return await find_case(tx, case_id) is not None


async def case_audience(store: Store, case_id: str | None,
                        members: Sequence[Member]) -> list[Member]:
    """Members, then the case's reporter and current parties who are not members already.

    Parties are not members: they appear here as Member values with id 0, with the
    reporter's and each party's own key, so the same sealing (encrypt, or hold under
    require_encryption) applies to them.
    """
    if case_id is None:
        return list(members)
    async with store.unit() as tx:
        case = await find_case(tx, case_id)
        current = await parties(tx, case_id) if case is not None else []
    if case is None:
        return list(members)
    seen = {m.address for m in members}
    extra: list[Member] = []
    for address, name, fpr in [(case.reporter, "reporter", case.reporter_fingerprint),
                               *((p.address, p.name, p.fingerprint) for p in current)]:
        if address not in seen:
            seen.add(address)
            extra.append(Member(0, name, address, fpr, case.opened_at))
    return [*members, *extra]
