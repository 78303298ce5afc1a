"""Strict address parsing: exactly one acceptable mailbox, or AddressError.

Pure functions only. The interpreter here predates the fix for CVE-2023-27043
(``email.utils.parseaddr``/``getaddresses`` return a different address than
the one a mail server would use), so nothing here uses ``email.utils`` for
decisions.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from email import _header_value_parser as hvp
from email import policy
from email.message import Message

# Longest From value we parse: the stdlib parser is recursive and super-linear
# on hostile input, and no honest From comes near this.
MAX_ADDRESS_HEADER = 2048

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


def raw_header_items(headers: Headers) -> list[tuple[str, str]]:
    # raw_items keeps each value as received; iterating a policy.default
    # message would hand back already-decoded header objects instead.
    items = headers.raw_items() if isinstance(headers, Message) else headers
    return [(str(name), str(value)) for name, value in items]


def header_values(items: list[tuple[str, str]], name: str) -> list[str]:
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
        values = header_values(raw_header_items(msg_headers), "from")
        if len(values) != 1:
            return None
        unfolded = _unfold(values[0])
        return None if unfolded is None else parse_single_mailbox(unfolded)
    except Exception:
        return None
