"""One way a discuss post goes out, whatever approved it (a rule or a moderator): the
original bytes with the list's headers, sealed per member when required, enqueued."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from listbot.core.config import Config, ListConfig
from listbot.core.mail.address import Mailbox
from listbot.core.mail.outbound import mailbox, new_message_id, rewrite
from listbot.core.mail.received import original_message_id
from listbot.core.mail.view import MessageView
from listbot.core.model import Audience, Member, OutgoingMessage
from listbot.core.store import Tx
from listbot.discuss.sealing import PostSealer, SealedPost, enqueue_sealed


def distribution_headers(lc: ListConfig, poster: Mailbox, hits: Sequence[str],
                         help_address: str) -> list[tuple[str, str]]:
    name = poster.display_name or poster.local
    help_target = f"<{lc.help_url}>" if lc.help_url else f"<mailto:{help_address}>"
    return [
        ("From", mailbox(f"{name} via {lc.display_name}", lc.address)),
        ("Reply-To", mailbox(poster.display_name, poster.addr_spec)),
        ("X-Original-From", poster.addr_spec),
        ("List-Id", f"{lc.display_name} <{lc.list_id}>"),
        ("List-Post", f"<mailto:{lc.address}>"),
        ("List-Help", help_target),
        ("Precedence", "list"),
        ("X-Loop", lc.address),
        ("X-Listbot-Rule-Hits", ", ".join(hits) or "none"),
    ]


def distribution(cfg: Config, lc: ListConfig, raw: bytes, *, poster: Mailbox,
                 hits: Sequence[str], recipients: Sequence[str]) -> OutgoingMessage:
    """The post as distributed: original bytes, our headers prepended
    (docs/design.md "Forward bytes")."""
    return OutgoingMessage(
        audience=Audience.EMBARGOED, envelope_from=f"{lc.local_part}-bounces@{lc.domain}",
        recipients=tuple(recipients),
        raw=rewrite(raw, distribution_headers(lc, poster, hits, cfg.team_address)),
        list_name=lc.name, reason="discuss.post")


@dataclass(frozen=True)
class Distribution:
    """A post ready to go to the members: built, and sealed when the list requires it."""

    out: OutgoingMessage
    sealed: SealedPost | None

    @property
    def recipients(self) -> int:
        return len(self.out.recipients)

    async def enqueue(self, tx: Tx, cfg: Config, subject: str) -> None:
        """The copies into the outbox; `subject` names the post in the held-copy alert."""
        if self.sealed is None:
            await tx.enqueue(self.out)
        else:
            await enqueue_sealed(tx, cfg, self.out, self.sealed, subject)


async def prepare_distribution(cfg: Config, lc: ListConfig, post: MessageView, *,
                               poster: Mailbox, hits: Sequence[str], members: Sequence[Member],
                               sealer: PostSealer | None, now: datetime) -> Distribution:
    """The post (as parsed once: `Inbound.view`) as every member gets it. Slow when
    sealed (gpg per member): the rule path runs it before its transaction, the moderator
    path inside the deciding one."""
    out = distribution(cfg, lc, post.raw, poster=poster, hits=hits,
                       recipients=sorted(m.address for m in members))
    if sealer is None:
        return Distribution(out, None)
    mid = original_message_id(post.header_message) or new_message_id(lc.domain)
    return Distribution(out, await sealer.seal(out, members, lc, mid, now))


async def distribute(tx: Tx, cfg: Config, lc: ListConfig, post: MessageView, *,
                     poster: Mailbox, hits: Sequence[str], sealer: PostSealer | None,
                     subject: str) -> Distribution:
    """Build, seal when required and enqueue, to the members of `tx`'s roster."""
    prepared = await prepare_distribution(cfg, lc, post, poster=poster, hits=hits,
                                          members=await tx.members(), sealer=sealer,
                                          now=tx.now)
    await prepared.enqueue(tx, cfg, subject)
    return prepared
