from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from listbot.advisories.doc import AdvisoryDoc, AdvisoryFormatError, Audience
from listbot.advisories.format import render_text
from listbot.advisories.mail import build_message, message_id, thread_of
from tests.advisory_samples import sample_doc

DATE = datetime(2024, 10, 29, 12, 0, tzinfo=UTC)
FAKE_SIG = "-----BEGIN PGP SIGNATURE-----\n\niQEzBAEBCAAdFiEE\n=abcd\n-----END PGP SIGNATURE-----\n"


def fake_signed(text: str) -> str:
    """Shaped like gpg --clearsign output; enough for everything but verification."""
    escaped = "".join(
        f"- {line}" if line.startswith("-") else line for line in text.splitlines(True)
    )
    return f"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n{escaped}{FAKE_SIG}"


def build(doc: AdvisoryDoc, audience: Audience, signed: str | None = None, **kw: Any) -> bytes:
    args: dict[str, Any] = {
        "signed_text": signed if signed is not None else fake_signed(render_text(doc, audience)),
        "doc": doc,
        "audience": audience,
        "from_addr": "Xen.org security team <security@xen.org>",
        "to_addrs": ["security@vendor.example", "psirt@other.example"],
        "message_id": message_id(doc.number, doc.version, audience, "xen.org"),
        "in_reply_to": None,
        "references": (),
        "date": DATE,
    }
    args.update(kw)
    return build_message(**args)


def parse(raw: bytes) -> EmailMessage:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


@pytest.mark.parametrize("audience", list(Audience))
def test_mime_structure_and_attachment_bytes(audience: Audience) -> None:
    doc = sample_doc()
    signed = fake_signed(render_text(doc, audience))
    msg = parse(build(doc, audience, signed))
    assert msg.get_content_type() == "multipart/mixed"
    parts = list(msg.iter_parts())
    text = parts[0]
    assert text.get_content_type() == "text/plain"
    assert text.get_content_charset() == "utf-8"
    assert text.get_content_disposition() == "inline"
    assert text.get_content().replace("\r\n", "\n") == signed
    names = [p.filename for p in doc.patches] + ["xsa465.meta"]
    assert [p.get_filename() for p in parts[1:]] == names
    for part, patch in zip(parts[1:], doc.patches, strict=False):
        assert part.get_content_type() == "application/octet-stream"
        assert part.get_content_disposition() == "attachment"
        assert part["Content-Transfer-Encoding"] == "base64"
        assert part.get_payload(decode=True) == patch.content


def test_without_attachments_it_is_still_multipart_mixed() -> None:
    doc = sample_doc(patches=(), with_meta=False)
    msg = parse(build(doc, Audience.PUBLIC))
    assert msg.get_content_type() == "multipart/mixed"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain"]


def test_headers_and_crlf_throughout() -> None:
    doc = sample_doc()
    raw = build(doc, Audience.PREDISCLOSURE)
    assert b"\n" not in raw.replace(b"\r\n", b"")
    msg = parse(raw)
    assert msg["From"] == '"Xen.org security team" <security@xen.org>'  # '.' needs quoting
    assert msg["To"] == "security@vendor.example, psirt@other.example"
    assert msg["Message-ID"] == "<xsa465.v2.predisclosure@xen.org>"
    assert msg["Date"] == "Tue, 29 Oct 2024 12:00:00 +0000"
    assert str(msg["Subject"]).startswith("[EMBARGOED until 2024-11-12 12:00 UTC] Xen Security")
    assert msg["X-Embargoed-Until"] == "2024-11-12T12:00:00Z"


def test_public_copy_has_no_embargo_header() -> None:
    msg = parse(build(sample_doc(), Audience.PUBLIC))
    assert msg["X-Embargoed-Until"] is None
    assert "EMBARGOED" not in str(msg["Subject"])


def test_same_advisory_gives_the_same_bytes() -> None:
    doc = sample_doc()
    assert build(doc, Audience.PUBLIC) == build(doc, Audience.PUBLIC)


def test_message_ids_are_deterministic_and_threads_refer_to_the_first() -> None:
    assert message_id(465, 2, Audience.PUBLIC, "xen.org") == "<xsa465.v2.public@xen.org>"
    assert message_id(465, 2, Audience.PREDISCLOSURE, "xen.org", copy="m17") == (
        "<xsa465.v2.predisclosure.m17@xen.org>"
    )
    assert thread_of(465, 1, Audience.PUBLIC, "xen.org") == (None, ())
    first = "<xsa465.v1.public@xen.org>"
    assert thread_of(465, 3, Audience.PUBLIC, "xen.org") == (first, (first,))
    with pytest.raises(AdvisoryFormatError):
        message_id(465, 1, Audience.PUBLIC, "xen.org>\r\nBcc: x@y")
    in_reply_to, refs = thread_of(465, 2, Audience.PUBLIC, "xen.org")
    msg = parse(build(sample_doc(), Audience.PUBLIC, in_reply_to=in_reply_to, references=refs))
    assert msg["In-Reply-To"] == first and msg["References"] == first


