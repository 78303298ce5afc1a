"""One way a discuss post goes out: the original bytes with the list's headers."""

from __future__ import annotations

from collections.abc import Sequence

from listbot.core.config import Config, ListConfig
from listbot.core.mail.address import Mailbox
from listbot.core.mail.outbound import mailbox, rewrite
from listbot.core.model import Audience, OutgoingMessage


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
