"""Every decision listbot takes about received addresses and headers it writes.

Pure functions only. The interpreter here predates the fixes for CVE-2023-27043
(``email.utils.parseaddr``/``getaddresses`` return a different address than
the one a mail server would use) and CVE-2024-6923 (an encoded newline in a
parsed header becomes a real header line when written out), so nothing here
uses ``email.utils`` for decisions, and no CR or LF reaches a header we write.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from email import _header_value_parser as hvp
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser

from listbot.core.errors import MessageRejected

# Longest From value we parse: the stdlib parser is recursive and super-linear
# on hostile input, and no honest From comes near this.
MAX_ADDRESS_HEADER = 2048
MAX_HEADER_VALUE = 998
# encode_header accepts longer values (References) and folds them.
MAX_ENCODED_VALUE = 16000
FOLD_WIDTH = 78
# An unbreakable ASCII word longer than this is carried as encoded-words so no
# line passes the 998-octet limit of RFC 5322.
MAX_PLAIN_WORD = 900

Headers = Message | Iterable[tuple[str, str]]


class AddressError(ValueError):
    """A header or string that is not exactly one acceptable mailbox."""


@dataclass(frozen=True)
class Mailbox:
    display_name: str
    local: str
    domain: str  # lowercase, A-label (ASCII) form

    @property
    def addr_spec(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def normalized(self) -> str:
        """The form addresses are compared in.

        The local part is lowercased although RFC 5321 lets a server treat case
        as significant: in practice no server does, and refusing a member who
        typed ``Security@vendor.example`` is a worse failure than confusing two
        mailboxes of one domain that differ only in case (the domain owner
        controls both anyway).
        """
        return f"{self.local.lower()}@{self.domain}"


# RFC 5322 dot-atom. Non-ASCII local parts are refused (the header parser
# flags them as a defect): no member role address needs one.
_LOCAL_RE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_FOLD_RE = re.compile(r"\r?\n(?=[ \t])")
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _ascii_domain(domain: str) -> str:
    if not domain or domain.startswith("["):
        # Domain literals are legal but no member role address uses one, and
        # they would need their own comparison rules.
        raise AddressError("domain literal or empty domain")
    try:
        ascii_form = domain.encode("idna").decode("ascii").lower()
    except (UnicodeError, ValueError) as exc:
        raise AddressError("domain is not a valid IDNA name") from exc
    if len(ascii_form) > 253 or not all(_LABEL_RE.fullmatch(x) for x in ascii_form.split(".")):
        raise AddressError("domain is not a host name")
    return ascii_form


def _walk(token: object) -> Iterable[hvp.TokenList]:
    if isinstance(token, hvp.TokenList):
        yield token
        for child in token:
            yield from _walk(child)


def _check_tree(value: str) -> hvp.TokenList:
    """Checks the header policy's parser cannot express through ``.defects``."""
    tree, rest = hvp.get_address_list(value)
    if rest:
        raise AddressError("unparsed text after the address")
    mailboxes = 0
    for tok in _walk(tree):
        kind = tok.token_type
        if kind in ("group", "obs-route", "invalid-mailbox", "domain-literal"):
            raise AddressError(f"{kind} not allowed")
        if kind == "mailbox":
            mailboxes += 1
        # An address hidden in a comment or an encoded-word is what a human (or
        # a sloppier parser downstream) may take for the sender.
        if kind in ("comment", "encoded-word") and any(c in str(tok) for c in "@<>"):
            raise AddressError(f"address-like text in {kind}")
    if mailboxes != 1:
        raise AddressError("not exactly one mailbox")
    return tree


def parse_single_mailbox(value: str) -> Mailbox:
    """Exactly one mailbox, no group, no route, no parse defect; else AddressError."""
    if not isinstance(value, str):
        raise AddressError("not a string")
    if len(value) > MAX_ADDRESS_HEADER:
        raise AddressError("header too long")
    return _parse_single_mailbox(value)


