"""Pure parsing of moderator and team replies.

A reply acts on the first non-empty, non-quoted line of its first text/plain
part. Everything here fails closed: what cannot be read with certainty is
``Ignored``, never guessed at, and no input makes these functions raise.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection
from dataclasses import dataclass
from email.message import Message

from listbot.core.mail.autoreply import auto_submitted_reason
from listbot.core.mail.view import parse_header_block

KNOWN_VERBS = frozenset({"approve", "reject", "discard", "accept"})
# Only a rejection carries text (its reason); any other verb must stand alone,
# so "Approve? No, reject" can never read as an approval.
ARGUMENT_VERBS = frozenset({"reject"})
MAX_ARGUMENT = 1000
MAX_DEPTH = 12
MAX_PARTS = 500

_BEGIN_SIGNED = "-----BEGIN PGP SIGNED MESSAGE-----"
_BEGIN_SIGNATURE = "-----BEGIN PGP SIGNATURE-----"
_NEWLINE_RE = re.compile(r"\r\n|\r|\n")
_ATTRIBUTION_RE = re.compile(r"on\b.*\bwrote:", re.IGNORECASE)
_COMMAND_RE = re.compile(r"([A-Za-z]+)(.*)", re.ASCII | re.DOTALL)
_ENDS = ("-----original message-----", "________________________________")


@dataclass(frozen=True)
class Command:
    verb: str
    argument: str
    source_line: str


@dataclass(frozen=True)
class Ignored:
    reason: str


@dataclass(frozen=True)
class CommandSource:
    """Where a reply's command is read from, with the exact bytes received.

    ``part`` is the text/plain entity (headers and body) as it appears in the
    raw message. ``signed_entity`` and ``signature`` are set when that part is
    inside a multipart/signed: the first is what the signature covers (before
    CRLF canonicalisation), and contains ``part``.
    """

    part: bytes
    text: str
    signed_entity: bytes | None
    signature: bytes | None


def _split_entity(data: bytes) -> tuple[bytes, bytes]:
    """Header block and body of an entity; the blank line belongs to neither."""
    if data.startswith((b"\r\n", b"\n")):
        return b"", data[2:] if data.startswith(b"\r\n") else data[1:]
    found = [(i, sep) for sep in (b"\r\n\r\n", b"\n\n") if (i := data.find(sep)) >= 0]
    if not found:
        return data, b""
    i, sep = min(found)
    return data[: i + len(sep) // 2], data[i + len(sep) :]


def _headers(block: bytes) -> Message:
    return parse_header_block(block + b"\r\n")


def _subparts(body: bytes, boundary: str) -> list[bytes]:
    """RFC 2046 body parts, byte-exact; the CRLF before a delimiter is the delimiter's."""
    delimiter = re.compile(
        rb"(?:\A|\r?\n)--" + re.escape(boundary.encode("ascii", "replace"))
        + rb"(--)?[ \t]*(?=\r?\n|\Z)"
    )
    parts: list[bytes] = []
    start: int | None = None
    for match in delimiter.finditer(body):
        if start is not None:
            parts.append(body[start : match.start()])
        if match.group(1) or len(parts) >= MAX_PARTS:
            return parts
        end = match.end()
        start = end + (2 if body.startswith(b"\r\n", end) else 1)
    if start is not None:  # no close delimiter: take the rest, as readers do
        parts.append(body[start:])
    return parts


