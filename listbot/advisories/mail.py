"""The advisory as an e-mail: deterministic Message-IDs and the MIME message.

The text part is the clear-signed output of `advisories.format.render_text`,
signed elsewhere; this module only wraps it with the attachments and the
headers of the advisory layout (docs/design.md "Advisories"), and proves by parsing
its own output that no header grew a line and no signed byte changed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime

from listbot.advisories.doc import (
    DOMAIN_RE,
    PREFIX_RE,
    AdvisoryDoc,
    AdvisoryFormatError,
    Audience,
    line_problems,
)
from listbot.advisories.format import attachments, banner, iso_utc, sha256_lines, subject
from listbot.core.clock import ensure_utc
from listbot.core.mail.headers import encode_header
from listbot.core.mail.outbound import field_name, split_message
from listbot.core.mail.view import MessageView

_COPY_RE = re.compile(r"[a-z0-9-]{1,64}")
_MSGID_RE = re.compile(r"<[!-;=?-~]+@[!-;=?-~]+>")
_HEADER_NAME_RE = re.compile(r"[!-9;-~]+")
_SMTP_LINE_LIMIT = 998
_BEGIN_SIGNED = "-----BEGIN PGP SIGNED MESSAGE-----"
_BEGIN_SIGNATURE = "-----BEGIN PGP SIGNATURE-----"
_END_SIGNATURE = "-----END PGP SIGNATURE-----"


def message_id(
    number: int,
    version: int,
    audience: Audience,
    domain: str,
    *,
    prefix: str = "XSA",
    copy: str | None = None,
) -> str:
    """`<xsa465.v2.predisclosure@domain>`; `copy` tells apart per-member copies."""
    problems = []
    if not DOMAIN_RE.fullmatch(domain):
        problems.append(f"domain {domain!r} is not a host name")
    if not PREFIX_RE.fullmatch(prefix):
        problems.append(f"prefix {prefix!r} is not 2-10 capital letters")
    if copy is not None and not _COPY_RE.fullmatch(copy):
        problems.append(f"copy {copy!r} must match [a-z0-9-]{{1,64}}")
    if number < 1 or version < 1:
        problems.append("number and version must be positive")
    if problems:
        raise AdvisoryFormatError(problems)
    tail = f".{copy}" if copy else ""
    return f"<{prefix.lower()}{number}.v{version}.{audience.value}{tail}@{domain}>"


def thread_of(
    number: int, version: int, audience: Audience, domain: str, *, prefix: str = "XSA"
) -> tuple[str | None, tuple[str, ...]]:
    """(In-Reply-To, References) for a version: later versions refer to the first."""
    if version == 1:
        return None, ()
    first = message_id(number, 1, audience, domain, prefix=prefix)
    return first, (first,)


def _signed_text_problems(signed: str, doc: AdvisoryDoc, audience: Audience) -> list[str]:
    p: list[str] = []
    if not signed.startswith(_BEGIN_SIGNED + "\n"):
        p.append("signed_text does not start with a PGP clear-signed header")
    body, sep, sig = signed.partition("\n" + _BEGIN_SIGNATURE + "\n")
    if not sep or not sig.rstrip("\n").endswith(_END_SIGNATURE):
        p.append("signed_text has no PGP signature block")
    # The attachments are outside the signature: the signed listing must cover them.
    for line in sha256_lines(doc):
        if f"\n{line}\n" not in body:
            p.append(f"signed_text does not list {line.split()[-1]} with its sha256")
    if audience is Audience.PREDISCLOSURE and banner(doc) not in body:
        p.append("pre-disclosure text lacks its embargo banner")
    if audience is Audience.PUBLIC and "***** EMBARGOED UNTIL" in body:
        p.append("public text carries an embargo banner")
    return p


def _header_problems(headers: Sequence[tuple[str, str]]) -> list[str]:
    p: list[str] = []
    for name, value in headers:
        if not _HEADER_NAME_RE.fullmatch(name):
            p.append(f"header name {name!r} is invalid")
        p += line_problems(f"header {name}", value)
    return p


_OWN_HEADERS = frozenset(
    {"from", "to", "subject", "date", "message-id", "in-reply-to", "references",
     "x-embargoed-until", "mime-version", "content-type", "content-transfer-encoding",
     "content-disposition"}
)  # fmt: skip


def build_message(
    *,
    signed_text: str,
    doc: AdvisoryDoc,
    audience: Audience,
    from_addr: str,
    to_addrs: Sequence[str],
    message_id: str,
    in_reply_to: str | None,
    references: Sequence[str],
    date: datetime,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """multipart/mixed: the clear-signed text inline, then each attachment in base64. CRLF."""
    signed = signed_text.replace("\r\n", "\n")
    problems = _signed_text_problems(signed, doc, audience)
    headers: list[tuple[str, str]] = [
        ("From", from_addr),
        ("To", ", ".join(to_addrs)),
        ("Subject", subject(doc, audience)),
        ("Date", format_datetime(ensure_utc(date))),
        ("Message-ID", message_id),
    ]
    if in_reply_to is not None:
        headers.append(("In-Reply-To", in_reply_to))
    if references:
        headers.append(("References", " ".join(references)))
    if audience is Audience.PREDISCLOSURE:
        headers.append(("X-Embargoed-Until", iso_utc(doc.embargo_at)))
    problems += _header_problems([*headers, *extra_headers])
    if not to_addrs:
        problems.append("no recipient")
    for mid in (message_id, in_reply_to, *references):
        if mid is not None and not _MSGID_RE.fullmatch(mid):
            problems.append(f"message id {mid!r} is not <local@domain>")
    clash = sorted({n for n, _ in extra_headers if n.lower() in _OWN_HEADERS})
    if clash:
        problems.append(f"extra headers may not replace {', '.join(clash)}")
    if problems:
        raise AdvisoryFormatError(problems)
    raw = _serialise(signed, doc, [*headers, *extra_headers])
    _check_round_trip(raw, signed, doc, [*headers, *extra_headers])
    return raw


def _serialise(signed: str, doc: AdvisoryDoc, headers: Sequence[tuple[str, str]]) -> bytes:
    msg = EmailMessage(policy=email_policy.SMTP)
    for name, value in headers:
        msg[name] = value
    # 7bit keeps the signed bytes literally on the wire; otherwise
    # quoted-printable, which decodes back exactly and needs no 8BITMIME.
    plain = signed.isascii() and all(len(x) <= _SMTP_LINE_LIMIT for x in signed.split("\n"))
    msg.set_content(
        signed,
        subtype="plain",
        charset="utf-8",
        cte="7bit" if plain else "quoted-printable",
        disposition="inline",
    )
    files = attachments(doc)
    for name, content in files:
        msg.add_attachment(content, maintype="application", subtype="octet-stream", filename=name)
    if not msg.is_multipart():
        msg.make_mixed()  # recipients expect multipart/mixed even without attachments
    for part in msg.iter_parts():
        del part["MIME-Version"]  # belongs to the top level only
    # Derived from the content so that the same advisory gives the same bytes.
    digest = hashlib.sha256(signed.encode())
    for name, content in files:
        digest.update(name.encode() + b"\0" + content)
    msg.set_boundary(f"=_{digest.hexdigest()[:40]}")
    return msg.as_bytes()


def dated(raw: bytes, when: datetime) -> bytes:
    """The message with its Date field set to `when`, in place; every other byte kept.

    A public copy is dated at its release instant, not when its text was made weeks
    before (it would sort as old mail). The clear signature covers the text part
    only, so the signed bytes stay as they are and nothing is signed again."""
    fields, body = split_message(raw)
    line = encode_header("Date", format_datetime(ensure_utc(when)))
    return b"".join(line if field_name(f) == "date" else f for f in fields) + b"\r\n" + body


def _check_round_trip(
    raw: bytes, signed: str, doc: AdvisoryDoc, headers: Sequence[tuple[str, str]]
) -> None:
    """Parse what we wrote: no header may have grown or multiplied, no byte changed."""
    parsed = MessageView.parse(raw).email
    expected = [*(name.lower() for name, _ in headers), "content-type", "mime-version"]
    problems: list[str] = []
    if sorted(k.lower() for k in parsed) != sorted(expected):
        problems.append("serialised headers differ from those given")
    parts = list(parsed.iter_parts()) if parsed.is_multipart() else []
    # The parser keeps the wire's CRLF; gpg verifies canonical text alike.
    text = parts[0].get_content().replace("\r\n", "\n") if parts else None
    if text != signed:
        problems.append("signed text does not survive serialisation")
    got = [(p.get_filename(), p.get_payload(decode=True)) for p in parts[1:]]
    if got != list(attachments(doc)):
        problems.append("attachments do not survive serialisation")
    if problems:
        raise AdvisoryFormatError(problems)
