"""Moderator replies that must act, and the many that must not."""

from __future__ import annotations

import base64
import hashlib
import math
import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listbot.core.config.addresses import REPLY_TOKEN_CHARS
from listbot.moderation.commands import (
    Command,
    Ignored,
    command_source,
    parse_reply,
)
from listbot.moderation.decisions import new_reply_token, token_digest

VERBS = ("approve", "reject", "discard", "accept")
HEAD = (
    b"From: Moderator <mod@example.org>\r\n"
    b"To: discuss-moderation+tok@lists.example.org\r\n"
    b"Subject: Re: held message\r\n"
)


def plain(body: str, extra: bytes = b"") -> bytes:
    return (
        HEAD + extra + b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        + body.replace("\n", "\r\n").encode()
    )


def multipart(subtype: str, parts: list[bytes], boundary: str = "BOUNDARY") -> bytes:
    out = HEAD + f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode()
    out += b"preamble approve\r\n"
    for part in parts:
        out += f"--{boundary}\r\n".encode() + part + b"\r\n"
    return out + f"--{boundary}--\r\nepilogue approve\r\n".encode()


def part(ctype: str, body: str, extra: str = "") -> bytes:
    return f"Content-Type: {ctype}\r\n{extra}\r\n{body}".replace("\n", "\r\n").replace(
        "\r\r\n", "\r\n"
    ).encode()


# --- tokens --------------------------------------------------------------------


def test_token_alphabet_length_and_entropy() -> None:
    tokens = {new_reply_token() for _ in range(200)}
    assert len(tokens) == 200
    alphabet = set(string.ascii_lowercase + "234567")
    for token in tokens:
        assert len(token) == REPLY_TOKEN_CHARS == 26  # fits a 64-octet local part
        assert set(token) <= alphabet
        assert token == token.lower()  # survives the case folding of addresses
    assert 26 * math.log2(len(alphabet)) >= 128
    # The bits really are random: every alphabet position gets used.
    assert set("".join(tokens)) == alphabet


def test_token_digest_is_sha256_and_never_the_token() -> None:
    token = new_reply_token()
    digest = token_digest(token)
    assert digest == hashlib.sha256(token.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert token not in digest


# --- parse_reply: what acts ------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "verb", "argument"),
    [
        ("approve\n", "approve", ""),
        ("Approve.\n", "approve", ""),
        ("  APPROVE!\n", "approve", ""),
        ("\n\n   \ndiscard\n", "discard", ""),
        ("accept\n", "accept", ""),
        ("reject\n", "reject", ""),
        ("Reject: off topic for this list\n", "reject", "off topic for this list"),
        ("reject spam\n\nThanks,\nMod\n", "reject", "spam"),
        ("approve\n> reject\n", "approve", ""),
        ("On Mon, 1 Jan 2024, Bot wrote:\n> reject\n> reject\n\nApprove\n", "approve", ""),
        ("Am Montag schrieb Bot:\n> reject\n\napprove\n", "approve", ""),
        ("\ufeffapprove\n", "approve", ""),
    ],
)
def test_commands_that_act(body: str, verb: str, argument: str) -> None:
    result = parse_reply(plain(body), VERBS)
    assert isinstance(result, Command)
    assert (result.verb, result.argument) == (verb, argument)
    assert result.source_line.lower().lstrip("\ufeff").startswith(verb)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("> approve\n", "no command"),
        ("   > approve\n>> approve\n", "no command"),
        ("On Tue, Bot wrote:\n> approve\n", "no command"),
        ("-- \napprove\n", "no command"),
        ("--\napprove\n", "no command"),
        ("-----Original Message-----\napprove\n", "no command"),
        ("", "no command"),
        ("I am out of office until Monday.\napprove\n", "first line is not a command"),
        ("I am out of office\n", "first line is not a command"),
        ("Approve? No, reject\n", "first line is not a command"),
        ("approve please\n", "first line is not a command"),
        ("approve, then reject\n", "first line is not a command"),
        ("approved\n", "first line is not a command"),
        ("disapprove\n", "first line is not a command"),
        ("rejectx\n", "first line is not a command"),
        ("\u0430pprove\n", "first line is not a command"),  # Cyrillic a
        ("\u200bapprove\n", "first line is not a command"),
        ("Thanks!\napprove\n", "first line is not a command"),
    ],
)
def test_replies_that_do_not_act(body: str, reason: str) -> None:
    assert parse_reply(plain(body), VERBS) == Ignored(reason)


