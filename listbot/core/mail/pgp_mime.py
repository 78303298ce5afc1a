"""PGP inside e-mail (RFC 3156 PGP/MIME and inline PGP), around a `Keyring`.

A multipart/signed signature covers the first part's bytes exactly as they were
transmitted, so those bytes are cut out of the raw message by its boundary, never
re-serialised through the email package (docs/design.md "Forward bytes"). Only a
signature that covers the whole message counts: a signed part beside unsigned content, or two
signatures, makes the message unsigned (docs/design.md "PGP is checked, not trusted").
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from datetime import datetime
from email.message import Message

from listbot.core.errors import PGPError
from listbot.core.mail.pgp import Keyring
from listbot.core.mail.pgp_status import Decryption, Verification
from listbot.core.mail.view import MessageView, parse_entity, parse_header_block, split_head

_CLEAR_BEGIN = b"-----BEGIN PGP SIGNED MESSAGE-----"
_MESSAGE_BEGIN = b"-----BEGIN PGP MESSAGE-----"
_MESSAGE_END = b"-----END PGP MESSAGE-----"
_BARE_LF = re.compile(rb"(?<!\r)\n")


def _unsigned(reason: str, fingerprint: str | None = None) -> Verification:
    return Verification(False, fingerprint, reason, None)


def _failed(reason: str) -> Decryption:
    return Decryption(False, None, reason, None)


def split_entity(raw: bytes) -> tuple[Message, bytes]:
    """Parsed headers of a MIME entity, and its body bytes untouched."""
    head, body = split_head(raw)
    return parse_header_block(head + b"\r\n\r\n"), body


def _content_type(headers: Message) -> str | None:
    """Lower-case type/subtype, or None when the header is repeated (ambiguous)."""
    if len(headers.get_all("Content-Type", [])) > 1:
        return None
    return headers.get_content_type()


def _param(headers: Message, name: str) -> str | None:
    value = headers.get_param(name)
    return value if isinstance(value, str) else None


def split_multipart(body: bytes, boundary: str) -> list[bytes] | None:
    """The parts between delimiter lines, as transmitted; None if not well formed.

    The line break before a delimiter belongs to the delimiter (RFC 2046 §5.1.1).
    """
    delimiter = b"--" + boundary.encode("ascii", "replace")
    parts: list[bytes] = []
    start: int | None = None
    offset = 0
    for line in body.splitlines(keepends=True):
        bare = line.rstrip(b"\r\n").rstrip(b" \t")
        if bare in (delimiter, delimiter + b"--"):
            if start is not None:
                end = offset
                end -= 2 if body[:end].endswith(b"\r\n") else 1 if body[:end].endswith(b"\n") else 0
                parts.append(body[start : max(start, end)])
            if bare.endswith(b"--") and bare != delimiter:
                return parts
            start = offset + len(line)
        offset += len(line)
    return None  # no close delimiter


def canonical(data: bytes) -> bytes:
    """Line endings as CRLF, the form RFC 3156 signatures are computed over."""
    return _BARE_LF.sub(b"\r\n", data)


def _subparts(message: Message) -> list[Message]:
    payload = message.get_payload()
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def _decoded_payload(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _signature_markers(message: Message) -> tuple[int, int]:
    """(signed components, other non-empty leaf parts) anywhere in the tree."""
    if message.get_content_type() == "multipart/signed":
        return 1, 0
    if message.is_multipart():
        signed = other = 0
        for sub in _subparts(message):
            s, o = _signature_markers(sub)
            signed, other = signed + s, other + o
        return signed, other
    payload = _decoded_payload(message)
    if payload.count(_CLEAR_BEGIN):
        return payload.count(_CLEAR_BEGIN), 0
    return 0, 1 if payload.strip() else 0


async def verify_message(
    raw: bytes, keyring: Keyring, allowlist: Collection[str], now: datetime
) -> Verification:
    """Check that one allowlisted signature covers the whole message body."""
    return await verify_view(MessageView.parse(raw), keyring, allowlist, now)


async def verify_view(
    view: MessageView, keyring: Keyring, allowlist: Collection[str], now: datetime
) -> Verification:
    """`verify_message` on a parsed message; gpg runs at most once per view and
    allowlist, later askers get the same result."""
    key = ("verify", id(keyring), tuple(sorted(allowlist)))
    return await view.once(key, lambda: _verify(view, keyring, allowlist, now))


async def _verify(
    view: MessageView, keyring: Keyring, allowlist: Collection[str], now: datetime
) -> Verification:
    ctype = _content_type(view.tree)
    if ctype is None:
        return _unsigned("ambiguous Content-Type")
    if ctype == "multipart/signed":
        return await _verify_pgp_mime(view.tree, view.body, keyring, allowlist, now)
    if ctype == "text/plain":
        return await keyring.verify_clearsigned(_decoded_payload(view.tree), allowlist, now)
    return _nested_verdict(view.tree)


def _nested_verdict(message: Message) -> Verification:
    """Signatures below the top level never count; say why."""
    signed, other = _signature_markers(message)
    if signed == 0:
        return _unsigned("unsigned")
    if signed > 1:
        return _unsigned("more than one signature")
    if other:
        return _unsigned("signed and unsigned parts mixed")
    return _unsigned("signature not at the top level of the message")


async def _verify_pgp_mime(
    headers: Message, body: bytes, keyring: Keyring, allowlist: Collection[str], now: datetime
) -> Verification:
    boundary = _param(headers, "boundary")
    protocol = (_param(headers, "protocol") or "").lower()
    if not boundary or protocol != "application/pgp-signature":
        return _unsigned("not a PGP/MIME signed message")
    parts = split_multipart(body, boundary)
    if parts is None or len(parts) != 2:
        return _unsigned("PGP/MIME signed message without exactly two parts")
    sig_headers, _ = split_entity(parts[1])
    if _content_type(sig_headers) != "application/pgp-signature":
        return _unsigned("second part is not a PGP signature")
    signature = _decoded_payload(parse_entity(parts[1]))
    signed = canonical(parts[0])
    inner_signed, _ = _signature_markers(parse_entity(signed))
    if inner_signed:
        return _unsigned("more than one signature")
    return await keyring.verify_detached(signed, signature, allowlist, now)


async def decrypt_message(
    raw: bytes, keyring: Keyring, allowlist: Collection[str], now: datetime
) -> Decryption:
    """Decrypt a PGP/MIME or inline-PGP message; a signature inside is checked too.

    For PGP/MIME the plaintext is the inner MIME entity; for inline PGP, the text.
    """
    return await decrypt_view(MessageView.parse(raw), keyring, allowlist, now)


async def decrypt_view(
    view: MessageView, keyring: Keyring, allowlist: Collection[str], now: datetime
) -> Decryption:
    """`decrypt_message` on a parsed message."""
    message = view.tree
    ctype = _content_type(message)
    if ctype == "multipart/encrypted":
        ciphertext = _pgp_mime_ciphertext(message)
        if ciphertext is None:
            return _failed("not a PGP/MIME encrypted message")
    elif ctype == "text/plain":
        ciphertext = _decoded_payload(message)
        stripped = ciphertext.strip()
        if not stripped.startswith(_MESSAGE_BEGIN) or stripped.count(_MESSAGE_BEGIN) != 1:
            return _failed(
                "not encrypted"
                if _MESSAGE_BEGIN not in stripped
                else ("encrypted and unencrypted parts mixed")
            )
        if not stripped.endswith(_MESSAGE_END):
            return _failed("encrypted and unencrypted parts mixed")
    else:
        return _failed("not encrypted")
    result = await keyring.decrypt(ciphertext, allowlist, now)
    if not result.ok or result.plaintext is None:
        return result
    return await _with_inner_signature(result, ctype, keyring, allowlist, now)


def _pgp_mime_ciphertext(message: Message) -> bytes | None:
    protocol = (_param(message, "protocol") or "").lower()
    parts = _subparts(message)
    if protocol != "application/pgp-encrypted" or len(parts) != 2:
        return None
    control, data = parts
    if control.get_content_type() != "application/pgp-encrypted":
        return None
    if b"Version: 1" not in _decoded_payload(control):
        return None
    if data.get_content_type() != "application/octet-stream":
        return None
    return _decoded_payload(data)


async def _with_inner_signature(
    result: Decryption,
    outer_type: str,
    keyring: Keyring,
    allowlist: Collection[str],
    now: datetime,
) -> Decryption:
    """Sign-then-encrypt nests the signature inside the plaintext: check it as well."""
    plaintext = result.plaintext or b""
    if outer_type == "text/plain":
        nested = _CLEAR_BEGIN in plaintext
        inner = await keyring.verify_clearsigned(plaintext, allowlist, now) if nested else None
    else:
        inner_view = MessageView.parse(plaintext)
        signed, _ = _signature_markers(inner_view.tree)
        nested = signed > 0
        inner = await verify_view(inner_view, keyring, allowlist, now) if nested else None
    if inner is None:
        return result
    if result.signature is not None:
        return Decryption(True, plaintext, result.reason, _unsigned("more than one signature"))
    return Decryption(True, plaintext, result.reason, inner)


def _boundary(seed: str, content: bytes) -> str:
    digest = hashlib.sha256(seed.encode("utf-8") + b"\0" + content).hexdigest()[:32]
    boundary = f"=_listbot_{digest}"
    if boundary.encode("ascii") in content:
        raise PGPError("boundary collides with content")
    return boundary


def build_encrypted_mime(armored_ciphertext: bytes, boundary_seed: str) -> bytes:
    """Content-Type header and body of a multipart/encrypted entity (RFC 3156 §4), CRLF."""
    if not armored_ciphertext.lstrip().startswith(_MESSAGE_BEGIN):
        raise PGPError("not an armored PGP message")
    armored = canonical(armored_ciphertext.strip())
    b = _boundary(boundary_seed, armored).encode("ascii")
    return b"".join((
        b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";\r\n',
        b' boundary="', b, b'"\r\n',
        b"\r\n",
        b"This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n",
        b"--", b, b"\r\n",
        b"Content-Type: application/pgp-encrypted\r\n",
        b"Content-Description: PGP/MIME version identification\r\n",
        b"\r\n",
        b"Version: 1\r\n",
        b"\r\n",
        b"--", b, b"\r\n",
        b'Content-Type: application/octet-stream; name="encrypted.asc"\r\n',
        b"Content-Description: OpenPGP encrypted message\r\n",
        b'Content-Disposition: inline; filename="encrypted.asc"\r\n',
        b"\r\n",
        armored, b"\r\n",
        b"--", b, b"--\r\n",
    ))  # fmt: skip


def build_signed_mime(
    entity: bytes, armored_signature: bytes, boundary_seed: str, micalg: str = "pgp-sha256"
) -> bytes:
    """Content-Type header and body of a multipart/signed entity (RFC 3156 §5), CRLF.

    `entity` must be the exact CRLF bytes the detached signature was made over.
    """
    if _BARE_LF.search(entity):
        raise PGPError("signed entity must use CRLF line endings")
    if not re.fullmatch(r"pgp-[a-z0-9]+", micalg):
        raise PGPError("bad micalg")
    signature = canonical(armored_signature.strip())
    b = _boundary(boundary_seed, entity + signature).encode("ascii")
    return b"".join((
        b'Content-Type: multipart/signed; micalg="', micalg.encode("ascii"), b'";\r\n',
        b' protocol="application/pgp-signature"; boundary="', b, b'"\r\n',
        b"\r\n",
        b"This is an OpenPGP/MIME signed message (RFC 4880 and 3156)\r\n",
        b"--", b, b"\r\n",
        entity, b"\r\n",
        b"--", b, b"\r\n",
        b'Content-Type: application/pgp-signature; name="signature.asc"\r\n',
        b"Content-Description: OpenPGP digital signature\r\n",
        b'Content-Disposition: attachment; filename="signature.asc"\r\n',
        b"\r\n",
        signature, b"\r\n",
        b"--", b, b"--\r\n",
    ))  # fmt: skip
