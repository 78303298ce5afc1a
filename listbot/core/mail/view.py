"""One received message, parsed once, read by every step.

The stdlib parser runs here and nowhere else outside core/mail: a message is parsed
into one `MessageView` when it is first read (`Inbound.view`), and the handlers, the
rule classifier, the reply reader and the signature check all read that view. A
different entity (a decrypted plaintext, a stored held post) gets its own view
through the same constructor.

The message is parsed under ``policy.default``, as the rule classifier always read it:
which parts a message has depends on the policy the parser ran under, and the rules
must see the parts a mail reader shows. Code written against ``compat32`` header
semantics (PGP/MIME, reply commands, bounce reports) reads `tree`: the same parsed
tree re-cast under that policy, values as received, with no second parse.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import Policy, compat32
from email.policy import default as default_policy
from functools import cached_property
from typing import Any, TypeVar, cast

from listbot.core.mail.address import Mailbox, sender_of

T = TypeVar("T")

_HEADER_END = re.compile(rb"\r?\n\r?\n")


def parse_entity(data: bytes) -> Message:
    """A whole MIME entity under compat32: a part cut out of a message by its bytes
    (a signed part, a signature), read as the PGP/MIME code always read it."""
    return BytesParser(policy=compat32).parsebytes(data)


def parse_header_block(block: bytes) -> Message:
    """The header fields of an entity under compat32; what follows its header block is
    ignored."""
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
    return cast(EmailMessage, _headers_under(items, default_policy))


def recast(part: Message, policy: Policy) -> Message:
    """The same parsed tree under another policy (header values and payloads shared
    as stored). Iterative, as deep nesting is cheap to send."""
    top = _shallow(part, policy)
    stack = [(part, top)]
    while stack:
        src, dst = stack.pop()
        payload = src.get_payload()
        if isinstance(payload, list):
            kids = [(p, _shallow(p, policy)) for p in payload if isinstance(p, Message)]
            dst.set_payload([k for _, k in kids])
            stack.extend(kids)
        else:
            dst.set_payload(payload)
    return top


def _headers_under(items: Iterable[tuple[str, str]], policy: Policy) -> Message:
    out = (policy.message_factory or Message)(policy=policy)
    for name, value in items:
        out.set_raw(name, value)
    return out


def _shallow(part: Message, policy: Policy) -> Message:
    out = _headers_under(part.raw_items(), policy)
    if (unixfrom := part.get_unixfrom()) is not None:
        out.set_unixfrom(unixfrom)
    out.set_default_type(part.get_default_type())
    out.preamble, out.epilogue = part.preamble, part.epilogue
    out.defects = list(part.defects)
    return out


def _parse(data: bytes) -> tuple[EmailMessage, bool]:
    """The parsed message, and whether the parser failed on its MIME structure: then
    its header fields, with the whole body as one text payload."""
    parser = BytesParser(policy=default_policy)
    try:
        return parser.parsebytes(data), False
    except Exception:  # nesting past the recursion limit, or a header parser crash
        return parser.parsebytes(data, headersonly=True), True


def loop_names(values: Iterable[str], address: str) -> bool:
    """Whether any of these X-Loop values names this address (folding, case and angle
    brackets aside)."""
    wanted = address.strip().strip("<>").lower()
    return any(" ".join(v.split()).strip("<>").lower() == wanted for v in values)


@dataclass(frozen=True, eq=False)
class MessageView:
    """A parsed message. Read-only by contract: nothing may change `email` or `tree`."""

    raw: bytes
    email: EmailMessage  # the parsed tree, policy.default (`get_body`, `get_content`)
    # The SMTP envelope sender ("" the null sender), None when the source had none.
    envelope_sender: str | None = None
    parser_failed: bool = False  # only the header fields were parsed (see `_parse`)
    _once: dict[Hashable, asyncio.Future[Any]] = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, raw: bytes, envelope_sender: str | None = None) -> MessageView:
        """A message whose MIME structure the parser cannot read keeps its header fields
        (`parser_failed`); each reader then falls back as it did on a parser error."""
        data = bytes(raw)
        parsed, failed = _parse(data)
        return cls(data, parsed, envelope_sender, failed)

    @cached_property
    def tree(self) -> Message:
        """The parsed tree under compat32: header values as received on every get."""
        return recast(self.email, compat32)

    @cached_property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """Every header field in order, each value as received."""
        return tuple((str(k), str(v)) for k, v in self.email.raw_items())

    def get_all(self, name: str) -> tuple[str, ...]:
        """Every value of one field, as received."""
        wanted = name.lower()
        return tuple(v for k, v in self.headers if k.lower() == wanted)

    @cached_property
    def header_message(self) -> EmailMessage:
        """The header fields under policy.default (decoded values on `get`)."""
        return header_message(self.headers)

    @cached_property
    def body(self) -> bytes:
        """The bytes after the header block, as received (signatures cover these)."""
        return split_head(self.raw)[1]

    @cached_property
    def defects(self) -> tuple[str, ...]:
        """Parse defects of the message and of every part, by kind, first seen first."""
        found: list[str] = []
        stack: list[Message] = [self.email]
        while stack:  # not Message.walk: it recurses once per level of nesting
            part = stack.pop()
            found += [type(d).__name__ for d in part.defects]
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend(reversed([p for p in payload if isinstance(p, Message)]))
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