def test_raw_utf8_headers_do_not_hide_the_command() -> None:
    raw = plain("approve\n", "X-Note: Jörg\r\nSubject: Grüße\r\n".encode())
    assert parse_reply(raw, VERBS) == Command("approve", "", "approve")


def test_verb_not_allowed_here() -> None:
    assert parse_reply(plain("accept\n"), ("approve", "reject", "discard")) == Ignored(
        "command not allowed here"
    )
    assert isinstance(parse_reply(plain("Accept\n"), ("ACCEPT",)), Command)


def test_reject_reason_is_cleaned_and_bounded() -> None:
    result = parse_reply(plain("reject " + "x\x1b[31m" * 400 + "\n"), VERBS)
    assert isinstance(result, Command)
    assert "\x1b" not in result.argument
    assert len(result.argument) <= 1000


@pytest.mark.parametrize(
    "extra",
    [b"Auto-Submitted: auto-replied\r\n", b"X-Autoreply: yes\r\n", b"Precedence: junk\r\n"],
)
def test_automatic_replies_are_ignored_even_with_a_verb(extra: bytes) -> None:
    assert parse_reply(plain("approve\n", extra), VERBS) == Ignored("automatic reply")


# --- parse_reply: MIME structure ------------------------------------------------


def test_html_only_is_ignored() -> None:
    raw = HEAD + b"Content-Type: text/html\r\n\r\n<p>approve</p>\r\n"
    assert parse_reply(raw, VERBS) == Ignored("no text/plain part")


def test_plain_wins_over_html_in_alternative() -> None:
    for order in (0, 1):
        parts = [part("text/plain", "reject\n"), part("text/html", "<p>approve</p>\n")]
        raw = multipart("alternative", parts[::-1] if order else parts)
        result = parse_reply(raw, VERBS)
        assert isinstance(result, Command)
        assert result.verb == "reject"


def test_alternative_without_plain_is_ignored() -> None:
    raw = multipart("alternative", [part("text/html", "<p>approve</p>\n")])
    assert parse_reply(raw, VERBS) == Ignored("no text/plain part")


def test_first_text_plain_part_of_mixed_nested() -> None:
    inner = multipart("alternative", [part("text/plain", "discard\n")], boundary="inner")
    inner_part = inner[len(HEAD):]
    raw = multipart("mixed", [part("text/html", "approve"), inner_part,
                              part("text/plain", "approve\n")])
    result = parse_reply(raw, VERBS)
    assert isinstance(result, Command)
    assert result.verb == "discard"


def test_attachments_and_forwarded_messages_are_not_read() -> None:
    attached = part("text/plain", "approve\n", "Content-Disposition: attachment; filename=a.txt\n")
    forwarded = part("message/rfc822", "Content-Type: text/plain\n\napprove\n")
    raw = multipart("mixed", [attached, forwarded])
    assert parse_reply(raw, VERBS) == Ignored("no text/plain part")


def test_base64_and_quoted_printable_bodies() -> None:
    b64 = base64.b64encode(b"Reject: d\xc3\xa9j\xc3\xa0 vu\r\n").decode()
    raw = plain(b64, b"Content-Transfer-Encoding: base64\r\n")
    assert parse_reply(raw, VERBS) == Command("reject", "déjà vu", "Reject: déjà vu")
    qp = plain("=61pprove=\n\n", b"Content-Transfer-Encoding: quoted-printable\r\n")
    assert isinstance(parse_reply(qp, VERBS), Command)


def test_boundary_prefix_is_not_a_delimiter() -> None:
    raw = (
        HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nreject\r\n--bb\r\napprove\r\n--b--\r\n"
    )
    source = command_source(raw)
    assert source is not None
    assert source.text == "reject\r\n--bb\r\napprove"


SIGNED_TEXT = (
    "-----BEGIN PGP SIGNED MESSAGE-----\n"
    "Hash: SHA512\n"
    "\n"
    "- -- not a signature, dash-escaped\n"
    "reject: not for this list\n"
    "-----BEGIN PGP SIGNATURE-----\n"
    "\n"
    "iQEzBAEBCgAdFiEE\n"
    "-----END PGP SIGNATURE-----\n"
)


