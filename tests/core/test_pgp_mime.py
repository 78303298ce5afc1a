"""PGP in e-mail: PGP/MIME and inline, signatures over the bytes as transmitted."""

from __future__ import annotations

import email
import quopri
from datetime import UTC, datetime
from pathlib import Path

import pytest

from listbot.core.errors import PGPError
from listbot.core.mail.pgp import Keyring
from listbot.core.mail.pgp_mime import (
    build_encrypted_mime,
    build_signed_mime,
    decrypt_message,
    split_multipart,
    verify_message,
)
from tests import pgp_fixtures
from tests.pgp_fixtures import PgpKeys, clearsign, detach_sign, encrypt_to, encrypt_without_mdc

pgp_template = pgp_fixtures.pgp_template
pgp_keys = pgp_fixtures.pgp_keys
pgp_home = pgp_fixtures.pgp_home

NOW = datetime.now(UTC)
HEAD = b"From: mod@example.org\r\nTo: discuss-moderation@lists.example.org\r\nSubject: Re: held\r\n"
# Odd but legal formatting that the email package would rewrite if it re-serialised.
ENTITY = (
    b"Content-Type:   text/plain;\r\n\tcharset=us-ascii\r\n"
    b"Content-Transfer-Encoding: 7bit\r\n\r\n"
    b"approve K7QX2\r\n\r\n-- \r\nModerator\r\n"
)


@pytest.fixture
def keyring(pgp_home: Path) -> Keyring:
    return Keyring(pgp_home)


async def _signed_mail(keyring: Keyring, signer: str, entity: bytes = ENTITY) -> bytes:
    signature = await keyring.sign_detached(entity, signer)
    return HEAD + b"MIME-Version: 1.0\r\n" + build_signed_mime(entity, signature, "seed-1")


