"""Message facts for moderation: a parsed message (`Inbound.view`) -> MessageFacts,
never raising.

`facts_from_view` and `facts_from_message` never raise: malformed MIME, undecodable
headers and unknown charsets fall back to replacement decoding. Body text handed to rules
is capped at rules.TEXT_LIMIT characters (the first 256 KiB of text) and each
header value at rules.HEADER_LIMIT, so no rule costs more than linear time in
a bounded input.
"""

from __future__ import annotations

import email.header
import email.policy
from dataclasses import dataclass
from email.message import Message
from html.parser import HTMLParser

import re2

from listbot.core.mail.view import MessageView
from listbot.moderation.rules import HEADER_LIMIT, TEXT_LIMIT, Role

MAX_PARTS = 500
_PATCH = re2.compile(
    r"(?m)(?:^diff --git \S+ \S+$)"
    r"|(?:^--- \S[^\n]*\n\+\+\+ \S[^\n]*\n@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@)"
)
_PATCH_NAME = re2.compile(r"(?i)\.(?:patch|diff)$")


@dataclass(frozen=True)
class AttachmentFacts:
    filename: str  # "" when the part names none
    content_type: str
    size: int
    looks_like_patch: bool


@dataclass(frozen=True)
class MessageFacts:
    sender_role: Role
    signed_by_sender: bool
    size: int
    subject: str
    headers: tuple[tuple[str, str], ...]  # (lower-case name, decoded value) in order
    body: str  # text/plain parts (or stripped HTML), LF line ends, capped
    body_unquoted: str  # body without lines starting with '>'
    body_from_html: bool  # no plain text: body is tag-stripped HTML
    body_truncated: bool
    inline_patch: bool
    attachments: tuple[AttachmentFacts, ...]
    defects: tuple[str, ...]  # parser defect class names, for explain

    @property
    def looks_like_patch(self) -> bool:
        return self.inline_patch or any(a.looks_like_patch for a in self.attachments)

    def header_values(self, name: str) -> tuple[str, ...]:
        lower = name.lower()
        return tuple(v for n, v in self.headers if n == lower)


# ---------------------------------------------------------------- extraction


def _unescape(raw: str) -> str:
    # The bytes parser keeps non-ASCII header bytes as surrogates; most are UTF-8.
    return raw.encode("ascii", "surrogateescape").decode("utf-8", "replace")


def _one_line(text: str, limit: int = HEADER_LIMIT) -> str:
    return " ".join(text[: limit * 2].split())[:limit]


def _header_value(name: str, raw: str) -> str:
    try:
        value = str(email.policy.default.header_fetch_parse(name, raw))
    except Exception:  # the header parser has crashed on hostile input before
        value = _rfc2047_or_raw(raw)
    return _one_line(value)


def _rfc2047_or_raw(raw: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(raw)))
    except Exception:  # same: the raw text is all that is left
        return _unescape(raw)


def _decode(payload: bytes, charset: str | None) -> str:
    payload = payload[: TEXT_LIMIT * 4]
    try:
        return payload.decode(charset or "utf-8", "replace")
    except (LookupError, ValueError):  # unknown or non-text codec such as 'base64'
        return payload.decode("utf-8", "replace")