# The stdlib's RFC 5322 parser is the costliest step of a post (each RCPT, each From),
# and the same few addresses recur. Pure and immutable, so a bounded cache is safe;
# refusals raise and are never cached.
@functools.lru_cache(maxsize=4096)
def _parse_single_mailbox(value: str) -> Mailbox:
    if _CONTROL_RE.search(value) or any("\ud800" <= c <= "\udfff" for c in value):
        raise AddressError("control character in address header")
    try:
        header = policy.default.header_factory("From", value)
        _check_tree(value)
        groups = header.groups
        defects = header.defects
    except AddressError:
        raise
    except Exception as exc:  # the stdlib parser raises odd things on odd input
        raise AddressError("unparseable address header") from exc
    if defects:
        raise AddressError("address header has parse defects")
    if len(groups) != 1 or groups[0].display_name is not None or len(groups[0].addresses) != 1:
        raise AddressError("not exactly one mailbox")
    address = groups[0].addresses[0]
    display, local = address.display_name, address.username
    if any(c in display for c in "<>") or _has_unsafe_char(display):
        raise AddressError("display name looks like an address or has controls")
    if not _LOCAL_RE.fullmatch(local) or len(local.encode("utf-8")) > 64:
        raise AddressError("local part is not a dot-atom")
    return Mailbox(display_name=display, local=local, domain=_ascii_domain(address.domain))


def _has_unsafe_char(text: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") for c in text)


def normalize_address(text: str) -> str:
    """A bare addr-spec (config, RCPT TO) in normalised form; ValueError otherwise."""
    if not isinstance(text, str) or not text or text != text.strip() or any(
        c in text for c in " \t<>()\","
    ):
        raise AddressError("not a bare addr-spec")
    return parse_single_mailbox(text).normalized


def _raw_items(headers: Headers) -> list[tuple[str, str]]:
    # raw_items keeps each value as received; iterating a policy.default
    # message would hand back already-decoded header objects instead.
    items = headers.raw_items() if isinstance(headers, Message) else headers
    return [(str(name), str(value)) for name, value in items]


def _values(items: list[tuple[str, str]], name: str) -> list[str]:
    wanted = name.lower()
    return [value for key, value in items if key.strip().lower() == wanted]


def _unfold(value: str) -> str | None:
    """Unfolded text of a raw value, UTF-8 bytes smuggled as surrogates restored."""
    try:
        value = value.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError:
        return None
    return _FOLD_RE.sub("", value).strip(" \t")


def sender_of(msg_headers: Headers) -> Mailbox | None:
    """The one From mailbox, or None: the caller then treats the sender as nonmember."""
    try:
        values = _values(_raw_items(msg_headers), "from")
        if len(values) != 1:
            return None
        unfolded = _unfold(values[0])
        return None if unfolded is None else parse_single_mailbox(unfolded)
    except Exception:
        return None


def check_line_endings(data: bytes) -> None:
    """Refuse bare CR, bare LF and NUL: the SMTP-smuggling defence."""
    if b"\x00" in data:
        raise MessageRejected("NUL byte in message")
    crlf = data.count(b"\r\n")
    if data.count(b"\r") != crlf or data.count(b"\n") != crlf:
        raise MessageRejected("bare CR or LF in message")


def _clean(value: str, limit: int) -> str:
    chars = []
    for c in value:
        category = unicodedata.category(c)
        if category in ("Cc", "Zl", "Zp") or c in _BIDI:
            chars.append(" ")
        elif category == "Cs":
            chars.append("\ufffd")
        else:
            chars.append(c)
    return " ".join("".join(chars).split())[:limit].rstrip()


def safe_header_value(value: str, *, max_length: int = MAX_HEADER_VALUE) -> str:
    """A value fit for any header listbot writes; never contains CR or LF.

    Encoded-words are decoded first, because that is where a received header
    hides its newlines (CVE-2024-6923); the decoded text is then cleaned.
    """
    text = _clean(str(value), MAX_ENCODED_VALUE)
    return _clean(_decode_words(text) if "=?" in text else text, max_length)


def _decode_words(text: str) -> str:
    try:
        return str(policy.default.header_factory("Subject", text))
    except Exception:  # keep the undecoded text: the caller cleans it anyway
        return text


_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,75}")
_Q_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_EW_ROOM = 75 - len("=?utf-8?b?") - len("?=")