@pytest.mark.parametrize(
    "kw",
    [
        {"from_addr": "security@xen.org\r\nBcc: victim@example.org"},
        {"to_addrs": ["a@example.org\nBcc: victim@example.org"]},
        {"extra_headers": [("X-Loop", "listbot\r\nBcc: victim@example.org")]},
        {"extra_headers": [("Bad Name", "x")]},
        {"extra_headers": [("Subject", "another subject")]},
        {"message_id": "<a@b>\r\nBcc: victim@example.org"},
        {"references": ["not-an-id"]},
        {"to_addrs": []},
    ],
)
def test_header_injection_and_bad_headers_are_refused(kw: dict[str, Any]) -> None:
    with pytest.raises(AdvisoryFormatError):
        build(sample_doc(), Audience.PUBLIC, **kw)


def test_extra_headers_are_written() -> None:
    msg = parse(
        build(sample_doc(), Audience.PUBLIC, extra_headers=[("Auto-Submitted", "auto-generated")])
    )
    assert msg["Auto-Submitted"] == "auto-generated"


def test_signed_text_must_list_the_attachments_and_match_the_audience() -> None:
    doc = sample_doc()
    stale = fake_signed(render_text(sample_doc(patches=doc.patches[:2]), Audience.PUBLIC))
    with pytest.raises(AdvisoryFormatError, match=r"xsa465-4\.16\.patch"):
        build(doc, Audience.PUBLIC, stale)
    with pytest.raises(AdvisoryFormatError, match="banner"):
        build(doc, Audience.PUBLIC, fake_signed(render_text(doc, Audience.PREDISCLOSURE)))
    with pytest.raises(AdvisoryFormatError, match="banner"):
        build(doc, Audience.PREDISCLOSURE, fake_signed(render_text(doc, Audience.PUBLIC)))
    with pytest.raises(AdvisoryFormatError, match="clear-signed"):
        build(doc, Audience.PUBLIC, render_text(doc, Audience.PUBLIC))


def test_non_ascii_text_goes_quoted_printable_and_survives() -> None:
    doc = sample_doc(title="Überprüfung fehlt \u2013 grâce à ✓")
    signed = fake_signed(render_text(doc, Audience.PUBLIC))
    raw = build(doc, Audience.PUBLIC, signed)
    assert raw.isascii()
    text = next(parse(raw).iter_parts())
    assert text["Content-Transfer-Encoding"] == "quoted-printable"
    assert text.get_content().replace("\r\n", "\n") == signed
    assert "Überprüfung" in str(parse(raw)["Subject"])


# --- real gpg: the clear-signed text still verifies after the MIME round trip


@pytest.fixture(scope="module")
def gnupghome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if shutil.which("gpg") is None:
        pytest.skip("gpg not installed")
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    gpg(
        home,
        "--quick-gen-key",
        "Test Security Team <security@example.org>",
        "ed25519",
        "sign",
        "1d",
    )
    yield home
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)


def gpg(home: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            "gpg",
            "--homedir",
            str(home),
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            *args,
        ],
        input=stdin,
        capture_output=True,
        check=True,
        env={**os.environ, "LC_ALL": "C"},
    )


@pytest.mark.parametrize("title", ["plain ASCII title", "Überprüfung \u2013 non-ASCII title"])
def test_clear_signature_verifies_after_transport(gnupghome: Path, title: str) -> None:
    doc = sample_doc(title=title)
    text = render_text(doc, Audience.PREDISCLOSURE)
    signed = gpg(gnupghome, "--clearsign", "--digest-algo", "SHA256", stdin=text.encode()).stdout
    raw = build(doc, Audience.PREDISCLOSURE, signed.decode())
    received = next(parse(raw).iter_parts()).get_content().encode()
    ok = gpg(gnupghome, "--status-fd", "1", "--verify", stdin=received)
    assert b"[GNUPG:] GOODSIG" in ok.stdout
    tampered = received.replace(b"Jane Doe", b"John Doe")
    with pytest.raises(subprocess.CalledProcessError):
        gpg(gnupghome, "--verify", stdin=tampered)
