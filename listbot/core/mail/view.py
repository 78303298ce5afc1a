"""One received message, parsed once, read by every step.

The stdlib parser runs here and nowhere else outside core/mail: a message is parsed
into one `MessageView` when it is first read (`Inbound.view`), and the handlers, the
rule classifier, the reply reader and the signature check all read that view. A
different entity (a decrypted plaintext, a signed part, a stored held post) gets its
own view through the same constructor.

The tree is parsed with ``compat32``, which keeps every header value as received; the
PGP/MIME code depends on that. Code written against ``policy.default`` reads
`header_message` or `email`: the same parsed values re-cast under that policy, with
no second parse.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import compat32
from email.policy import default as default_policy
from functools import cached_property
from typing import Any, TypeVar, cast

from listbot.core.mail.safe import Mailbox, sender_of

T = TypeVar("T")

_HEADER_END = re.compile(rb"\r?\n\r?\n")


def parse_entity(data: bytes) -> Message:
    """A whole MIME entity, header values kept as received."""
    return BytesParser(policy=compat32).parsebytes(data)


def parse_header_block(block: bytes) -> Message:
    """The header fields of an entity; anything after its header block is ignored."""
    return BytesParser(policy=compat32).parsebytes(block, headersonly=True)


def split_head(raw: bytes) -> tuple[bytes, bytes]:
    """An entity's header block and its body bytes untouched (the blank line in neither)."""
    if raw.startswith((b"\r\n", b"\n")):  # no headers at all: everything is body
        return b"", raw[2 if raw.startswith(b"\r\n") else 1 :]
    match = _HEADER_END.search(raw)
    return (raw[: match.start()], raw[match.end() :]) if match else (raw, b"")


def header_message(items: Iterable[tuple[str, str]]) -> EmailMessage:
    """Header fields as an EmailMessage under policy.default, values stored unchanged:
    what a headers-only parse with that policy gives, without parsing again."""
    out = EmailMessage(policy=default_policy)
    for name, value in items:
        out.set_raw(name, value)
    return out


def recast(part: Message) -> EmailMessage:
    """The same parsed tree under policy.default. Iterative: a hostile message may nest
    parts deeper than the recursion limit."""
    top = _shallow(part)
    stack = [(part, top)]
    while stack:
        src, dst = stack.pop()
        payload = src.get_payload()
        if isinstance(payload, list):
            kids = [(p, _shallow(p)) for p in payload if isinstance(p, Message)]
            dst.set_payload([k for _, k in kids])
            stack.extend(kids)
        else:
            dst.set_payload(payload)
    return top


def _shallow(part: Message) -> EmailMessage:
    out = header_message(part.raw_items())
    if (unixfrom := part.get_unixfrom()) is not None:
        out.set_unixfrom(unixfrom)
    out.set_default_type(part.get_default_type())
    out.preamble, out.epilogue = part.preamble, part.epilogue
    out.defects = list(part.defects)
    return out


def loop_names(values: tuple[str, ...], address: str) -> bool:
    """Whether any of these X-Loop values names this address (folding, case and angle
    brackets aside)."""
    wanted = address.strip().strip("<>").lower()
    return any(" ".join(v.split()).strip("<>").lower() == wanted for v in values)


@dataclass(frozen=True, eq=False)
class MessageView:
    """A parsed message. Read-only by contract: nothing may change `tree`."""

    raw: bytes
    tree: Message
    # The SMTP envelope sender ("" the null sender), None when the source had none.
    envelope_sender: str | None = None
    _once: dict[Hashable, asyncio.Future[Any]] = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, raw: bytes, envelope_sender: str | None = None) -> MessageView:
        data = bytes(raw)
        return cls(data, parse_entity(data), envelope_sender)

    @cached_property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """Every header field in order, each value as received."""
        return tuple((str(k), str(v)) for k, v in self.tree.raw_items())

    def get_all(self, name: str) -> tuple[str, ...]:
        """Every value of one field, as received."""
        wanted = name.lower()
        return tuple(v for k, v in self.headers if k.lower() == wanted)

    @cached_property
    def header_message(self) -> EmailMessage:
        """The header fields under policy.default (decoded values on `get`)."""
        return header_message(self.headers)

    @cached_property
    def email(self) -> EmailMessage:
        """The whole tree under policy.default (`get_body`, `get_content`)."""
        return recast(self.tree)

    @cached_property
    def body(self) -> bytes:
        """The bytes after the header block, as received (signatures cover these)."""
        return split_head(self.raw)[1]

    @cached_property
    def defects(self) -> tuple[str, ...]:
        """Parse defects of the message and of every part, by kind, first seen first."""
        found = [type(d).__name__ for part in self.tree.walk() for d in part.defects]
        return tuple(dict.fromkeys(found))

    @cached_property
    def sender(self) -> Mailbox | None:
        """The one From mailbox, parsed strictly; None when there is not exactly one."""
        return sender_of(list(self.headers))

    @property
    def from_values(self) -> tuple[str, ...]:
        return self.get_all("From")

    @property
    def sender_field(self) -> str | None:
        values = self.get_all("Sender")
        return values[0] if values else None

    @cached_property
    def plain_text(self) -> str:
        """The first text/plain body part; HTML-only or broken mail reads as empty."""
        try:
            part = self.email.get_body(preferencelist=("plain",))
            content = part.get_content() if part is not None else ""
        except Exception:  # a malformed part must read as no text, not crash a handler
            return ""
        return content if isinstance(content, str) else ""

    def is_own_loop(self, address: str) -> bool:
        """Whether any X-Loop field, not only the first, names this address."""
        return loop_names(self.get_all("X-Loop"), address)

    async def once(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        """The result of `compute` for this key, computed at most once per view: for
        slow facts such as a signature check that several steps ask about."""
        if key not in self._once:
            self._once[key] = asyncio.ensure_future(compute())
        return cast(T, await self._once[key])
