"""The daemon's watch over the member roster: keeps the public roster files current,
feeds permanent relay refusals into the delivery record, warns the team before a
member key expires (each warning once per key and expiry date)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from listbot.alerts import raise_alert
from listbot.applications_config import MembersConfig
from listbot.bounces import scan_outbox_failures
from listbot.clock import Clock
from listbot.config import Config
from listbot.pgp import KeyInfo, Keyring
from listbot.roster import public_roster, write_all
from listbot.store import Store
from listbot.store import roster as roster_ops
from listbot.waker import Waker

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
            version = await roster_ops.version(tx.conn)
            if version == self.written:
                return False
            current, changes = await roster_ops.load_public(tx.conn)
        roster = public_roster(self.cfg.project_name, current, changes)
        await asyncio.to_thread(write_all, roster, self.mc.roster_dir)
        self.written = version
        log.info("roster.written", directory=str(self.mc.roster_dir), members=len(current))
        return True

    async def check_keys(self, now: datetime) -> int:
        """Warn the team about member keys expiring within the window; returns how many
        warnings were sent now (each key and expiry date is warned about once)."""
        if self.keyring is None:
            return 0
        sent = 0
        for member in await self.store.members():
            if member.fingerprint is None:
                continue
            info = await self.keyring.key_info(member.fingerprint)
            if info is None:
                log.warning("members.key_missing", member=member.name)
                continue
            warning = key_warning(info, now, self.warning_window)
            if warning is None:
                continue
            async with self.store.unit() as tx:
                if not await roster_ops.warn_once(tx.conn, fingerprint=warning.fingerprint,
                                                  expires_at=warning.expires_at,
                                                  member_name=member.name, now=tx.now):
                    continue
                await raise_alert(tx, self.cfg, "member_key_expiring",
                                  f"the key of {member.name} {warning.text}",
                                  {"member": member.name, "fingerprint": warning.fingerprint,
                                   "hint": "listbot members set-key NAME --file KEY.asc"})
                sent += 1
        return sent

    async def run(self, stopping: asyncio.Event, waker: Waker) -> None:
        while not stopping.is_set():
            try:
                await self.dispatch(self.clock.now())
            except Exception as exc:  # the database may be down: keep watching
                log.error("members.watch_failed", error=type(exc).__name__)
            await waker.wait(self.cfg.poll_interval_seconds, stopping)
