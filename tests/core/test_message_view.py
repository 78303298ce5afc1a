"""One parse per received message: the view every step reads, the one X-Loop check, and
the rule that nothing outside core/mail calls the stdlib parser."""

from __future__ import annotations

import ast
import asyncio
import email.parser
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime
from email.policy import default as default_policy
from io import StringIO
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from listbot.app import App
from listbot.applications.handler import Applications, ApplicationsHandler
from listbot.core.clock import FakeClock
from listbot.core.config import ListConfig
from listbot.core.mail.pgp import Keyring
from listbot.core.mail.pgp_mime import verify_view
from listbot.core.mail.pgp_status import Verification
from listbot.core.mail.view import MessageView
from listbot.core.model import Inbound, Member, OutgoingMessage, RecipientRole
from listbot.discuss.distribution import prepare_distribution
from listbot.discuss.sealing import PostSealer, SealedPost
from listbot.settings import Settings
from tests.daemon import lmtp_send, post, running, settle
from tests.sink import Sink

PACKAGE = Path(__file__).resolve().parents[2] / "listbot"
MAIL = PACKAGE / "core" / "mail"
DISCUSS = "discuss@lists.example.org"
MEMBER = "security@vendor-a.example"

SAMPLE = (
    b"Return-Path: <security@vendor-a.example>\r\n"
    b"From: Vendor A <security@vendor-a.example>\r\n"
    b"Sender: relay@vendor-a.example\r\n"
    b"To: discuss@lists.example.org\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9?= patch\r\n"
    b"X-Loop: someone-else@example.com\r\n"
    b"X-Loop: Discuss@Lists.Example.org\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"The backport applies.\r\n"
    b"--b1\r\n"
    b"Content-Type: text/x-diff\r\n"
    b'Content-Disposition: attachment; filename="fix.patch"\r\n'
    b"\r\n"
    b"--- a\r\n+++ b\r\n"
    b"--b1--\r\n"
)


# --------------------------------------------------------------------- the view


def test_view_keeps_every_value_of_a_field_as_received() -> None:
    view = MessageView.parse(SAMPLE, envelope_sender=MEMBER)
    assert view.get_all("x-loop") == ("someone-else@example.com", "Discuss@Lists.Example.org")
    assert view.get_all("Subject") == ("=?utf-8?q?caf=C3=A9?= patch",)
    assert view.headers[0] == ("Return-Path", "<security@vendor-a.example>")
    assert view.envelope_sender == MEMBER
    assert view.sender_field == "relay@vendor-a.example"
    assert view.from_values == ("Vendor A <security@vendor-a.example>",)
    assert view.sender is not None and view.sender.normalized == MEMBER


def test_view_reads_like_a_headers_only_parse_under_policy_default() -> None:
    view = MessageView.parse(SAMPLE)
    expected = email.parser.BytesParser(policy=default_policy).parsebytes(
        SAMPLE, headersonly=True)
    assert list(view.header_message.raw_items()) == list(expected.raw_items())
    assert str(view.header_message["Subject"]) == str(expected["Subject"]) == "café patch"


def test_view_tree_text_and_body() -> None:
    view = MessageView.parse(SAMPLE)
    assert [p.get_content_type() for p in view.tree.walk()] == [
        "multipart/mixed", "text/plain", "text/x-diff"]
    assert [p.get_content_type() for p in view.email.walk()] == [
        "multipart/mixed", "text/plain", "text/x-diff"]
    assert view.plain_text == "The backport applies."  # the CRLF is the delimiter's
    assert view.body.startswith(b"--b1\r\n") and view.raw == SAMPLE


def test_view_keeps_parse_defects_of_every_part() -> None:
    broken = (b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n"
              b"no delimiter ever\r\n")
    view = MessageView.parse(broken)
    assert "StartBoundaryNotFoundDefect" in view.defects
    assert view.email.defects == view.tree.defects


def test_a_from_that_is_not_one_strict_mailbox_is_no_sender() -> None:
    two = MessageView.parse(b"From: a@example.org, b@example.org\r\n\r\nx\r\n")
    assert two.sender is None
    doubled = MessageView.parse(b"From: a@example.org\r\nFrom: b@example.org\r\n\r\nx\r\n")
    assert doubled.sender is None


def test_recast_keeps_a_deep_tree() -> None:
    depth = 60
    head = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
                    for i in range(depth))
    view = MessageView.parse(b"From: a@example.org\r\n" + head + b"Content-Type: text/plain"
                             b"\r\n\r\nx\r\n")
    assert ([p.get_content_type() for p in view.email.walk()]
            == [p.get_content_type() for p in view.tree.walk()]
            == ["multipart/mixed"] * depth + ["text/plain"])


