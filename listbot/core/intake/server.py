"""LMTP and SMTP intake on the daemon's own event loop (aiosmtpd).

250 is answered only after the message is committed
(docs/design.md "Acknowledge only what is stored"); any
failure answers 451 so the sender retries. LMTP answers once per recipient.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from listbot.core.errors import ConfigError, MessageRejected
from listbot.core.mail.line_endings import check_line_endings
from listbot.core.metrics import Metrics
from listbot.core.routing import Router
from listbot.core.store import Arrival, Store

log = structlog.get_logger("listbot.ingest")


class IntakeHandler:
    def __init__(self, *, router: Router, store: Store, source: str, per_recipient: bool,
                 on_stored: Callable[[], None], metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self.router = router
        self.store = store
        self.source = source
        self.per_recipient = per_recipient
        self.on_stored = on_stored
        self.accepting = True

    def _reply(self, status: str, envelope: Envelope) -> str:
        if not self.per_recipient:
            return status
        return "\r\n".join(status for _ in envelope.rcpt_tos)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if not self.accepting:
            return "421 4.3.2 shutting down, try again later"
        if self.router.route(address) is None:
            log.info("rcpt.refused", source=self.source)
            return f"550 5.1.1 <{address}>: recipient unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        try:
            check_line_endings(data)
        except MessageRejected as exc:
            log.warning("data.refused", source=self.source, reason=str(exc))
            return self._reply(f"550 5.6.0 {exc}", envelope)
        try:
            arrivals = [self._arrival(envelope, rcpt, data) for rcpt in envelope.rcpt_tos]
            ids = await self.store.store_arrivals(arrivals)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # whatever went wrong, the sender must retry: 451
            log.error("data.store_failed", source=self.source, error=type(exc).__name__)
            return self._reply("451 4.3.0 could not store the message, try again later",
                               envelope)
        log.info("data.stored", source=self.source, ids=ids, size=len(data))
        if self.metrics is not None:
            for a in arrivals:
                self.metrics.received(a.route.list_name, self.source)
        self.on_stored()
        return self._reply("250 2.0.0 OK stored", envelope)

    def _arrival(self, envelope: Envelope, rcpt: str, data: bytes) -> Arrival:
        route = self.router.route(rcpt)
        if route is None:  # RCPT already checked this; a reload may have removed the list
            raise MessageRejected(f"recipient {rcpt} is no longer known")
        return Arrival(self.source, envelope_sender(envelope.mail_from), rcpt.lower(), route,
                       data)


def envelope_sender(mail_from: str | None) -> str:
    """The null sender arrives as "<>": keep it as "" so nothing ever replies to it."""
    value = (mail_from or "").strip()
    return "" if value in ("", "<>") else value.strip("<>").lower()


class _SizeReplies:
    """aiosmtpd's own 552 does not say the limit; ours does (mixed into SMTP/LMTP)."""

    data_size_limit: int | None

    async def push(self, status: Any) -> None:
        text = status.decode() if isinstance(status, bytes) else str(status)
        if text.startswith("552 ") and self.data_size_limit:
            text = f"552 5.3.4 message exceeds the size limit of {self.data_size_limit} bytes"
        await super().push(text)  # type: ignore[misc]


class ListbotSMTP(_SizeReplies, SMTP):
    pass


class ListbotLMTP(_SizeReplies, LMTP):
    pass


async def start_server(*, lmtp: bool, handler: IntakeHandler, host: str, port: int,
                       hostname: str, max_bytes: int) -> asyncio.Server:
    protocol = ListbotLMTP if lmtp else ListbotSMTP

    def factory() -> SMTP:
        return protocol(handler, data_size_limit=max_bytes, hostname=hostname,
                        ident="listbot", enable_SMTPUTF8=True, decode_data=False,
                        timeout=300)

    return await asyncio.get_running_loop().create_server(factory, host, port)


@contextmanager
def binding(key: str, endpoint: object) -> Iterator[None]:
    """A port someone else holds is one line naming it and the key that moves it
    (exit 78: restarting cannot free it), not a traceback."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        raise ConfigError([f"{key}: cannot listen on {endpoint}: {exc.strerror}; stop what "
                           f"holds it or set another address in {key}"]) from None