async def test_pgp_mime_signed_round_trip(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    raw = await _signed_mail(keyring, pgp_keys.moderator)
    result = await verify_message(raw, keyring, [pgp_keys.moderator], NOW)
    assert result.valid, result.reason
    assert result.fingerprint == pgp_keys.moderator
    assert result.signed_content == ENTITY  # the bytes as transmitted, not re-serialised
    # the email package would indeed have changed them
    parsed = email.message_from_bytes(raw)
    assert parsed.get_payload()[0].as_bytes() != ENTITY


async def test_pgp_mime_signed_with_lf_line_endings(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    raw = (await _signed_mail(keyring, pgp_keys.moderator)).replace(b"\r\n", b"\n")
    result = await verify_message(raw, keyring, [pgp_keys.moderator], NOW)
    assert result.valid and result.signed_content == ENTITY


@pytest.mark.parametrize("offset", [0, 20, len(ENTITY) - 5])
async def test_one_byte_changed_in_signed_part(
    keyring: Keyring, pgp_keys: PgpKeys, offset: int
) -> None:
    raw = await _signed_mail(keyring, pgp_keys.moderator)
    at = raw.index(ENTITY) + offset
    changed = raw[:at] + bytes([raw[at] ^ 0x20]) + raw[at + 1 :]
    result = await verify_message(changed, keyring, [pgp_keys.moderator], NOW)
    assert not result.valid and result.signed_content is None


async def test_pgp_mime_signer_not_on_allowlist(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    raw = await _signed_mail(keyring, pgp_keys.member)
    result = await verify_message(raw, keyring, [pgp_keys.moderator], NOW)
    assert not result.valid and result.reason == "signer not on allowlist"


async def test_signed_part_beside_unsigned_part(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    signed = build_signed_mime(
        ENTITY, await keyring.sign_detached(ENTITY, pgp_keys.moderator), "inner"
    )
    raw = HEAD + (
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="outer"\r\n\r\n'
        b"--outer\r\n" + signed + b"\r\n--outer\r\n"
        b"Content-Type: text/plain\r\n\r\nreject K7QX2 instead\r\n--outer--\r\n"
    )
    result = await verify_message(raw, keyring, [pgp_keys.moderator], NOW)
    assert not result.valid and result.reason == "signed and unsigned parts mixed"


async def test_signed_part_as_only_part_of_a_wrapper(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    signed = build_signed_mime(
        ENTITY, await keyring.sign_detached(ENTITY, pgp_keys.moderator), "inner"
    )
    raw = HEAD + (
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="outer"\r\n\r\n'
        b"--outer\r\n" + signed + b"\r\n--outer--\r\n"
    )
    result = await verify_message(raw, keyring, [pgp_keys.moderator], NOW)
    assert not result.valid


async def test_pgp_mime_with_a_third_part(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    raw = await _signed_mail(keyring, pgp_keys.moderator)
    boundary = raw.split(b'boundary="')[1].split(b'"')[0]
    extra = b"--" + boundary + b"\r\nContent-Type: text/plain\r\n\r\nunsigned\r\n"
    raw = raw.replace(b"--" + boundary + b"--", extra + b"--" + boundary + b"--")
    result = await verify_message(raw, keyring, [pgp_keys.moderator], NOW)
    assert not result.valid and "exactly two parts" in result.reason


async def test_pgp_mime_wrapping_a_clear_signed_text_is_two_signatures(
    keyring: Keyring, pgp_home: Path, pgp_keys: PgpKeys
) -> None:
    inner = clearsign(pgp_home, b"approve K7QX2\n", pgp_keys.member).replace(b"\n", b"\r\n")
    entity = b"Content-Type: text/plain\r\n\r\n" + inner
    raw = await _signed_mail(keyring, pgp_keys.moderator, entity)
    result = await verify_message(raw, keyring, [pgp_keys.moderator, pgp_keys.member], NOW)
    assert not result.valid and result.reason == "more than one signature"


async def test_pgp_mime_signature_by_gpg_cli_verifies(
    keyring: Keyring, pgp_home: Path, pgp_keys: PgpKeys
) -> None:
    signature = detach_sign(pgp_home, ENTITY, pgp_keys.team)
    raw = HEAD + b"MIME-Version: 1.0\r\n" + build_signed_mime(ENTITY, signature, "x")
    assert (await verify_message(raw, keyring, [pgp_keys.team], NOW)).valid


async def test_inline_clear_signed_quoted_printable(
    keyring: Keyring, pgp_home: Path, pgp_keys: PgpKeys
) -> None:
    text = "approve K7QX2 — yes\n".encode()
    signed = clearsign(pgp_home, text, pgp_keys.moderator)
    qp = quopri.encodestring(signed).replace(b"\n", b"\r\n")
    assert b"=E2=80=94" in qp
    raw = HEAD + (
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + qp
    )
    result = await verify_message(raw, keyring, [pgp_keys.moderator], NOW)
    assert result.valid, result.reason
    assert result.signed_content == text


async def test_inline_clear_signed_with_unsigned_text(
    keyring: Keyring, pgp_home: Path, pgp_keys: PgpKeys
) -> None:
    signed = clearsign(pgp_home, b"approve K7QX2\n", pgp_keys.moderator)
    raw = HEAD + b"\r\nActually: reject K7QX2\r\n\r\n" + signed.replace(b"\n", b"\r\n")
    result = await verify_message(raw, keyring, [pgp_keys.moderator], NOW)
    assert not result.valid and result.reason == "unsigned text before the signed block"


async def test_inline_clear_signed_beside_html_alternative(
    keyring: Keyring, pgp_home: Path, pgp_keys: PgpKeys
) -> None:
    signed = clearsign(pgp_home, b"approve K7QX2\n", pgp_keys.moderator).replace(b"\n", b"\r\n")
    raw = HEAD + (
        b'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="alt"\r\n\r\n'
        b"--alt\r\nContent-Type: text/plain\r\n\r\n" + signed + b"\r\n--alt\r\n"
        b"Content-Type: text/html\r\n\r\n<p>reject K7QX2</p>\r\n--alt--\r\n"
    )
    result = await verify_message(raw, keyring, [pgp_keys.moderator], NOW)
    assert not result.valid and result.reason == "signed and unsigned parts mixed"


async def test_plain_unsigned_message(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    raw = HEAD + b"\r\napprove K7QX2\r\n"
    result = await verify_message(raw, keyring, [pgp_keys.moderator], NOW)
    assert not result.valid and result.reason == "unsigned"


async def test_repeated_content_type_is_ambiguous(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    raw = await _signed_mail(keyring, pgp_keys.moderator)
    raw = b"Content-Type: text/plain\r\n" + raw
    result = await verify_message(raw, keyring, [pgp_keys.moderator], NOW)
    assert not result.valid and result.reason == "ambiguous Content-Type"


def test_split_multipart_keeps_bytes_and_needs_close_delimiter() -> None:
    body = b"preamble\r\n--b \r\nA\r\n\r\n--b\r\nB\n--b--\r\nepilogue"
    assert split_multipart(body, "b") == [b"A\r\n", b"B"]
    assert split_multipart(b"--b\r\nA\r\n--b\r\nB\r\n", "b") is None
    assert split_multipart(b"--bb\r\nA\r\n--bb--\r\n", "b") is None


def test_build_signed_mime_refuses_bare_lf() -> None:
    with pytest.raises(PGPError):
        build_signed_mime(b"Content-Type: text/plain\n\nx\n", b"sig", "s")


# -- encryption ----------------------------------------------------------------


async def test_pgp_mime_encrypted_round_trip(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    inner = b"Content-Type: text/plain; charset=us-ascii\r\n\r\nEmbargoed advisory body\r\n"
    armored = await keyring.encrypt(inner, [pgp_keys.member], hidden_recipients=True)
    body = build_encrypted_mime(armored, "advisory-1-member")
    assert body == build_encrypted_mime(armored, "advisory-1-member")  # deterministic
    assert b"\n" not in body.replace(b"\r\n", b"")
    raw = HEAD + b"MIME-Version: 1.0\r\n" + body
    parsed = email.message_from_bytes(raw)
    assert parsed.get_content_type() == "multipart/encrypted"
    result = await decrypt_message(raw, keyring, [], NOW)
    assert result.ok and result.plaintext == inner and result.signature is None


async def test_pgp_mime_sign_then_encrypt(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    signature = await keyring.sign_detached(ENTITY, pgp_keys.moderator)
    signed = build_signed_mime(ENTITY, signature, "s")
    armored = await keyring.encrypt(signed, [pgp_keys.team])
    raw = HEAD + build_encrypted_mime(armored, "e")
    result = await decrypt_message(raw, keyring, [pgp_keys.moderator], NOW)
    assert result.ok and result.signature is not None
    assert result.signature.valid and result.signature.signed_content == ENTITY


async def test_pgp_mime_combined_sign_and_encrypt(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    armored = await keyring.encrypt(ENTITY, [pgp_keys.team], sign_with=pgp_keys.moderator)
    raw = HEAD + build_encrypted_mime(armored, "e")
    result = await decrypt_message(raw, keyring, [pgp_keys.moderator], NOW)
    assert result.ok and result.signature is not None and result.signature.valid


async def test_inline_encrypted(keyring: Keyring, pgp_home: Path, pgp_keys: PgpKeys) -> None:
    armored = encrypt_to(pgp_home, b"report: overflow in parser\n", pgp_keys.team)
    raw = HEAD + b"\r\n" + armored.replace(b"\n", b"\r\n")
    result = await decrypt_message(raw, keyring, [], NOW)
    assert result.ok and result.plaintext == b"report: overflow in parser\n"


async def test_inline_encrypted_with_unencrypted_text(
    keyring: Keyring, pgp_home: Path, pgp_keys: PgpKeys
) -> None:
    armored = encrypt_to(pgp_home, b"secret\n", pgp_keys.team)
    raw = HEAD + b"\r\nPlease read:\r\n" + armored.replace(b"\n", b"\r\n")
    result = await decrypt_message(raw, keyring, [], NOW)
    assert not result.ok and result.plaintext is None


async def test_inline_no_mdc_yields_no_plaintext(
    keyring: Keyring, pgp_home: Path, pgp_keys: PgpKeys
) -> None:
    armored = encrypt_without_mdc(pgp_home, b"unprotected\n", pgp_keys.team)
    raw = HEAD + b"\r\n" + armored.replace(b"\n", b"\r\n")
    result = await decrypt_message(raw, keyring, [], NOW)
    assert not result.ok and result.plaintext is None


async def test_pgp_mime_encrypted_to_someone_else(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    armored = encrypt_to(pgp_keys.foreign_home, b"x\n", pgp_keys.outsider)
    raw = HEAD + build_encrypted_mime(armored, "e")
    result = await decrypt_message(raw, keyring, [], NOW)
    assert not result.ok and result.plaintext is None and result.reason == "no secret key"


async def test_unencrypted_message(keyring: Keyring) -> None:
    result = await decrypt_message(HEAD + b"\r\nhello\r\n", keyring, [], NOW)
    assert not result.ok and result.reason == "not encrypted"