def test_a_structure_no_parser_reads_still_gives_its_headers() -> None:
    raw = b"From: Vendor A <security@vendor-a.example>\r\nSubject: deep\r\n"
    for i in range(3000):  # past the recursion limit of the stdlib parser
        raw += b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
    view = MessageView.parse(raw)
    assert view.parser_failed
    assert view.sender is not None and view.sender.normalized == MEMBER
    assert str(view.header_message["Subject"]) == "deep"
    assert view.tree.get_content_type() == "multipart/mixed" and not view.tree.is_multipart()


# ------------------------------------------------------------------ own loop


@pytest.mark.parametrize("values, ours", [
    ((), False),
    (("someone-else@example.com",), False),
    (("discuss@lists.example.org",), True),
    (("someone-else@example.com", "discuss@lists.example.org"), True),  # second field
    (("<Discuss@Lists.Example.org>",), True),
    (("discuss@lists.example.org.evil",), False),
])
def test_own_loop_reads_every_x_loop_field(values: tuple[str, ...], ours: bool) -> None:
    head = b"".join(b"X-Loop: " + v.encode() + b"\r\n" for v in values)
    view = MessageView.parse(b"From: a@example.org\r\n" + head + b"\r\nbody\r\n")
    assert view.is_own_loop(DISCUSS) is ours


def _inbound(raw: bytes, recipient: str, list_name: str) -> Inbound:
    return Inbound(id=1, source="lmtp", envelope_from=MEMBER, recipient=recipient,
                   list_name=list_name, role=RecipientRole.POST, detail=None, raw=raw,
                   received_at=datetime(2026, 1, 5, tzinfo=UTC), attempts=0)


class _AuditTx:
    def __init__(self) -> None:
        self.audits: list[tuple[str, str]] = []

    async def audit(self, actor: str, action: str, subject: str, detail: Any) -> None:
        self.audits.append((actor, action))


async def test_applications_sees_our_list_in_a_second_x_loop_field(
        make_config: Callable[..., Settings]) -> None:
    cfg = make_config().core
    lc = next(iter(cfg.lists.values()))
    service = cast(Applications, SimpleNamespace(lc=lc))
    raw = (f"From: {MEMBER}\r\nX-Loop: someone-else@example.com\r\nX-Loop: {lc.address}\r\n"
           f"Subject: hello\r\n\r\nbody\r\n").encode()
    effects = await ApplicationsHandler(service).decide(_inbound(raw, lc.address, lc.name))
    tx = _AuditTx()
    await effects.apply(tx)  # type: ignore[arg-type]
    assert tx.audits == [("listbot", "application.loop_discarded")]


# ------------------------------------------------------- signature, at most once


class _CountingKeyring:
    def __init__(self) -> None:
        self.calls = 0

    async def verify_clearsigned(self, data: bytes, allowlist: Any, now: datetime
                                 ) -> Verification:
        self.calls += 1
        await asyncio.sleep(0.01)
        return Verification(True, "F" * 40, "good", data)


async def test_a_view_verifies_its_signature_at_most_once() -> None:
    raw = (b"From: a@example.org\r\nContent-Type: text/plain\r\n\r\n"
           b"-----BEGIN PGP SIGNED MESSAGE-----\r\n")
    view = MessageView.parse(raw)
    keyring = _CountingKeyring()
    now = datetime(2026, 1, 5, tzinfo=UTC)
    ring = cast(Keyring, keyring)
    results = await asyncio.gather(*(verify_view(view, ring, ["F" * 40], now)
                                     for _ in range(3)))
    assert await verify_view(view, ring, ["F" * 40], now) is results[0]
    assert keyring.calls == 1 and all(r.valid for r in results)
    await verify_view(MessageView.parse(raw), ring, ["F" * 40], now)  # another message
    assert keyring.calls == 2


# ----------------------------------------------- nothing else calls the parser

_PARSER_NAMES = frozenset({"BytesParser", "Parser", "HeaderParser", "BytesHeaderParser",
                           "FeedParser", "BytesFeedParser", "message_from_bytes",
                           "message_from_string", "message_from_file",
                           "message_from_binary_file"})
_PARSER_MODULES = frozenset({"email.parser", "email.feedparser"})