def _q_char(c: str) -> str:
    if c == " ":
        return "_"
    if c in _Q_SAFE:
        return c
    return "".join(f"={b:02X}" for b in c.encode("utf-8"))


def _b_len(n_bytes: int) -> int:
    return 4 * ((n_bytes + 2) // 3)


def _encoded_words(text: str) -> list[str]:
    """Encoded-words for text; never splits a character across two words."""
    import base64

    raw = text.encode("utf-8")
    use_q = sum(len(_q_char(c)) for c in text) <= _b_len(len(raw))
    words: list[str] = []
    chunk = ""
    for c in text:
        candidate = chunk + c
        size = (len("".join(map(_q_char, candidate))) if use_q
                else _b_len(len(candidate.encode("utf-8"))))
        if size > _EW_ROOM and chunk:
            words.append(chunk)
            chunk = c
        else:
            chunk = candidate
    words.append(chunk)
    if use_q:
        return ["=?utf-8?q?" + "".join(map(_q_char, w)) + "?=" for w in words]
    return ["=?utf-8?b?" + base64.b64encode(w.encode("utf-8")).decode("ascii") + "?="
            for w in words]


def _needs_encoding(word: str) -> bool:
    return not word.isascii() or "=?" in word or len(word) > MAX_PLAIN_WORD


def _tokens(text: str) -> list[str]:
    """Words to write, separated on output by one space or a fold.

    A run of words needing encoding is encoded as a whole, its inner spaces
    inside the encoded-words, since a decoder drops the whitespace between two
    adjacent encoded-words.
    """
    out: list[str] = []
    run: list[str] = []
    for word in [*text.split(" "), None]:
        if word is not None and _needs_encoding(word):
            run.append(word)
            continue
        if run:
            out.extend(_encoded_words(" ".join(run)))
            run = []
        if word is not None:
            out.append(word)
    return out


def _verify_one_header(name: str, data: bytes) -> None:
    if not data.endswith(b"\r\n") or not data.isascii():
        raise ValueError("header failed verification: ending or non-ASCII")
    lines = data[:-2].split(b"\r\n")
    if not lines[0].startswith(name.encode("ascii") + b":"):
        raise ValueError("header failed verification: name")
    for i, line in enumerate(lines):
        if b"\r" in line or b"\n" in line or len(line) > 998:
            raise ValueError("header failed verification: line")
        if i and (not line.startswith(b" ") or not line.strip()):
            raise ValueError("header failed verification: continuation")


def encode_header(name: str, value: str) -> bytes:
    """One header line ``Name: value`` with CRLF, folded, verified to be one header.

    The value is written as text: ASCII words as they are, non-ASCII words (and
    anything that would decode as an encoded-word) as UTF-8 encoded-words, so a
    reader decodes exactly the cleaned text. Address headers need their value
    already formatted by the caller.
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError("invalid header name")
    text = _clean(str(value), MAX_ENCODED_VALUE)
    line = name + ":"
    lines: list[str] = []
    first = True
    for token in _tokens(text) if text else []:
        if first or len(line) + 1 + len(token) <= FOLD_WIDTH:
            line += " " + token
        else:
            lines.append(line)
            line = " " + token
        first = False
    lines.append(line)
    data = ("\r\n".join(lines) + "\r\n").encode("ascii")
    _verify_one_header(name, data)
    parsed = BytesHeaderParser(policy=policy.default).parsebytes(data + b"\r\n")
    if [k.lower() for k in parsed] != [name.lower()]:
        raise ValueError("header failed verification: reparse")
    return data


# --- RFC 3834 --------------------------------------------------------------

_ROBOT_LOCALS = frozenset({"mailer-daemon", "listserv", "majordomo", "noreply", "no-reply"})
_LIST_HEADERS = ("list-id", "list-unsubscribe", "list-post")
_AUTOREPLY_HEADERS = ("x-autoreply", "x-autorespond", "x-autogenerated", "x-autoreply-from")


def _first_token(value: str) -> str:
    value = re.sub(r"\([^()]*\)", " ", value)
    return value.split(";", 1)[0].strip().lower()


def _robot_local(address: str) -> bool:
    local = address.strip().strip("<>").rsplit("@", 1)[0].lower()
    return (local in _ROBOT_LOCALS or local.startswith("owner-")
            or local.endswith(("-request", "-bounces")))


def _list_id(value: str) -> str:
    found = re.findall(r"<([^<>]*)>", value)
    return (found[-1] if found else value).strip().lower()


def auto_submitted_reason(headers: Headers) -> str | None:
    """The header evidence that a message was written by a program."""
    items = _raw_items(headers)
    for value in _values(items, "auto-submitted"):
        if _first_token(value) != "no":
            return "auto-submitted"
    for name in _AUTOREPLY_HEADERS:
        if _values(items, name):
            return "autoreply header"
    for value in _values(items, "precedence"):
        if _first_token(value) in ("bulk", "list", "junk", "auto_reply"):
            return "precedence bulk/list/junk"
    for value in _values(items, "x-auto-response-suppress"):
        tokens = {t.strip().lower() for t in value.split(",")}
        if tokens & {"all", "oof", "autoreply"}:
            return "auto-response suppressed"
    for value in _values(items, "content-type"):
        if _first_token(value) in ("multipart/report", "message/delivery-status"):
            return "delivery or disposition report"
    return None


def should_not_autoreply(
    headers: Headers,
    *,
    own_list_ids: Collection[str],
    own_loop: str,
    envelope_sender: str | None,
) -> str | None:
    """Why RFC 3834 forbids an automatic reply to this message, or None."""
    items = _raw_items(headers)
    # Every reason is a non-empty string, so "or" stops at the first one.
    return (
        _envelope_reason(items, envelope_sender)
        or auto_submitted_reason(items)
        or _list_reason(items, own_list_ids, own_loop)
        or _from_reason(items)
    )


def _envelope_reason(items: list[tuple[str, str]], envelope_sender: str | None) -> str | None:
    # None means the source has no envelope (IMAP); "" is the null sender.
    if envelope_sender is not None:
        if envelope_sender.strip() in ("", "<>"):
            return "null envelope sender"
        if _robot_local(envelope_sender):
            return "envelope sender is a robot"
    for value in _values(items, "return-path"):
        if value.strip() in ("<>", "") or _robot_local(value):
            return "null or robot Return-Path"
    return None


def _list_reason(
    items: list[tuple[str, str]], own_list_ids: Collection[str], own_loop: str
) -> str | None:
    loop = own_loop.strip().strip("<>").lower()
    if any(v.strip().strip("<>").lower() == loop for v in _values(items, "x-loop")):
        return "our own X-Loop"
    ours = {_list_id(x) for x in own_list_ids}
    if any(_list_id(v) in ours for v in _values(items, "list-id")):
        return "our own List-Id"
    if any(_values(items, name) for name in _LIST_HEADERS):
        return "mail from a list"
    return None


def _from_reason(items: list[tuple[str, str]]) -> str | None:
    # Replying to a From we cannot parse strictly is how backscatter starts.
    sender = sender_of(items)
    if sender is None:
        return "From is not exactly one valid mailbox"
    if _robot_local(sender.addr_spec):
        return "From is a robot"
    return None

