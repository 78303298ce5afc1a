"""Recipient address -> (list, role, detail). Pure; unknown addresses are refused at RCPT."""

from __future__ import annotations

from collections.abc import Iterable

from listbot.core.config import ListConfig
from listbot.core.mail.address import normalize_address
from listbot.core.model import RecipientRole, Route

# Suffixes of a list's local part and what they are for. Subscription-style
# addresses are accepted so that requests can be logged, but they change nothing.
# "-moderation" is where decision replies went before the list's own decisions
# address (ListConfig.decisions_local) was short; requests sent then still get answers.
ROLE_SUFFIXES: dict[str, RecipientRole] = {
    "": RecipientRole.POST,
    "-moderation": RecipientRole.MODERATION,
    "-bounces": RecipientRole.BOUNCES,
    "-request": RecipientRole.REQUEST,
    "-join": RecipientRole.REQUEST,
    "-subscribe": RecipientRole.REQUEST,
}


class Router:
    def __init__(self, lists: Iterable[ListConfig]) -> None:
        self._table: dict[str, tuple[str, RecipientRole]] = {}
        for lc in lists:
            for suffix, role in ROLE_SUFFIXES.items():
                self._table[f"{lc.local_part}{suffix}@{lc.domain}".lower()] = (lc.name, role)
            self._table[f"{lc.decisions_local}@{lc.domain}".lower()] = (
                lc.name, RecipientRole.MODERATION)

    def route(self, address: str) -> Route | None:
        try:
            normalized = normalize_address(address)
        except ValueError:
            return None
        local, _, domain = normalized.rpartition("@")
        base, plus, detail = local.partition("+")
        hit = self._table.get(f"{base}@{domain}")
        if hit is None:
            return None
        return Route(hit[0], hit[1], detail if plus and detail else None)

    def addresses(self) -> list[str]:
        return sorted(self._table)
