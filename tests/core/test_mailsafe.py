"""Attacks on listbot's address, header and auto-reply decisions."""

from __future__ import annotations

import email
from email import policy
from email.parser import BytesParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listbot.core.errors import MessageRejected
from listbot.core.mail.address import (
    AddressError,
    Mailbox,
    normalize_address,
    parse_single_mailbox,
    sender_of,
)
from listbot.core.mail.autoreply import should_not_autoreply
from listbot.core.mail.headers import encode_header, safe_header_value
from listbot.core.mail.line_endings import check_line_endings

# --- parse_single_mailbox -------------------------------------------------


@pytest.mark.parametrize(
    ("value", "addr", "display"),
    [
        ("alice@example.org", "alice@example.org", ""),
        ("Alice <alice@example.org>", "alice@example.org", "Alice"),
        ('"Doe, John" <j@x.example>', "j@x.example", "Doe, John"),
        ("=?utf-8?q?Doe=2C_J=C3=B6rg?= <j@x.example>", "j@x.example", "Doe, Jörg"),
        ("Alice <alice@example.org> (Work)", "alice@example.org", "Alice"),
        # An address-looking display name is fine when quoted: the addr-spec
        # that counts is the one in angle brackets, and that is what we return.
        ('"alice@member.example" <eve@evil.example>', "eve@evil.example", "alice@member.example"),
    ],
)
def test_accepts_ordinary_mailboxes(value: str, addr: str, display: str) -> None:
    box = parse_single_mailbox(value)
    assert box.addr_spec == addr
    assert box.display_name == display


def test_domain_is_lowercased_and_idna_encoded_local_kept() -> None:
    box = parse_single_mailbox("Alice <Alice.Smith@Bücher.Example>")
    assert box == Mailbox("Alice", "Alice.Smith", "xn--bcher-kva.example")
    assert box.addr_spec == "Alice.Smith@xn--bcher-kva.example"
    assert box.normalized == "alice.smith@xn--bcher-kva.example"
    assert parse_single_mailbox("x@xn--bcher-kva.example").normalized == box.normalized.replace(
        "alice.smith", "x"
    )


# CVE-2023-27043 (gh-102988): on unfixed interpreters email.utils.parseaddr and
# getaddresses return "alice@example.org" for several of these, an address the
# mail system would never deliver as the sender.
CVE_2023_27043_SHAPES = [
    "alice@example.org)<bob@example.com>",
    "alice@example.org<<bob@example.com>",
    "alice@example.org><bob@example.com>",
    "alice@example.org@<bob@example.com>",
    "alice@example.org;<bob@example.com>",
    "alice@example.org,<bob@example.com>",
    '"alice@example.org" <bob@example.com>, <carol@example.com>',
    "alice@member.example@evil.example",
    "alice@member.example <eve@evil>",
]

OTHER_ATTACKS = [
    '"a" <x@y>, <z@w>',
    "a@b, c@d",
    "team: alice@member.example;",
    "undisclosed-recipients:;",
    "<@route.example:eve@evil.example>",
    '"unbalanced <alice@member.example>',
    "<alice@member.example",
    "alice@member.example>",
    "eve@evil.example (alice@member.example)",
    "eve@evil.example (<alice@member.example>)",
    "Alice <eve@evil.example> (sent by <alice@member.example>)",
    "=?utf-8?q?alice=40member.example_=3Calice=40member.example=3E?= <eve@evil.example>",
    "=?utf-8?b?PGFsaWNlQG1lbWJlci5leGFtcGxlPg==?= <eve@evil.example>",
    "=?utf-8?q?Alice=0D=0AFrom:_alice=40member.example?= <eve@evil.example>",
    "alice@member.example\x00@evil.example",
    "Alice <alice@member.example>\r\nFrom: eve@evil.example",
    "alice@member.example\r",
    "alice@member.example\n",
    "\x00",
    "",
    "   ",
    "<>",
    "alice",
    "@member.example",
    "alice@",
    "alice@[192.0.2.1]",
    "alice@member.example.",
    "alice@-member.example",
    '"alice smith"@member.example',
    "alice..smith@member.example",
    "jörg@member.example",
    "Alice <alice@member.example" + "x" * 3000 + ">",
    "(" * 500 + "a@b" + ")" * 500,
    '"\\',
    # Only the policy's defects catch these (obsolete syntax): any defect refuses.
    ",alice@member.example",
    "alice@member. example",
    "J. Smith <alice@member.example>",
]