def _decode_body(headers: Message, body: bytes) -> str:
    cte = str(headers.get("content-transfer-encoding", "7bit")).strip().lower()
    try:
        if cte == "base64":
            body = base64.b64decode(body, validate=False)
        elif cte == "quoted-printable":
            body = binascii.a2b_qp(body)
    except (binascii.Error, ValueError):
        return ""
    charset = headers.get_content_charset() or "us-ascii"
    try:
        return body.decode(charset, errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def _find(data: bytes, depth: int, signed: tuple[bytes, bytes] | None,
          parsed: Message | None = None) -> CommandSource | None:
    if depth > MAX_DEPTH:
        return None
    block, body = _split_entity(data)
    headers = parsed if parsed is not None else _headers(block)
    if headers.get_content_type() == "text/plain":
        disposition = str(headers.get("content-disposition", "")).split(";")[0].strip().lower()
        if disposition == "attachment":
            return None
        return CommandSource(
            part=data,
            text=_decode_body(headers, body),
            signed_entity=signed[0] if signed else None,
            signature=signed[1] if signed else None,
        )
    # message/rfc822 is a forwarded mail, not the moderator's words: not entered.
    if headers.get_content_maintype() == "multipart":
        return _find_in_multipart(headers, body, depth, signed)
    return None


def _find_in_multipart(
    headers: Message, body: bytes, depth: int, signed: tuple[bytes, bytes] | None
) -> CommandSource | None:
    boundary = headers.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        return None
    parts = _subparts(body, boundary)
    if headers.get_content_type() == "multipart/signed":
        if len(parts) != 2:
            return None
        _, signature = _split_entity(parts[1])
        return _find(parts[0], depth + 1, signed or (parts[0], signature))
    for part in parts:
        found = _find(part, depth + 1, signed)
        if found is not None:
            return found
    return None


def command_source(raw: bytes, parsed: Message | None = None) -> CommandSource | None:
    """The first text/plain part of a reply; None when there is none. `parsed` is the
    reply already parsed (its view's tree), so its own headers are not read twice."""
    try:
        return _find(bytes(raw), 0, None, parsed)
    except Exception:  # odd MIME must not break the worker; no part = ignored
        return None


def _signed_text(lines: list[str]) -> list[str] | None:
    """The lines an inline clear signature covers, dash-escaping undone."""
    i = 1
    while i < len(lines) and lines[i].strip():  # armor headers ("Hash: ...")
        i += 1
    out: list[str] = []
    for line in lines[i + 1 :]:
        if line.rstrip() == _BEGIN_SIGNATURE:
            return out
        out.append(line[2:] if line.startswith("- ") else line)
    return None


def _is_quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _candidate(lines: list[str]) -> int | None:
    """Index of the first line that could be the author's own words, or None."""
    for i, line in enumerate(lines):
        stripped = line.strip()
        if line.rstrip() == "--" or stripped.lower() in _ENDS:
            return None  # signature or a forwarded/quoted original follows
        if not stripped or _is_quoted(line) or _ATTRIBUTION_RE.fullmatch(stripped):
            continue
        following = next((x for x in lines[i + 1 :] if x.strip()), "")
        if stripped.endswith(":") and _is_quoted(following):
            continue  # an attribution line in some other language
        return i
    return None


def _read_command(line: str, allowed: Collection[str]) -> Command | Ignored:
    match = _COMMAND_RE.fullmatch(line.strip())
    if match is None:
        return Ignored("first line is not a command")
    verb, rest = match.group(1).lower(), match.group(2)
    if verb not in KNOWN_VERBS:
        return Ignored("first line is not a command")
    if verb not in {v.lower() for v in allowed}:
        return Ignored("command not allowed here")
    if not rest.rstrip(" \t.!"):
        argument = ""
    elif verb in ARGUMENT_VERBS and rest[0] in " \t:":
        argument = rest.strip(" \t:").strip()
    else:
        return Ignored("first line is not a command")
    argument = "".join(c if c.isprintable() else " " for c in argument)[:MAX_ARGUMENT]
    return Command(verb=verb, argument=argument, source_line=line.strip())


def parse_reply(raw: bytes, allowed_verbs: Collection[str],
                parsed: Message | None = None) -> Command | Ignored:
    """The command of a moderator reply, or why there is none (`parsed` as in
    `command_source`)."""
    try:
        block, _ = _split_entity(bytes(raw))
        headers = parsed if parsed is not None else _headers(block)
        if auto_submitted_reason(headers) is not None:
            return Ignored("automatic reply")
        source = command_source(raw, parsed)
        if source is None:
            return Ignored("no text/plain part")
        lines = _NEWLINE_RE.split(source.text.lstrip("\ufeff"))
        index = _candidate(lines)
        if index is not None and lines[index].strip() == _BEGIN_SIGNED:
            signed = _signed_text(lines[index:])
            if signed is None:
                return Ignored("malformed PGP signed message")
            lines = signed
            index = _candidate(lines)
        if index is None:
            return Ignored("no command")
        line = lines[index]
        return _read_command(line, allowed_verbs)
    except Exception:
        return Ignored("unreadable message")
