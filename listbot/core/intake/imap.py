"""IMAP intake (aioimaplib): a hosted mailbox as a source of a list's mail.

Order per message: fetch; claim the UID, store the inbound row and record the
outcome in one transaction; only after its commit flag or move it on the server.
See listbot/core/store/imap.py for why neither a kill nor a second poller on the same
mailbox loses or duplicates a message. Every server call
runs under a timeout (IDLE can hang on a BYE); a broken session reconnects with
capped exponential backoff. IDLE is re-issued at least every 29 minutes
(RFC 2177); without IDLE the mailbox is polled.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import aioimaplib
import structlog

from listbot.core.clock import Clock
from listbot.core.config import Config, Document, section
from listbot.core.errors import MessageRejected
from listbot.core.mail.line_endings import check_line_endings
from listbot.core.mail.view import parse_header_block
from listbot.core.metrics import Metrics
from listbot.core.model import IMAP_SOURCE
from listbot.core.outbox.alerts import raise_alert
from listbot.core.routing import Router
from listbot.core.store import Arrival, Store, Tx
from listbot.core.store import imap as imap_ops

log = structlog.get_logger("listbot.imap")

T = TypeVar("T")
MAX_IDLE_SECONDS = 29 * 60


class ImapFailure(Exception):
    """The server said NO/BAD or the session broke: reconnect."""


@dataclass(frozen=True)
class ImapConfig:
    host: str
    port: int
    tls: bool
    tls_ca_file: Path | None
    user: str
    password_file: Path
    folder: str
    list_name: str
    recipient: str
    after: str  # "flag" or "move"
    flag_keyword: str
    move_to: str
    idle: bool
    idle_renew_seconds: float
    poll_interval_seconds: float
    timeout_seconds: float
    backoff_initial_seconds: float
    backoff_max_seconds: float

    @property
    def mailbox(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.folder}"

    def password(self) -> str:
        return self.password_file.read_text(encoding="utf-8").strip()


_KNOWN = {"enabled", "host", "port", "tls", "tls_ca_file", "user", "password_file", "folder",
          "list", "after", "flag_keyword", "move_to", "idle", "idle_renew_seconds",
          "poll_interval_seconds", "timeout_seconds", "backoff_initial_seconds",
          "backoff_max_seconds"}


def _get(raw: Mapping[str, Any], key: str, kind: type[T], default: T,
         problems: list[str]) -> T:
    value = raw.get(key, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        problems.append(f"imap.{key}: expected {kind.__name__}")
        return default
    return value


def parse_imap(doc: Document, cfg: Config, problems: list[str]) -> ImapConfig | None:
    """The [imap] section, or None when it is absent or enabled = false."""
    if "imap" not in doc:
        return None

    def parse(raw: Mapping[str, Any], problems: list[str]) -> ImapConfig | None:
        problems.extend(f"imap.{k}: unknown key" for k in raw if k not in _KNOWN)
        if not _get(raw, "enabled", bool, True, problems):
            return None
        tls = _get(raw, "tls", bool, True, problems)
        list_name = _get(raw, "list", str, "security", problems)
        lc = cfg.lists.get(list_name)
        if lc is None:
            problems.append(f"imap.list: no list named {list_name!r}")
        after = _get(raw, "after", str, "flag", problems)
        if after not in ("flag", "move"):
            problems.append("imap.after: expected 'flag' or 'move'")
        move_to = _get(raw, "move_to", str, "", problems)
        if after == "move" and not move_to:
            problems.append("imap.move_to: needed when after = 'move'")
        renew = _get(raw, "idle_renew_seconds", float, 25 * 60.0, problems)
        if not 0 < renew <= MAX_IDLE_SECONDS:
            problems.append(f"imap.idle_renew_seconds: must be in (0, {MAX_IDLE_SECONDS}]")
        host = _get(raw, "host", str, "", problems)
        user = _get(raw, "user", str, "", problems)
        password_file = _get(raw, "password_file", str, "", problems)
        for key, value in (("host", host), ("user", user), ("password_file", password_file)):
            if not value:
                problems.append(f"imap.{key}: required")
        ca = _get(raw, "tls_ca_file", str, "", problems)
        timeout = _get(raw, "timeout_seconds", float, 30.0, problems)
        if timeout <= 0:
            problems.append("imap.timeout_seconds: must be positive")
        return ImapConfig(
            host=host, port=_get(raw, "port", int, 993 if tls else 143, problems), tls=tls,
            tls_ca_file=Path(ca) if ca else None, user=user,
            password_file=_resolve(cfg, password_file),
            folder=_get(raw, "folder", str, "INBOX", problems), list_name=list_name,
            recipient=lc.address if lc else "", after=after,
            flag_keyword=_get(raw, "flag_keyword", str, "$ListbotStored", problems),
            move_to=move_to, idle=_get(raw, "idle", bool, True, problems),
            idle_renew_seconds=renew,
            poll_interval_seconds=_get(raw, "poll_interval_seconds", float, 60.0, problems),
            timeout_seconds=timeout,
            backoff_initial_seconds=_get(raw, "backoff_initial_seconds", float, 5.0, problems),
            backoff_max_seconds=_get(raw, "backoff_max_seconds", float, 600.0, problems))

    return section(doc, "imap", parse, problems)


def _resolve(cfg: Config, text: str) -> Path:
    path = Path(text)
    if path.is_absolute() or cfg.source is None:
        return path
    return cfg.source.resolve().parent / path


@dataclass(frozen=True)
class Fetched:
    uid: int
    raw: bytes
    message_id: str
    content_hash: str


def fetched(uid: int, raw: bytes) -> Fetched:
    headers = parse_header_block(raw)
    message_id = str(headers.get("Message-ID", "") or "").strip()[:998]
    return Fetched(uid, raw, message_id, hashlib.sha256(raw).hexdigest())


def uidvalidity_of(lines: list[Any]) -> int:
    for line in lines:
        match = re.search(rb"\[UIDVALIDITY (\d+)\]", bytes(line))
        if match:
            return int(match.group(1))
    raise ImapFailure("SELECT answered without UIDVALIDITY")


def refusal_of(raw: bytes, max_bytes: int) -> str | None:
    """Why intake refuses these bytes, as SMTP intake would refuse them, or None."""
    try:
        check_line_endings(raw)
    except MessageRejected as exc:
        return str(exc)
    if len(raw) > max_bytes:
        return f"over the size limit of {max_bytes} bytes"
    return None


def literal_of(lines: list[Any]) -> bytes:
    for line in lines:
        if isinstance(line, bytearray):
            return bytes(line)
    raise ImapFailure("FETCH answered without the message")


def _check(response: aioimaplib.Response, what: str) -> list[Any]:
    if response.result != "OK":
        raise ImapFailure(f"{what}: {response.result}")
    return list(response.lines)


class ImapPoller:
    def __init__(self, icfg: ImapConfig, cfg: Config, store: Store, clock: Clock, *,
                 on_stored: Callable[[], None], metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self.icfg = icfg
        self.cfg = cfg
        self.store = store
        self.clock = clock
        self.on_stored = on_stored
        self.max_bytes = cfg.max_message_bytes
        route = Router(cfg.lists.values()).route(icfg.recipient)
        if route is None:
            raise ValueError(f"imap: {icfg.recipient} is not a list address")
        self.route = route
        self.connected = asyncio.Event()  # set while a session is selected (tests, doctor)

    async def _call(self, awaitable: Awaitable[T]) -> T:
        return await asyncio.wait_for(awaitable, self.icfg.timeout_seconds)

    async def run(self, stopping: asyncio.Event) -> None:
        delay = self.icfg.backoff_initial_seconds
        while not stopping.is_set():
            try:
                await self.session(stopping)
                delay = self.icfg.backoff_initial_seconds
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any session failure: back off and reconnect
                self.connected.clear()
                log.warning("imap.session_failed", error=type(exc).__name__, detail=str(exc),
                            retry_in=delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), delay)
                delay = min(self.icfg.backoff_max_seconds, delay * 2)

    async def _connect(self) -> aioimaplib.IMAP4:
        c = self.icfg
        if c.tls:
            context = ssl.create_default_context(
                cafile=str(c.tls_ca_file) if c.tls_ca_file else None)
            client: aioimaplib.IMAP4 = aioimaplib.IMAP4_SSL(
                c.host, c.port, timeout=c.timeout_seconds, ssl_context=context)
        else:
            client = aioimaplib.IMAP4(c.host, c.port, timeout=c.timeout_seconds)
        await self._call(client.wait_hello_from_server())
        _check(await self._call(client.login(c.user, c.password())), "LOGIN")
        return client

    async def session(self, stopping: asyncio.Event) -> None:
        client = await self._connect()
        try:
            lines = _check(await self._call(client.select(self.icfg.folder)), "SELECT")
            uidvalidity = uidvalidity_of(lines)
            self.connected.set()
            log.info("imap.connected", mailbox=self.icfg.mailbox, uidvalidity=uidvalidity)
            while not stopping.is_set():
                await self.sync(client, uidvalidity)
                await self.wait_for_news(client, stopping)
        finally:
            self.connected.clear()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.logout(), self.icfg.timeout_seconds)

    async def pending_uids(self, client: aioimaplib.IMAP4) -> list[int]:
        criteria: tuple[str, ...]
        if self.icfg.after == "flag":
            criteria = ("UNKEYWORD", self.icfg.flag_keyword, "UNDELETED")
        else:
            criteria = ("UNDELETED",)
        lines = _check(await self._call(client.uid_search(*criteria, charset=None)), "SEARCH")
        return sorted(int(x) for x in bytes(lines[0]).split() if x.isdigit()) if lines else []

    async def sync(self, client: aioimaplib.IMAP4, uidvalidity: int) -> int:
        """Store every pending message, then mark it; returns how many were new."""
        uids = await self.pending_uids(client)
        async with self.store.unit() as tx:
            done = await imap_ops.recorded_uids(tx, self.icfg.mailbox, uidvalidity, uids)
        new = 0
        for uid in uids:
            if uid not in done:
                raw = literal_of(_check(await self._call(
                    client.uid("fetch", str(uid), "(BODY.PEEK[])")), "FETCH"))
                new += await self.take(fetched(uid, raw), uidvalidity)
            await self.mark(client, uid)
        return new

    async def take(self, msg: Fetched, uidvalidity: int) -> int:
        """Store and record one message in one transaction; 1 if it was stored now."""
        claim = imap_ops.Seen(self.icfg.mailbox, uidvalidity, msg.uid, msg.message_id,
                              msg.content_hash, None, "claimed")
        refusal = refusal_of(msg.raw, self.max_bytes)
        async with self.store.unit(urgent=True) as tx:
            seen = await self._take(tx, claim, msg.raw, refusal)
        log.info("imap.taken", uid=msg.uid, outcome=seen.outcome if seen else "recorded",
                 inbound_id=seen.inbound_id if seen else None)
        if seen is None or seen.outcome != "stored":
            return 0
        if self.metrics is not None:
            self.metrics.received(self.route.list_name, IMAP_SOURCE)
        self.on_stored()
        return 1

    async def _take(self, tx: Tx, claim: imap_ops.Seen, raw: bytes,
                    refusal: str | None) -> imap_ops.Seen | None:
        if not await imap_ops.claim_uid(tx, claim, tx.now):
            return None  # recorded already: another poller or an earlier pass has it
        earlier = await imap_ops.already_stored(tx, claim.mailbox, claim.uidvalidity,
                                                claim.content_hash, claim.message_id)
        if earlier is not None:
            seen = replace(claim, inbound_id=earlier, outcome="duplicate")
        else:
            arrival = Arrival(IMAP_SOURCE, "", self.icfg.recipient, self.route, raw)
            (inbound_id,) = await tx.insert_arrivals([arrival])
            seen = replace(claim, inbound_id=inbound_id,
                           outcome="stored" if refusal is None else "refused")
            if refusal is not None:
                await self._quarantine(tx, seen, inbound_id, refusal)
        await imap_ops.settle_uid(tx, seen)
        return seen

    async def _quarantine(self, tx: Tx, seen: imap_ops.Seen, inbound_id: int,
                          refusal: str) -> None:
        # Refused bytes are kept (quarantined, never processed) before the server flag
        # says "stored": the mailbox copy may be gone after a move, so nothing is lost.
        log.warning("imap.refused", uid=seen.uid, reason=refusal)
        await tx.quarantine_inbound(inbound_id, f"refused at IMAP intake: {refusal}")
        facts = {"mailbox": seen.mailbox, "uid": seen.uid, "uidvalidity": seen.uidvalidity,
                 "inbound": inbound_id, "reason": refusal}
        await tx.audit("listbot", "imap.refused", f"imap:{seen.mailbox}", facts)
        await raise_alert(tx, self.cfg, "imap_refused",
                          f"IMAP message refused ({refusal}); kept as quarantined "
                          f"inbound {inbound_id}", facts)

    async def mark(self, client: aioimaplib.IMAP4, uid: int) -> None:
        if self.icfg.after == "flag":
            _check(await self._call(client.uid(
                "store", str(uid), "+FLAGS.SILENT", f"({self.icfg.flag_keyword})")), "STORE")
            return
        if client.has_capability("MOVE"):
            _check(await self._call(client.uid("move", str(uid), self.icfg.move_to)), "MOVE")
            return
        _check(await self._call(client.uid("copy", str(uid), self.icfg.move_to)), "COPY")
        _check(await self._call(client.uid("store", str(uid), "+FLAGS.SILENT",
                                           r"(\Deleted)")), "STORE")
        if client.has_capability("UIDPLUS"):
            _check(await self._call(client.uid("expunge", str(uid))), "UID EXPUNGE")
        else:
            _check(await self._call(client.expunge()), "EXPUNGE")

    async def wait_for_news(self, client: aioimaplib.IMAP4, stopping: asyncio.Event) -> None:
        if not (self.icfg.idle and client.has_capability("IDLE")):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.icfg.poll_interval_seconds)
            return
        renew = self.icfg.idle_renew_seconds
        idle = await self._call(client.idle_start(timeout=renew))
        push = asyncio.ensure_future(client.wait_server_push(timeout=renew))
        stop = asyncio.ensure_future(stopping.wait())
        try:
            # A bounded wait even if the server never answers (IDLE can hang on BYE).
            await asyncio.wait({push, stop}, timeout=renew + self.icfg.timeout_seconds,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (push, stop):
                task.cancel()
            if push.done() and not push.cancelled():
                push.exception()  # a push timeout is the normal renew path: consume it
            if client.has_pending_idle():
                client.idle_done()
        _check(await self._call(idle), "IDLE")
