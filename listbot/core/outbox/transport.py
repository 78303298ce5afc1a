"""Ways out to the world: the smarthost over SMTP (aiosmtplib) or a local Maildir.

A transport answers per recipient with an SMTP-like code, so the delivery worker
decides retries the same way for both.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiosmtplib

from listbot.core.config import SmtpConfig, StartTLS


@dataclass(frozen=True)
class SendResult:
    code: int
    reply: str
    # The relay as a whole refused (no connection, or 4xx at the greeting, HELO/EHLO or
    # MAIL FROM): the answer says nothing about this recipient or this message.
    relay: bool = False

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return self.code >= 500


# Called with the answers of each transaction as soon as the relay gave them, and
# awaited before the next transaction on that connection: the caller records them
# there, so a crash can repeat at most the transaction in flight.
Answered = Callable[[Mapping[str, SendResult]], Awaitable[None]]


async def _ignore(results: Mapping[str, SendResult]) -> None:
    return None


class Transport(Protocol):
    async def send(self, envelope_from: str, recipients: Sequence[str], data: bytes,
                   answered: Answered = _ignore) -> Mapping[str, SendResult]: ...

    async def close(self) -> None: ...


def _all(recipients: Sequence[str], result: SendResult) -> dict[str, SendResult]:
    return {r: result for r in recipients}


class SMTPTransport:
    """A small pool of open connections to the smarthost."""

    def __init__(self, cfg: SmtpConfig, local_hostname: str) -> None:
        self.cfg = cfg
        self.local_hostname = local_hostname
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        self._slots = asyncio.Semaphore(cfg.pool_size)
        self._password = (cfg.password_file.read_text().strip()
                          if cfg.password_file is not None else None)

    async def _connect(self) -> aiosmtplib.SMTP:
        start_tls: bool | None = {StartTLS.REQUIRED: True, StartTLS.OPTIONAL: None,
                                  StartTLS.NONE: False}[self.cfg.starttls]
        client = aiosmtplib.SMTP(hostname=self.cfg.host, port=self.cfg.port,
                                 timeout=self.cfg.timeout_seconds, start_tls=start_tls,
                                 local_hostname=self.local_hostname)
        await client.connect()
        if self.cfg.username and self._password is not None:
            await client.login(self.cfg.username, self._password)
        return client

    async def _checkout(self) -> aiosmtplib.SMTP:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client.is_connected:
                return client
        return await self._connect()

    async def send(self, envelope_from: str, recipients: Sequence[str], data: bytes,
                   answered: Answered = _ignore) -> Mapping[str, SendResult]:
        async with self._slots:
            try:
                client = await self._checkout()
            except (aiosmtplib.SMTPException, OSError) as exc:
                down = _all(recipients, SendResult(451, f"relay unreachable: {exc}", relay=True))
                await answered(down)
                return down
            result, reusable = await self._transaction(client, envelope_from, recipients,
                                                       data, answered)
            if reusable and client.is_connected:
                self._idle.put_nowait(client)
            else:
                client.close()
            return result

    async def _transaction(self, client: aiosmtplib.SMTP, envelope_from: str,
                           recipients: Sequence[str], data: bytes,
                           answered: Answered) -> tuple[dict[str, SendResult], bool]:
        """Internationalised addresses (RFC 6531) go in a transaction of their own with
        SMTPUTF8, so a relay without it refuses only them."""
        if not _sendable(envelope_from):
            out = _all(recipients, UNSENDABLE)
            await answered(out)
            return out, True
        # Checked before anything is sent: aiosmtplib refuses such an address only once
        # the transaction has begun, and one bad address must not fail the others.
        out = _all([r for r in recipients if not _sendable(r)], UNSENDABLE)
        if out:
            await answered(dict(out))
        good = [r for r in recipients if r not in out]
        wide = [r for r in good if not (envelope_from + r).isascii()]
        plain = [r for r in good if (envelope_from + r).isascii()]
        reusable = True
        for group, options in ((plain, []), (wide, ["SMTPUTF8"])):
            if group and reusable:
                results, reusable = await self._one(client, envelope_from, group, data, options)
                await answered(results)
                out.update(results)
        return out, reusable

    async def _one(self, client: aiosmtplib.SMTP, envelope_from: str,
                   recipients: list[str], data: bytes,
                   options: list[str]) -> tuple[dict[str, SendResult], bool]:
        try:
            refused, reply = await client.sendmail(envelope_from, recipients, data,
                                                   mail_options=options)
        except aiosmtplib.SMTPNotSupported:
            return _all(recipients, SendResult(553, "5.6.7 the relay does not offer "
                                                    "SMTPUTF8 for this address")), True
        except ValueError:  # aiosmtplib refused an address or command line after all
            await _rset(client)
            return _all(recipients, UNSENDABLE), client.is_connected
        except aiosmtplib.SMTPRecipientsRefused as exc:
            await _rset(client)
            return {e.recipient: SendResult(e.code, e.message) for e in exc.recipients}, True
        except (aiosmtplib.SMTPResponseException) as exc:
            await _rset(client)
            return _all(recipients, SendResult(exc.code, exc.message,
                                               relay=_relay_wide(exc))), True
        except (aiosmtplib.SMTPException, OSError) as exc:
            return _all(recipients, SendResult(451, f"connection lost: {exc}")), False
        out = {r: SendResult(250, reply) for r in recipients}
        for rcpt, response in refused.items():
            out[rcpt] = SendResult(response.code, response.message)
        return out, True

    async def close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait().close()


UNSENDABLE = SendResult(553, "5.1.3 not an address that can be sent over SMTP")
# No whitespace, angle brackets, quotes, second "@" or control characters: aiosmtplib
# would refuse such an address mid-transaction, or (its parser being lenient) send a
# different one. A quoted local part is refused too: no address listbot keeps has one.
_PLAIN_ADDRESS = re.compile(r'[^\s<>"@\x00-\x1f\x7f]+@[^\s<>"@\x00-\x1f\x7f]+')


def _sendable(address: str) -> bool:
    """Whether the address goes on a MAIL or RCPT line exactly as it is ("" is <>)."""
    return address == "" or _PLAIN_ADDRESS.fullmatch(address) is not None


def _relay_wide(exc: aiosmtplib.SMTPResponseException) -> bool:
    """A 4xx before any recipient is named (HELO/EHLO, MAIL FROM) is the relay's state,
    not this message's."""
    return (isinstance(exc, aiosmtplib.SMTPHeloError | aiosmtplib.SMTPSenderRefused)
            and 400 <= exc.code < 500)