def _payload(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # broken transfer encodings
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    return _unescape(raw).encode("utf-8") if isinstance(raw, str) else b""


def _charset(part: Message) -> str | None:
    try:
        return part.get_content_charset()
    except Exception:  # malformed parameters
        return None


class _HTMLText(HTMLParser):
    """Crude text of HTML for classification only; blockquotes become '>' lines."""

    _SKIP = frozenset({"script", "style", "head", "title"})
    _BREAK = frozenset({"br", "p", "div", "li", "tr", "blockquote", "pre", "h1", "h2", "h3"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[tuple[str, bool]] = []  # (text, inside a blockquote)
        self.skip = 0
        self.quote = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._depth(tag, +1)

    def handle_endtag(self, tag: str) -> None:
        self._depth(tag, -1)

    def _depth(self, tag: str, step: int) -> None:
        if tag in self._SKIP:
            self.skip = max(0, self.skip + step)
        if tag == "blockquote":
            self.quote = max(0, self.quote + step)
        if tag in self._BREAK:
            self.chunks.append(("\n", False))

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.chunks.append((data, self.quote > 0))

    def text(self) -> str:
        lines: list[str] = []
        words: list[str] = []
        quoted = False
        for chunk, in_quote in self.chunks:
            pieces = chunk.split("\n")
            for i, piece in enumerate(pieces):
                if i:
                    lines.append(("> " if quoted else "") + " ".join(words))
                    words, quoted = [], False
                if piece.strip():
                    words.extend(piece.split())
                    quoted = quoted or in_quote
        lines.append(("> " if quoted else "") + " ".join(words))
        return "\n".join(line for line in lines if line.strip("> "))


def html_to_text(html: str) -> str:
    parser = _HTMLText()
    try:
        parser.feed(html[: TEXT_LIMIT * 4])
        parser.close()
    except Exception:  # html.parser on hostile markup: keep what was read so far
        return parser.text()
    return parser.text()


def _walk(msg: Message) -> list[Message]:
    """Leaf parts, iteratively (deep nesting must not exhaust the stack), capped."""
    leaves: list[Message] = []
    stack = [msg]
    while stack and len(leaves) < MAX_PARTS:
        part = stack.pop()
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list):
            stack.extend(reversed([p for p in payload if isinstance(p, Message)]))
        else:
            leaves.append(part)
    return leaves


@dataclass
class _Parts:
    plain: list[str]
    html: list[str]
    attachments: list[AttachmentFacts]


def _classify_part(part: Message, acc: _Parts) -> None:
    ctype = part.get_content_type()
    try:
        filename = part.get_filename() or ""
        disposition = part.get_content_disposition()
    except Exception:  # RFC 2231 parameters the parser cannot handle
        filename, disposition = "", None
    maintype = ctype.split("/", 1)[0]
    filename = _one_line(_unescape(filename) if isinstance(filename, str) else "", 255)
    inline = disposition != "attachment" and not filename
    data = _payload(part)
    if inline and ctype == "text/html":
        acc.html.append(_decode(data, _charset(part)))
    elif inline and maintype in ("text", "multipart"):
        # a multipart without a usable boundary is parsed as one opaque leaf: read it as text
        acc.plain.append(_decode(data, _charset(part)))
    else:
        text = _decode(data, _charset(part)) if maintype != "image" else ""
        patch = bool(_PATCH_NAME.search(filename)) or _PATCH.search(_lf(text)) is not None
        acc.attachments.append(AttachmentFacts(filename, ctype, len(data), patch))


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _unquoted(body: str) -> str:
    return "\n".join(line for line in body.split("\n") if not line.lstrip().startswith(">"))


def _fallback_message(raw: bytes) -> tuple[list[tuple[str, str]], _Parts]:
    head, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    headers = []
    for line in head.decode("utf-8", "replace").split("\n"):
        name, sep, value = line.partition(":")
        if sep and name and not name[0].isspace():
            headers.append((name.strip().lower(), _one_line(value)))
    return headers, _Parts([_decode(body, "utf-8")], [], [])


def _parse(view: MessageView) -> tuple[list[tuple[str, str]], _Parts, tuple[str, ...]]:
    msg = view.email
    headers = [(str(n).lower(), _header_value(str(n), v)) for n, v in msg.raw_items()]
    acc = _Parts([], [], [])
    defects = [type(d).__name__ for d in msg.defects]
    for part in _walk(msg):
        defects.extend(type(d).__name__ for d in part.defects)
        _classify_part(part, acc)
    return headers, acc, tuple(dict.fromkeys(defects))[:20]


def facts_from_message(raw: bytes, *, sender_role: Role, signed_by_sender: bool) -> MessageFacts:
    return facts_from_view(MessageView.parse(raw), sender_role=sender_role,
                           signed_by_sender=signed_by_sender)


def facts_from_view(view: MessageView, *, sender_role: Role,
                    signed_by_sender: bool) -> MessageFacts:
    """The facts of a message already parsed (`Inbound.view`)."""
    raw = view.raw
    try:
        if view.parser_failed:  # read with the fallback, as if it had failed right here
            raise ValueError("the parser failed on this message")
        headers, parts, defects = _parse(view)
    except Exception:  # the stdlib parser has crashed on hostile MIME
        headers, parts = _fallback_message(raw)
        defects = ("ParserCrashed",)
    plain = "\n\n".join(_lf(t) for t in parts.plain).strip()
    from_html = not plain and bool(parts.html)
    if from_html:
        plain = "\n\n".join(html_to_text(h) for h in parts.html)
    body = plain[:TEXT_LIMIT]
    subject = next((v for n, v in headers if n == "subject"), "")
    return MessageFacts(
        sender_role=sender_role,
        signed_by_sender=signed_by_sender,
        size=len(raw),
        subject=subject,
        headers=tuple(headers[:200]),
        body=body,
        body_unquoted=_unquoted(body),
        body_from_html=from_html,
        body_truncated=len(plain) > TEXT_LIMIT,
        inline_patch=_PATCH.search(body) is not None,
        attachments=tuple(parts.attachments),
        defects=defects,
    )
