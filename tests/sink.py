"""A recording SMTP sink used as the smarthost in tests (a real aiosmtpd server)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Received:
    mail_from: str
    rcpts: list[str]
    data: bytes

    @property
    def message(self) -> Message:
        return message_from_bytes(self.data)


@dataclass
class Sink:
    """Records every accepted transaction. `responder` may answer DATA with 4xx/5xx."""

    host: str = "127.0.0.1"
    port: int = 0
    received: list[Received] = field(default_factory=list)
    responder: Callable[[Envelope], str | None] | None = None
    rcpt_responder: Callable[[str], str | None] | None = None
    # Answers MAIL FROM instead of 250 (a relay refusing everything, e.g. 421 or 451).
    mail_responder: Callable[[str], str | None] | None = None
    attempts: int = 0
    mail_refusals: int = 0
    # When set, DATA waits for this event before answering (a relay that hangs), once
    # `stall_after` transactions have gone through.
    stall: asyncio.Event | None = None
    stall_after: int = 0
    smtputf8: bool = True  # False: a relay that does not offer SMTPUTF8
    _server: asyncio.Server | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        handler = _Handler(self)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(handler, decode_data=False, enable_SMTPUTF8=self.smtputf8,
                         hostname="sink"),
            self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    def deliveries(self) -> list[tuple[str, Received]]:
        """(recipient, transaction) for every accepted recipient."""
        return [(r, rec) for rec in self.received for r in rec.rcpts]

    def recipients(self) -> list[str]:
        return sorted(r for r, _ in self.deliveries())

    async def wait_deliveries(self, count: int, timeout: float = 10.0) -> None:
        # Counted as transactions arrive: recounting every delivery on each arrival made
        # the sink itself the bottleneck of a long benchmark (quadratic in the count).
        async def until() -> None:
            seen = total = 0
            while True:
                if len(self.received) < seen:  # a test cleared the record
                    seen = total = 0
                total += sum(len(rec.rcpts) for rec in self.received[seen:])
                seen = len(self.received)
                if total >= count:
                    return
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(until(), timeout)

    def _record(self, env: Envelope) -> None:
        self.received.append(Received((env.mail_from or "").strip("<>"), list(env.rcpt_tos),
                                      env.original_content or b""))
        self._changed.set()


class _Handler:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        if self.sink.mail_responder is not None:
            answer = self.sink.mail_responder(address)
            if answer is not None:
                self.sink.mail_refusals += 1
                return answer
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        if self.sink.rcpt_responder is not None:
            answer = self.sink.rcpt_responder(address)
            if answer is not None:
                return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.sink.attempts += 1
        if self.sink.stall is not None and self.sink.attempts > self.sink.stall_after:
            await self.sink.stall.wait()
        if self.sink.responder is not None:
            answer = self.sink.responder(envelope)
            if answer is not None:
                self.sink._changed.set()
                return answer
        self.sink._record(envelope)
        return "250 2.0.0 queued"
