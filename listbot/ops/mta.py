"""Postfix maps for every address listbot answers, as `mailman aliases` writes them.

Pure: the CLI writes the text and runs postmap. Postfix looks an address up in the
transport map to hand it to listbot over LMTP, in the same map (used as
relay_recipient_maps) to refuse unknown recipients itself, and in the domains map
to know which domains are relayed to listbot at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from listbot.core.config import Config, Endpoint
from listbot.core.routing import Router

TRANSPORT_FILE = "postfix_lmtp"
DOMAINS_FILE = "postfix_domains"


@dataclass(frozen=True)
class PostfixMaps:
    nexthop: str
    addresses: tuple[str, ...]
    domains: tuple[str, ...]

    def transport_text(self) -> str:
        width = max((len(a) for a in self.addresses), default=0) + 1
        lines = [f"{a.ljust(width)}{self.nexthop}" for a in self.addresses]
        return _with_header(lines)

    def domains_text(self) -> str:
        return _with_header([f"{d} {d}" for d in self.domains])


def _with_header(lines: list[str]) -> str:
    header = "# Written by `listbot aliases`; edit the listbot config, not this file.\n"
    return header + "".join(f"{line}\n" for line in lines)


def lmtp_nexthop(endpoint: Endpoint) -> str:
    # A wildcard listener is reached over loopback; brackets stop Postfix doing MX lookups.
    host = "127.0.0.1" if endpoint.host in ("", "0.0.0.0") else endpoint.host  # noqa: S104
    host = "::1" if host == "::" else host
    return f"lmtp:[{host}]:{endpoint.port}"


def postfix_maps(cfg: Config, lmtp: Endpoint | None = None) -> PostfixMaps:
    endpoint = lmtp or cfg.lmtp
    if endpoint is None:
        raise ValueError("listen.lmtp is disabled: Postfix needs the LMTP listener")
    addresses = tuple(Router(cfg.lists.values()).addresses())
    domains = tuple(sorted({a.rpartition("@")[2] for a in addresses}))
    return PostfixMaps(lmtp_nexthop(endpoint), addresses, domains)


def main_cf_lines(directory: str) -> list[str]:
    """The main.cf settings that wire the maps in (shown by `listbot aliases`)."""
    return [
        "recipient_delimiter = +",
        "owner_request_special = no",
        f"transport_maps = hash:{directory}/{TRANSPORT_FILE}",
        f"relay_domains = hash:{directory}/{DOMAINS_FILE}",
        f"relay_recipient_maps = hash:{directory}/{TRANSPORT_FILE}",
    ]