@pytest.mark.parametrize("value", CVE_2023_27043_SHAPES + OTHER_ATTACKS)
def test_refuses_attack_shapes(value: str) -> None:
    with pytest.raises(AddressError):
        parse_single_mailbox(value)


def test_address_error_is_value_error() -> None:
    assert issubclass(AddressError, ValueError)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_parser_never_raises_anything_but_address_error(value: str) -> None:
    try:
        box = parse_single_mailbox(value)
    except AddressError:
        return
    assert "@" not in box.local
    assert "\r" not in box.display_name
    assert "\n" not in box.display_name


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet='<>@"(),;: \\abc.=?', max_size=40))
def test_parser_on_address_punctuation(value: str) -> None:
    try:
        box = parse_single_mailbox(value)
    except AddressError:
        return
    # Whatever is accepted has one '@' between a local part and a domain.
    assert box.addr_spec.count("@") == 1


# --- normalize_address ------------------------------------------------------


def test_normalize_address() -> None:
    assert normalize_address("Security@Vendor.Example") == "security@vendor.example"
    assert normalize_address("x@bücher.example") == "x@xn--bcher-kva.example"


@pytest.mark.parametrize(
    "text",
    [
        "Alice <alice@example.org>",
        "<alice@example.org>",
        " alice@example.org",
        "alice@example.org (x)",
        "a@b, c@d",
        "",
        "alice@example.org\r\n",
        "alice@member.example@evil.example",
    ],
)
def test_normalize_address_wants_one_bare_addr_spec(text: str) -> None:
    with pytest.raises(AddressError):
        normalize_address(text)


# --- sender_of ---------------------------------------------------------------


def _msg(raw: bytes) -> email.message.Message:
    return BytesParser(policy=policy.default).parsebytes(raw)


def test_sender_of_plain_and_folded() -> None:
    msg = _msg(b"From: Alice\r\n <alice@Member.example>\r\nSubject: x\r\n\r\nbody\r\n")
    assert sender_of(msg) == Mailbox("Alice", "alice", "member.example")
    assert sender_of([("From", "alice@member.example")]) == Mailbox("", "alice", "member.example")


def test_sender_of_utf8_display_name_in_raw_header() -> None:
    msg = _msg("From: Jörg <j@member.example>\r\n\r\nx\r\n".encode())
    assert sender_of(msg) == Mailbox("Jörg", "j", "member.example")


@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: no from\r\n\r\nx\r\n",
        b"From: alice@member.example\r\nFrom: eve@evil.example\r\n\r\nx\r\n",
        b"From: alice@member.example, eve@evil.example\r\n\r\nx\r\n",
        b"From: alice@example.org)<bob@example.com>\r\n\r\nx\r\n",
        b"From: \"a\" <x@y>, <z@w>\r\n\r\nx\r\n",
        b"From: =?utf-8?q?a=40b_=3Cc=40d=3E?= <eve@evil.example>\r\n\r\nx\r\n",
        b"From: Alice \xff\xfe <alice@member.example>\r\n\r\nx\r\n",
        b"From: \r\n\r\nx\r\n",
    ],
)
def test_sender_of_refuses(raw: bytes) -> None:
    assert sender_of(_msg(raw)) is None


def test_sender_of_never_raises_on_odd_input() -> None:
    assert sender_of([("From", "\ud800@x")]) is None
    assert sender_of(object()) is None  # type: ignore[arg-type]


# --- check_line_endings -----------------------------------------------------


def test_crlf_only_message_passes() -> None:
    check_line_endings(b"From: a@b\r\nSubject: x\r\n\r\nline\r\n.\r\n")
    check_line_endings(b"")


@pytest.mark.parametrize(
    "data",
    [
        b"body\n.\nMAIL FROM:<eve@evil>\r\n",
        b"body\r.\rMAIL FROM:<eve@evil>\r\n",
        b"body\n.\r\nMAIL FROM:<eve@evil>\r\n",
        b"body\r\n.\n",
        b"body\r\n.\r",
        b"Subject: a\rBcc: eve@evil\r\n\r\nx\r\n",
        b"Subject: a\r\r\n\r\nx\r\n",
        b"x\n",
        b"x\r",
        b"\rx\r\n",
        b"x\r\n\x00\r\n",
    ],
)
def test_smuggling_sequences_refused(data: bytes) -> None:
    with pytest.raises(MessageRejected):
        check_line_endings(data)


