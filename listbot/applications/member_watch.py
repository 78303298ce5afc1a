"""The daemon's watch over the member roster: keeps the public roster files current,
feeds permanent relay refusals into the delivery record, warns the team before a
member key expires (each warning once per key and expiry date)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from listbot.applications.bounces import scan_outbox_failures
from listbot.applications.config import MembersConfig
from listbot.applications.roster import public_roster, write_all
from listbot.core.clock import Clock
from listbot.core.config import Config
from listbot.core.mail.pgp import Keyring
from listbot.core.mail.pgp_keys import KeyInfo, normalise_fingerprint
from listbot.core.outbox.alerts import raise_alert
from listbot.core.store import Store
from listbot.core.store import cases as case_store
from listbot.core.store import roster as roster_ops
from listbot.core.waker import Waker

log = structlog.get_logger("listbot.members")


@dataclass(frozen=True)
class KeyWarning:
    fingerprint: str
    expires_at: datetime
    text: str


def key_warning(info: KeyInfo, now: datetime, window: timedelta) -> KeyWarning | None:
    """A warning when the key expires within the window (or already has)."""
    if info.expires is None or not info.expires_within(now, window):
        return None
    verb = "expired" if info.expires <= now else "expires"
    return KeyWarning(info.fingerprint, info.expires,
                      f"{verb} on {info.expires:%Y-%m-%d %H:%M} UTC")


@dataclass(frozen=True)
class KeyHolder:
    """A member or a case party whose key the team relies on."""

    name: str
    fingerprint: str
    alert: str
    detail: dict[str, str]
    hint: str


class MemberWatch:
    def __init__(self, *, cfg: Config, mc: MembersConfig, store: Store, clock: Clock,
                 keyring: Keyring | None, warning_window: timedelta) -> None:
        self.cfg, self.mc, self.store, self.clock = cfg, mc, store, clock
        self.keyring, self.warning_window = keyring, warning_window
        self.written: tuple[int, int, int] | None = None
        self.next_key_check: datetime | None = None

    async def dispatch(self, now: datetime) -> None:
        await self.write_roster()
        async with self.store.unit() as tx:
            await scan_outbox_failures(tx, self.cfg, self.mc)
        if self.next_key_check is None or now >= self.next_key_check:
            await self.check_keys(now)
            self.next_key_check = now + timedelta(hours=self.mc.key_check_hours)

    async def write_roster(self) -> bool:
        """Rewrite the public roster files when the roster changed since the last write."""
        if self.mc.roster_dir is None:
            return False
        async with self.store.read() as tx:
            version = await roster_ops.version(tx)
            if version == self.written:
                return False
            current, changes = await roster_ops.load_public(tx)
        roster = public_roster(self.cfg.project_name, current, changes)
        await asyncio.to_thread(write_all, roster, self.mc.roster_dir)
        self.written = version
        log.info("roster.written", directory=str(self.mc.roster_dir), members=len(current))
        return True

    async def check_keys(self, now: datetime) -> int:
        """Warn the team about member and case-party keys expiring within the window;
        returns how many warnings were sent now (each key and expiry date once)."""
        if self.keyring is None:
            return 0
        sent = 0
        holders = await self._key_holders()
        infos = await self.keyring.keys_info([h.fingerprint for h in holders])  # one listing
        for holder in holders:
            info = infos.get(normalise_fingerprint(holder.fingerprint))
            if info is None:
                log.warning("members.key_missing", holder=holder.name)
                continue
            warning = key_warning(info, now, self.warning_window)
            if warning is not None and await self._warn(holder, warning):
                sent += 1
        return sent

    async def _key_holders(self) -> list[KeyHolder]:
        async with self.store.read() as tx:
            members = await tx.members()
            parties = await case_store.keyed_parties(tx)
        return [*(KeyHolder(m.name, m.fingerprint, "member_key_expiring", {"member": m.name},
                            "listbot members set-key NAME --file KEY.asc")
                  for m in members if m.fingerprint),
                *(KeyHolder(f"{p.address} (party of {p.case_id})", p.fingerprint,
                            "party_key_expiring", {"party": p.address, "case": p.case_id},
                            f"listbot case set-party-key {p.case_id} {p.address} --file KEY.asc")
                  for p in parties if p.fingerprint)]

    async def _warn(self, holder: KeyHolder, warning: KeyWarning) -> bool:
        async with self.store.unit() as tx:
            if not await roster_ops.warn_once(tx, fingerprint=warning.fingerprint,
                                              expires_at=warning.expires_at,
                                              member_name=holder.name, now=tx.now):
                return False
            await raise_alert(tx, self.cfg, holder.alert,
                              f"the key of {holder.name} {warning.text}",
                              {**holder.detail, "fingerprint": warning.fingerprint,
                               "hint": holder.hint})
        return True

    async def run(self, stopping: asyncio.Event, waker: Waker) -> None:
        while not stopping.is_set():
            try:
                await self.dispatch(self.clock.now())
            except Exception as exc:  # the database may be down: keep watching
                log.error("members.watch_failed", error=type(exc).__name__)
            await waker.wait(self.cfg.poll_interval_seconds, stopping)