def parser_uses(source: str) -> list[str]:
    """Every use of the stdlib e-mail message parser in this source: imports of its
    modules or names, and any reference to a parser name (`email.message_from_bytes`,
    `BytesParser(policy=...)`)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name in _PARSER_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module in _PARSER_MODULES:
                found.append(node.module)
            elif node.module == "email":
                found += [a.name for a in node.names
                          if a.name in _PARSER_NAMES or f"email.{a.name}" in _PARSER_MODULES]
        elif isinstance(node, ast.Attribute) and node.attr in _PARSER_NAMES:
            found.append(node.attr)
        elif isinstance(node, ast.Name) and node.id in _PARSER_NAMES:
            found.append(node.id)
    return found


@pytest.mark.parametrize("source", [
    "from email.parser import BytesParser\nBytesParser().parsebytes(b'')",
    "import email.parser\nemail.parser.BytesParser(policy=p).parsebytes(b'')",
    "from email.parser import BytesHeaderParser as H",
    "import email\nemail.message_from_bytes(b'')",
    "from email import message_from_string",
    "from email import parser",
    "import email.feedparser",
    "from email.feedparser import BytesFeedParser",
    "def f(m):\n    return m.HeaderParser",
])
def test_the_detector_finds_each_way_to_call_the_parser(source: str) -> None:
    assert parser_uses(source)


@pytest.mark.parametrize("source", [
    "from email.message import EmailMessage\nEmailMessage()",
    "from email import policy\npolicy.default.header_fetch_parse('Subject', 'x')",
    "from listbot.core.mail.view import MessageView\nMessageView.parse(b'')",
    "import email.utils\nemail.utils.format_datetime(x)",
])
def test_the_detector_lets_other_email_code_be(source: str) -> None:
    assert parser_uses(source) == []


def _modules() -> Iterator[Path]:
    for path in sorted(PACKAGE.rglob("*.py")):
        if MAIL not in path.parents:
            yield path


def test_no_module_outside_core_mail_calls_the_stdlib_parser() -> None:
    offenders = {str(p.relative_to(PACKAGE.parent)): uses for p in _modules()
                 if (uses := parser_uses(p.read_text()))}
    assert offenders == {}
    assert len(list(_modules())) > 50  # the scan saw the package


# ------------------------------------------------------ one parse, end to end


@pytest.fixture
async def app(make_config: Callable[..., Settings], sink: Sink,
              clock: FakeClock) -> AsyncIterator[App]:
    async with running(make_config(sink=sink), clock) as application:
        yield application


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The text of every stdlib parse in this process: each parser class, and
    message_from_*, ends in Parser.parse."""
    seen: list[str] = []
    original = email.parser.Parser.parse

    def counting(self: email.parser.Parser, fp: Any, headersonly: bool = False) -> Any:
        if isinstance(fp, StringIO):
            seen.append(fp.getvalue())
        return original(self, fp, headersonly)

    monkeypatch.setattr(email.parser.Parser, "parse", counting)
    return seen


def _of_message(texts: list[str], raw: bytes) -> list[str]:
    """The parses of this message or of its header block (not of other messages that
    quote it, such as the copies we send)."""
    whole = raw.decode("ascii", "surrogateescape")
    return [t for t in texts if len(t.strip()) > 20 and whole.startswith(t.rstrip("\r\n"))]


async def test_a_discuss_post_is_parsed_once(app: App, sink: Sink, parses: list[str]) -> None:
    data = post(f"Vendor A <{MEMBER}>", body="The patch applies.\r\n")
    assert await lmtp_send(app, MEMBER, [DISCUSS], data) == {}
    await sink.wait_deliveries(3)
    await settle(app)
    assert [e.action for e in await app.store.audit_listing(action_prefix="discuss.")] == [
        "discuss.approve"]
    assert len(_of_message(parses, data)) == 1


class _NotingSealer:
    """Stands in for gpg: notes the Message-ID each post is sealed under."""

    def __init__(self) -> None:
        self.message_ids: list[str] = []

    async def seal(self, out: OutgoingMessage, members: Sequence[Member], lc: ListConfig,
                   message_id: str, now: datetime) -> SealedPost:
        self.message_ids.append(message_id)
        return SealedPost((), ())


async def test_a_sealed_distribution_takes_the_message_id_from_the_view(
        make_config: Callable[..., Settings], parses: list[str]) -> None:
    cfg = make_config().core
    lc = cfg.lists["discuss"]
    raw = post(f"Vendor A <{MEMBER}>")
    view = MessageView.parse(raw)
    assert view.sender is not None
    parses.clear()
    sealer = _NotingSealer()
    now = datetime(2026, 1, 5, tzinfo=UTC)
    member = Member(1, "Vendor A", MEMBER, None, now)
    prepared = await prepare_distribution(cfg, lc, view, poster=view.sender, hits=(),
                                          members=[member], sealer=cast(PostSealer, sealer),
                                          now=now)
    assert sealer.message_ids == [view.get_all("Message-ID")[0]]
    assert prepared.out.raw.endswith(raw.split(b"\r\n\r\n", 1)[1])
    assert _of_message(parses, raw) == []


async def test_a_post_naming_our_list_in_a_second_x_loop_is_discarded(
        app: App, sink: Sink) -> None:
    data = post(f"Vendor A <{MEMBER}>",
                extra=f"X-Loop: someone-else@example.com\r\nX-Loop: {DISCUSS}\r\n")
    assert await lmtp_send(app, MEMBER, [DISCUSS], data) == {}
    await settle(app)
    assert [e.action for e in await app.store.audit_listing(action_prefix="discuss.")] == [
        "discuss.loop_discarded"]
    assert sink.received == []