async def _rset(client: aiosmtplib.SMTP) -> None:
    try:
        await client.rset()
    except (aiosmtplib.SMTPException, OSError):
        client.close()


class MaildirTransport:
    """Writes each message into a Maildir: the embedded default needs no relay."""

    def __init__(self, path: Path) -> None:
        self.path = path
        for sub in ("tmp", "new", "cur"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        self._seq = 0

    async def send(self, envelope_from: str, recipients: Sequence[str], data: bytes,
                   answered: Answered = _ignore) -> Mapping[str, SendResult]:
        try:
            await asyncio.to_thread(self._write, envelope_from, recipients, data)
        except OSError as exc:
            out = _all(recipients, SendResult(451, f"maildir write failed: {exc}"))
        else:
            out = _all(recipients, SendResult(250, "written to maildir"))
        await answered(out)
        return out

    def _write(self, envelope_from: str, recipients: Sequence[str], data: bytes) -> None:
        self._seq += 1
        name = f"{time.time_ns()}.{os.getpid()}_{self._seq}.{socket.gethostname()}"
        envelope = (f"Return-Path: <{envelope_from}>\r\n"
                    f"X-Envelope-To: {', '.join(recipients)}\r\n").encode()
        tmp = self.path / "tmp" / name
        with open(tmp, "wb") as fh:
            fh.write(envelope + data)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, self.path / "new" / name)

    async def close(self) -> None:
        return None