# --- safe_header_value and encode_header (CVE-2024-6923) ------------------------

INJECTING_SUBJECT = "=?utf-8?q?a=0D=0ABcc:_evil@x?="


def test_encoded_newline_subject_is_neutralised() -> None:
    msg = _msg(f"From: a@b\r\nSubject: {INJECTING_SUBJECT}\r\n\r\nx\r\n".encode())
    decoded = str(msg["Subject"])
    assert "\n" in decoded  # the hazard: the parsed value really carries a newline
    for value in (INJECTING_SUBJECT, decoded):
        safe = safe_header_value(value)
        assert "\r" not in safe
        assert "\n" not in safe
        assert safe == "a Bcc: evil@x"
        line = encode_header("Subject", "Re: " + safe)
        assert line.count(b"\r\n") == 1
        out = _msg(b"From: a@b\r\n" + line + b"\r\nbody\r\n")
        assert out.get_all("Bcc") is None
        assert str(out["Subject"]) == "Re: a Bcc: evil@x"


def test_encode_header_writes_literal_encoded_word_text_literally() -> None:
    line = encode_header("Subject", INJECTING_SUBJECT)
    assert line.count(b"\r\n") == 1
    assert str(_msg(line + b"\r\n")["Subject"]) == INJECTING_SUBJECT


def test_safe_header_value_controls_and_length() -> None:
    assert safe_header_value("a\r\n\tb\x00c\x7fd\u2028e\u0085f") == "a b c d e f"
    assert safe_header_value("  many    spaces  ") == "many spaces"
    assert safe_header_value("\u202eevil") == "evil"
    assert len(safe_header_value("x" * 5000)) == 998
    assert len(safe_header_value("x" * 5000, max_length=10)) == 10
    assert safe_header_value("=?bogus-charset?q?abc?=") == "abc"
    # Undecodable or newline-bearing encoded-words must neither raise nor leak.
    assert "\n" not in safe_header_value("=?utf-8?b?!!!?= =?utf-8?b?Cg0K?=x")
    assert safe_header_value("=?utf-8?b?YQpCY2M6IGV2aWxAeA==?=") == "a Bcc: evil@x"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=()), max_size=300))
def test_safe_header_value_never_has_line_breaks(value: str) -> None:
    safe = safe_header_value(value)
    assert not any(c in safe for c in "\r\n\x00\x0b\x0c\x85\u2028\u2029")
    assert len(safe) <= 998


def test_encode_header_ascii_folding() -> None:
    value = " ".join(["word"] * 60)
    line = encode_header("Subject", value)
    physical = line[:-2].split(b"\r\n")
    assert len(physical) > 1
    assert all(len(x) <= 78 for x in physical)
    assert all(x.startswith(b" ") for x in physical[1:])
    assert str(_msg(line + b"\r\n")["Subject"]) == value


def test_encode_header_non_ascii_roundtrip() -> None:
    value = "Grüße aus Köln — 安全公告 " * 5
    line = encode_header("Subject", value)
    assert line.isascii()
    assert b"=?utf-8?" in line
    assert str(_msg(line + b"\r\n")["Subject"]) == value.strip()


def test_encode_header_long_word_is_split() -> None:
    line = encode_header("X-Long", "y" * 3000)
    assert all(len(x) <= 998 for x in line.split(b"\r\n"))
    assert str(_msg(line + b"\r\n")["X-Long"]) == "y" * 3000


def test_encode_header_empty_and_message_id() -> None:
    assert encode_header("Subject", "") == b"Subject:\r\n"
    assert encode_header("Message-ID", "<a.b@lists.example.org>") == (
        b"Message-ID: <a.b@lists.example.org>\r\n"
    )


