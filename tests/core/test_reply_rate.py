"""The automatic-reply limit counts one address once, however a handler spelled it."""

from __future__ import annotations

from collections.abc import Callable

from listbot.core.model import Audience, OutgoingMessage
from listbot.core.outbox.reply_rate import spellings, within_reply_rate
from listbot.core.store import Store
from listbot.settings import Settings


def test_spellings_cover_case_and_both_idn_forms() -> None:
    assert spellings("User@Bücher.example") == {
        "User@Bücher.example", "user@bücher.example", "user@xn--bcher-kva.example"}
    assert spellings("user@xn--bcher-kva.example") == {
        "user@xn--bcher-kva.example", "user@bücher.example"}
    assert spellings("not-an-address") == {"not-an-address"}


async def test_notices_under_either_idn_spelling_share_one_limit(
        store: Store, make_config: Callable[..., Settings]) -> None:
    cfg = make_config({"worker": {"reply_rate_per_hour": 3}}).core
    # Discuss answers the envelope sender as the MTA gave it, lower-cased (U-label);
    # moderation answers the parsed From, normalised (A-label).
    for to in ("user@bücher.example", "user@bücher.example", "user@xn--bcher-kva.example"):
        async with store.unit() as tx:
            assert await within_reply_rate(tx, cfg, to)
            await tx.enqueue(OutgoingMessage(Audience.NOTICE, "", (to,), b"Subject: n\r\n\r\n"))
    async with store.unit() as tx:
        assert not await within_reply_rate(tx, cfg, "User@Bücher.example")
        assert not await within_reply_rate(tx, cfg, "user@xn--bcher-kva.example")
        assert await within_reply_rate(tx, cfg, "other@bücher.example")