def test_inline_clearsigned_reply() -> None:
    assert parse_reply(plain(SIGNED_TEXT), VERBS) == Ignored("first line is not a command")
    body = SIGNED_TEXT.replace("- -- not a signature, dash-escaped\n", "- approve\n")
    result = parse_reply(plain(body), VERBS)
    assert result == Command("approve", "", "approve")


def test_inline_clearsigned_command_after_armor_and_blank_lines() -> None:
    body = SIGNED_TEXT.replace("- -- not a signature, dash-escaped\n", "\n> approve\n")
    assert parse_reply(plain(body), VERBS) == Command(
        "reject", "not for this list", "reject: not for this list"
    )


def test_inline_clearsigned_without_signature_is_ignored() -> None:
    body = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\napprove\n"
    assert parse_reply(plain(body), VERBS) == Ignored("malformed PGP signed message")


def test_text_after_signature_block_is_not_read() -> None:
    body = SIGNED_TEXT.replace("- -- not a signature, dash-escaped\n", "") + "approve\n"
    result = parse_reply(plain(body), VERBS)
    assert isinstance(result, Command)
    assert result.verb == "reject"


def test_multipart_signed_reads_first_part_and_exposes_exact_bytes() -> None:
    signed_part = part("text/plain; charset=us-ascii", "discard\n")
    sig = b"Content-Type: application/pgp-signature\r\n\r\n-----BEGIN PGP SIGNATURE-----\r\n"
    raw = (
        HEAD
        + b'Content-Type: multipart/signed; micalg=pgp-sha256;\r\n'
        b' protocol="application/pgp-signature"; boundary="sig"\r\n\r\n'
        b"--sig\r\n" + signed_part + b"\r\n--sig\r\n" + sig + b"\r\n--sig--\r\n"
    )
    assert parse_reply(raw, VERBS) == Command("discard", "", "discard")
    source = command_source(raw)
    assert source is not None
    assert source.part == signed_part
    assert source.signed_entity == signed_part
    assert source.signature == b"-----BEGIN PGP SIGNATURE-----\r\n"
    assert raw.count(signed_part) == 1


def test_command_source_of_simple_message_is_whole_message() -> None:
    raw = plain("approve\n")
    source = command_source(raw)
    assert source is not None
    assert source.part == raw
    assert source.signed_entity is None


def test_command_source_is_none_for_html() -> None:
    assert command_source(HEAD + b"Content-Type: text/html\r\n\r\napprove\r\n") is None


# --- never raises -----------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_parse_reply_never_raises_on_bytes(raw: bytes) -> None:
    result = parse_reply(raw, VERBS)
    assert isinstance(result, (Command, Ignored))
    command_source(raw)


MIME_ATOMS = [
    b"Content-Type: multipart/mixed; boundary=b\r\n",
    b"Content-Type: multipart/signed; boundary=b\r\n",
    b"Content-Type: multipart/alternative; boundary=\"\"\r\n",
    b"Content-Type: text/plain; charset=bogus\r\n",
    b"Content-Type: text/plain; charset*=utf-8''%FF\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Type: message/rfc822\r\n",
    b"\r\n", b"\n", b"\r", b"--b\r\n", b"--b--\r\n", b"approve\r\n", b"> reject\r\n",
    b"-----BEGIN PGP SIGNED MESSAGE-----\r\n", b"-----BEGIN PGP SIGNATURE-----\r\n",
    b"Hash: x\r\n", b"-- \r\n", b"=\r\n", b"====\r\n", b"\xff\xfe\x00\r\n",
]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(MIME_ATOMS), max_size=30))
def test_parse_reply_never_raises_on_mime_like_input(atoms: list[bytes]) -> None:
    raw = b"".join(atoms)
    result = parse_reply(raw, VERBS)
    assert isinstance(result, (Command, Ignored))
    if isinstance(result, Command):
        assert result.verb in VERBS


def test_deep_nesting_is_bounded() -> None:
    def nest(depth: int) -> bytes:
        raw = b"\r\napprove\r\n"
        for level in range(depth):
            b = f"b{level}".encode()
            head = b"Content-Type: multipart/mixed; boundary=" + b + b"\r\n\r\n"
            raw = head + b"--" + b + b"\r\n" + raw
        return raw

    assert isinstance(parse_reply(nest(5), VERBS), Command)
    assert parse_reply(nest(200), VERBS) == Ignored("no text/plain part")