@pytest.mark.parametrize(
    "name", ["", "Sub ject", "Subject:", "Bcc\r\nX", "Süb", "-X", "X" * 77, "Subject\n"]
)
def test_encode_header_rejects_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid header name"):
        encode_header(name, "x")


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["Subject", "X-Original-Subject", "Comments"]),
    st.text(alphabet=st.characters(blacklist_categories=()), max_size=400),
)
def test_encode_header_is_always_exactly_one_header(name: str, value: str) -> None:
    line = encode_header(name, value)
    assert line.isascii()
    assert line.endswith(b"\r\n")
    assert b"\r" not in line.replace(b"\r\n", b"")
    assert b"\n" not in line.replace(b"\r\n", b"")
    assert all(x.startswith(b" ") and x.strip() for x in line[:-2].split(b"\r\n")[1:])
    msg = _msg(line + b"\r\nBODY\r\n")
    assert list(msg.keys()) == [name]
    assert not msg.defects
    assert msg.get_payload() == "BODY\r\n"
    decoded = str(msg[name])
    assert "\r" not in decoded
    assert "\n" not in decoded


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.characters(whitelist_categories=("L", "N", "P", "S", "Zs")), max_size=300
    )
)
def test_encode_header_roundtrips_printable_text(value: str) -> None:
    msg = _msg(encode_header("Subject", value) + b"\r\n")
    assert str(msg["Subject"]) == " ".join(value.split())


# --- should_not_autoreply ---------------------------------------------------

HUMAN = (
    b"From: Reporter <reporter@example.net>\r\n"
    b"To: security@example.org\r\n"
    b"Subject: overflow in parser\r\n"
    b"Message-ID: <1@example.net>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\nHello\r\n"
)
OWN = {"own_list_ids": ["discuss.lists.example.org"], "own_loop": "security@example.org"}


def _reason(extra: bytes = b"", envelope: str | None = "reporter@example.net") -> str | None:
    return should_not_autoreply(_msg(extra + HUMAN), envelope_sender=envelope, **OWN)  # type: ignore[arg-type]


def test_plain_human_mail_may_be_answered() -> None:
    assert _reason() is None
    assert _reason(b"Auto-Submitted: no\r\n") is None
    assert _reason(b"Auto-Submitted: No (human)\r\n") is None
    assert _reason(envelope=None) is None
    assert _reason(b"X-Loop: someone-else@example.com\r\n") is None
    assert _reason(b"Precedence: first-class\r\n") is None
    assert _reason(b"X-Auto-Response-Suppress: DR, RN\r\n") is None


@pytest.mark.parametrize(
    "extra",
    [
        b"Auto-Submitted: auto-replied\r\n",
        b"Auto-Submitted: auto-generated\r\n",
        b"auto-submitted: Auto-Notified; owner-email=x@y\r\n",
        b"Auto-Submitted:\r\n",
        b"Precedence: bulk\r\n",
        b"Precedence: LIST\r\n",
        b"Precedence: junk\r\n",
        b"X-Loop: security@example.org\r\n",
        b"X-Loop: <Security@Example.org>\r\n",
        b"List-Id: Discuss <discuss.lists.example.org>\r\n",
        b"List-Id: <other.lists.example.com>\r\n",
        b"List-Unsubscribe: <mailto:leave@example.com>\r\n",
        b"X-Autoreply: yes\r\n",
        b"X-Autorespond: yes\r\n",
        b"X-Auto-Response-Suppress: All\r\n",
        b"X-Auto-Response-Suppress: DR, OOF\r\n",
        b"Return-Path: <>\r\n",
        b"Return-Path: <MAILER-DAEMON@mx.example.net>\r\n",
    ],
)
def test_rfc3834_headers_forbid_reply(extra: bytes) -> None:
    assert _reason(extra) is not None


@pytest.mark.parametrize("envelope", ["", "<>", "MAILER-DAEMON@mx.example.net", "owner-x@y.z"])
def test_null_or_robot_envelope_forbids_reply(envelope: str) -> None:
    assert _reason(envelope=envelope) is not None


@pytest.mark.parametrize(
    "from_line",
    [
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n",
        b"From: alice@example.org)<bob@example.com>\r\n",
    ],
)
def test_robot_or_unparseable_from_forbids_reply(from_line: bytes) -> None:
    raw = HUMAN.replace(b"From: Reporter <reporter@example.net>\r\n", from_line)
    assert should_not_autoreply(_msg(raw), envelope_sender="x@example.net", **OWN) is not None  # type: ignore[arg-type]


def test_dsn_forbids_reply() -> None:
    raw = HUMAN.replace(
        b"Content-Type: text/plain; charset=utf-8",
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"',
    )
    assert should_not_autoreply(_msg(raw), envelope_sender="x@example.net", **OWN) is not None  # type: ignore[arg-type]

