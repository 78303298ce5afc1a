"""security@ end to end: real LMTP in, the recording sink out, real gpg, a fake clock."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from listbot.app import App
from listbot.core.calendar.embargo import apply_requested_date
from listbot.core.clock import FakeClock
from listbot.core.mail.pgp_mime import build_encrypted_mime, build_signed_mime
from listbot.core.model import OutboxState
from listbot.core.store import cases as case_store
from listbot.settings import Settings
from tests import pgp_fixtures
from tests.daemon import deferred_once, lmtp_send, outbox_settled, running, settle
from tests.pgp_fixtures import PgpKeys, detach_sign, encrypt_to, encrypt_without_mdc, gpg
from tests.sink import Received, Sink

pgp_template = pgp_fixtures.pgp_template
pgp_keys = pgp_fixtures.pgp_keys
pgp_home = pgp_fixtures.pgp_home

SECURITY = "security@example.org"
REPORTER = "reporter@example.net"
CASE1 = "SEC-2026-0001"


def pgp_config(home: Path, keys: PgpKeys) -> dict[str, Any]:
    return {
        "pgp": {"home": str(home), "team_fingerprint": keys.team},
        "team": {"members": [
            {"name": "Alice", "address": "alice@example.org", "fingerprint": keys.moderator},
            {"name": "Bob", "address": "bob@example.org", "fingerprint": keys.member}]},
        "cases": {"encrypt_team_copies": True},
    }


def message(sender: str, subject: str, mid: str, body: bytes, *, to: str = SECURITY,
            extra: str = "") -> bytes:
    head = (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {mid}\r\n"
            f"MIME-Version: 1.0\r\n{extra}")
    if not body.startswith(b"Content-Type"):
        body = b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body
    return head.encode() + body


def encrypted_report(home: Path, keys: PgpKeys, text: bytes, *, mdc: bool = True) -> bytes:
    inner = b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + text
    armored = (encrypt_to if mdc else encrypt_without_mdc)(home, inner, keys.team)
    return message(f"Reporter <{REPORTER}>", "Heap overflow in the parser", "<r1@example.net>",
                   build_encrypted_mime(armored, "report"))


def decrypt(home: Path, data: bytes) -> bytes:
    block = re.search(rb"-----BEGIN PGP MESSAGE-----.*?-----END PGP MESSAGE-----", data,
                      re.DOTALL)
    assert block is not None, "no ciphertext in the message"
    return gpg(home, "--decrypt", data=block.group(0)).stdout


def to(sink: Sink, rcpt: str) -> list[Received]:
    return [rec for r, rec in sink.deliveries() if r == rcpt]


async def wait_count(sink: Sink, count: int) -> None:
    await sink.wait_deliveries(count)
    assert len(sink.deliveries()) == count, sink.recipients()


@pytest.fixture
def pgp_app_config(make_config: Callable[..., Settings], sink: Sink, pgp_home: Path,
                   pgp_keys: PgpKeys) -> Settings:
    return make_config(pgp_config(pgp_home, pgp_keys), sink=sink)


async def test_whole_case_on_a_fake_clock(pgp_app_config: Settings, sink: Sink,
                                          clock: FakeClock, pgp_home: Path,
                                          pgp_keys: PgpKeys) -> None:
    async with running(pgp_app_config, clock, members=()) as app:
        # 1. An encrypted report opens a case, is acknowledged, reaches both members.
        secret = b"The parser overflows on a 70000-byte header.\r\n"
        await lmtp_send(app, REPORTER, [SECURITY], encrypted_report(pgp_home, pgp_keys, secret))
        await wait_count(sink, 3)
        [ack] = to(sink, REPORTER)
        assert ack.mail_from == ""
        assert ack.message["Auto-Submitted"] == "auto-replied"
        assert CASE1 in ack.message["Subject"]
        assert ack.message["In-Reply-To"] == "<r1@example.net>"
        ack_text = ack.message.get_payload(decode=True)
        assert b"Wednesday 2026-12-02 12:00 UTC" in ack_text  # 5 working days after day 0
        assert b"Wednesday 2026-12-16 12:00 UTC" in ack_text  # 10 more
        verified = gpg(pgp_home, "--status-fd", "1", "--verify", data=ack_text).stdout
        assert f"VALIDSIG {pgp_keys.team}".encode() in verified or \
            pgp_keys.team.encode() in verified
        for member in ("alice@example.org", "bob@example.org"):
            [copy] = to(sink, member)
            assert copy.message.get_content_type() == "multipart/encrypted"
            assert CASE1 in copy.message["Subject"]
            assert secret not in copy.data, "team copies are ciphertext"
            assert secret in decrypt(pgp_home, copy.data)
        # 2. A reporter follow-up threads into the case: team only, no second ack.
        follow = message(f"Reporter <{REPORTER}>", "Re: Heap overflow", "<r2@example.net>",
                         b"Also affects 4.19.\r\n", extra="In-Reply-To: <r1@example.net>\r\n")
        await lmtp_send(app, REPORTER, [SECURITY], follow)
        await wait_count(sink, 5)
        assert len(to(sink, REPORTER)) == 1
        # 3. A signed team reply to the case address reaches the reporter, encrypted.
        entity = b"Content-Type: text/plain; charset=utf-8\r\n\r\nConfirmed; patch soon.\r\n"
        signed = build_signed_mime(entity, detach_sign(pgp_home, entity, pgp_keys.moderator),
                                   "reply")
        reply = message("Alice <alice@example.org>", f"Re: [{CASE1}] Heap overflow",
                        "<a1@example.org>", signed, to=f"security+{CASE1}@example.org",
                        extra="In-Reply-To: <r2@example.net>\r\n")
        await lmtp_send(app, "alice@example.org", [f"security+{CASE1}@example.org"], reply)
        await wait_count(sink, 8)
        [_, relay] = to(sink, REPORTER)
        assert relay.message["From"].endswith(f"<{SECURITY}>")
        assert relay.message.get_content_type() == "multipart/encrypted"
        assert relay.message["In-Reply-To"] == "<r2@example.net>"
        assert b"Confirmed; patch soon." not in relay.data
        clear = decrypt(pgp_home, relay.data)
        assert b"Confirmed; patch soon." in clear
        # 4. The reporter asks for an earlier date: the timeline moves, with reasons.
        async with app.store.unit() as tx:
            case = await case_store.get_case(tx, CASE1)
            policy = app.reminders.cases_cfg.policy_for(2026) if app.reminders else None
            assert policy is not None
            moved = apply_requested_date(case.timeline, datetime(2026, 12, 11, 12, tzinfo=UTC),
                                         False, policy)
            await case_store.update_case(tx, CASE1, "cli:test", {}, timeline=moved)
        async with app.store.unit() as tx:
            case = await case_store.get_case(tx, CASE1)
        assert case.embargo_at == datetime(2026, 12, 11, 12, tzinfo=UTC)
        assert case.timeline.predisclosure_at == datetime(2026, 11, 27, 12, tzinfo=UTC)
        # 5. Reminders fire once, also across a restart.
        assert app.reminders is not None
        await settle(app)
        if app.reminders.rearming is not None:  # a re-arm after the last commit: let it finish
            await app.reminders.rearming
        clock.set(datetime(2026, 11, 27, 13, tzinfo=UTC))
        assert await app.reminders.dispatch(clock.now()) == 2  # pre-disclosure, no patch
        assert await app.reminders.dispatch(clock.now()) == 0
        await wait_count(sink, 12)
    second = App.create(pgp_app_config, clock=clock)
    await second.start()  # dispatches at start-up: nothing new is due
    try:
        assert second.reminders is not None
        assert await second.reminders.dispatch(clock.now()) == 0
        async with second.store.unit() as tx:
            assert len(await case_store.sent_reminders(tx, CASE1)) == 2
        clock.set(datetime(2026, 12, 11, 1, tzinfo=UTC))
        assert await second.reminders.dispatch(clock.now()) == 1  # release day
        assert await second.reminders.dispatch(clock.now()) == 0
        await wait_count(sink, 14)
        subjects = sorted({str(r.message["Subject"]) for r in sink.received
                           if "Reminder" in str(r.message["Subject"])})
        assert len(subjects) == 3, subjects
        await settle(second)
    finally:
        await second.stop()


async def test_report_without_integrity_protection_alerts_and_yields_nothing(
        pgp_app_config: Settings, sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    async with running(pgp_app_config, clock, members=()) as app:
        secret = b"Details that gpg must not hand out.\r\n"
        await lmtp_send(app, REPORTER, [SECURITY],
                        encrypted_report(pgp_home, pgp_keys, secret, mdc=False))
        await settle(app)
        await wait_count(sink, 5)  # ack, two copies, an alert to each member
        alerts = [r for r in sink.received if "alert" in str(r.message["Subject"])]
        assert alerts and all(secret not in r.data for r in sink.received)
        for member in ("alice@example.org", "bob@example.org"):
            for rec in to(sink, member):
                if rec.message.get_content_type() == "multipart/encrypted":
                    assert secret not in decrypt(pgp_home, rec.data)


@pytest.mark.parametrize("forgery", ["outsider", "unsigned", "wrong_key", "display_name"])
async def test_forged_team_reply_never_reaches_reporter(
        pgp_app_config: Settings, sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys, forgery: str) -> None:
    async with running(pgp_app_config, clock, members=()) as app:
        report = message(f"Reporter <{REPORTER}>", "Bug", "<r1@example.net>", b"Bug.\r\n")
        await lmtp_send(app, REPORTER, [SECURITY], report)
        await wait_count(sink, 3)
        entity = b"Content-Type: text/plain; charset=utf-8\r\n\r\nPlease send your key.\r\n"
        sender, body = "Alice <alice@example.org>", entity
        if forgery == "outsider":
            sender = "Eve <eve@evil.example>"
        elif forgery == "wrong_key":
            sig = detach_sign(pgp_keys.foreign_home, entity, pgp_keys.outsider)
            body = build_signed_mime(entity, sig, "forged")
        elif forgery == "display_name":
            sender = '"alice@example.org" <eve@evil.example>'
            body = build_signed_mime(entity, detach_sign(pgp_home, entity, pgp_keys.moderator),
                                     "x")
        forged = message(sender, f"Re: [{CASE1}] Bug", "<f1@evil.example>", body,
                         to=f"security+{CASE1}@example.org")
        await lmtp_send(app, "eve@evil.example", [f"security+{CASE1}@example.org"], forged)
        await settle(app)
        await wait_count(sink, 5)  # it is still a message of the case: the team sees it
        assert len(to(sink, REPORTER)) == 1, "only the acknowledgement reached the reporter"
        async with app.store.unit() as tx:
            kinds = [m["kind"] for m in await case_store.messages(tx, CASE1)]
        assert kinds[0] == "report" and kinds[1] in ("follow_up", "team_note")


async def test_auto_responder_report_opens_case_without_ack(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock) -> None:
    async with running(make_config(sink=sink), clock, members=()) as app:
        for i, extra in enumerate(("Auto-Submitted: auto-replied\r\n", "Precedence: bulk\r\n")):
            data = message("Bot <bot@elsewhere.example>", "Out of office", f"<o{i}@x.example>",
                           b"I am away.\r\n", extra=extra)
            await lmtp_send(app, "bot@elsewhere.example", [SECURITY], data)
        await settle(app)
        await wait_count(sink, 4)  # two team copies each
        assert to(sink, "bot@elsewhere.example") == []
        assert all(r.message["X-Listbot-Case"] for r in sink.received)


async def test_party_gets_its_case_only_and_the_gate_knows_it(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock) -> None:
    vendor = "psirt@vendor.example"
    async with running(make_config(sink=sink), clock, members=()) as app:
        await lmtp_send(app, REPORTER, [SECURITY],
                        message(REPORTER, "Bug one", "<b1@example.net>", b"One.\r\n"))
        await lmtp_send(app, "other@example.com", [SECURITY],
                        message("other@example.com", "Bug two", "<b2@example.com>", b"Two\r\n"))
        await settle(app)
        async with app.store.unit() as tx:
            await case_store.add_party(tx, CASE1, vendor, "Vendor", "cli:test")
        facts = await app.gate.read()
        assert vendor in facts.case_parties[CASE1]
        assert vendor not in facts.case_parties["SEC-2026-0002"]
        await lmtp_send(app, REPORTER, [f"security+{CASE1}@example.org"],
                        message(REPORTER, "more", "<b3@example.net>", b"More.\r\n"))
        await lmtp_send(app, "other@example.com", [SECURITY],
                        message("other@example.com", "Re: Bug two", "<b4@example.com>",
                                b"More two\r\n", extra="In-Reply-To: <b2@example.com>\r\n"))
        await settle(app)
        await wait_count(sink, 11)  # 2 acks, 4x2 team copies, 1 party copy
        [party_copy] = to(sink, vendor)
        assert CASE1 in party_copy.message["Subject"]
        async with app.store.unit() as tx:
            await case_store.remove_party(tx, CASE1, vendor, "cli:test")
        assert vendor not in (await app.gate.read()).case_parties[CASE1]
        entries = await app.store.audit_listing(subject=f"case:{CASE1}")
        assert {"case.party_added", "case.party_removed"} <= {e.action for e in entries}


async def test_party_removed_before_delivery_is_refused_and_the_team_alerted(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock) -> None:
    vendor = "psirt@vendor.example"
    async with running(make_config(sink=sink), clock, members=()) as app:
        await lmtp_send(app, REPORTER, [SECURITY],
                        message(REPORTER, "Bug one", "<b1@example.net>", b"One.\r\n"))
        await settle(app)
        async with app.store.unit() as tx:
            await case_store.add_party(tx, CASE1, vendor, "Vendor", "cli:test")
        # The relay defers the party's copy; the team removes the party meanwhile.
        sink.rcpt_responder = lambda rcpt: "451 4.3.0 try later" if vendor in rcpt else None
        await lmtp_send(app, REPORTER, [f"security+{CASE1}@example.org"],
                        message(REPORTER, "more", "<b3@example.net>", b"More.\r\n"))
        await settle(app)
        await deferred_once(app, vendor)
        async with app.store.unit() as tx:
            await case_store.remove_party(tx, CASE1, vendor, "cli:test")
        sink.rcpt_responder = None
        clock.advance(timedelta(hours=1))
        app.outbound_waker.wake()
        await outbox_settled(app)
        assert to(sink, vendor) == []
        (refused,) = await app.store.outbox_listing([OutboxState.REFUSED])
        assert refused.recipient == vendor and refused.case_id == CASE1
        alerts = [r for r in sink.received if b"[listbot alert]" in r.data]
        assert alerts and sorted(alerts[-1].rcpts) == sorted(app.cfg.team_recipients)



NEWCOMER = "newcomer@example.org"


def _with_key_attached(sender: str, subject: str, mid: str, key: bytes, extra: str) -> bytes:
    body = (b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
            b"Content-Type: text/plain\r\n\r\nHere is my key.\r\n--b\r\n"
            b"Content-Type: application/pgp-keys\r\n\r\n" + key.replace(b"\n", b"\r\n")
            + b"\r\n--b--\r\n")
    return message(sender, subject, mid, body, extra=extra)


async def _team_reply(app: App, home: Path, keys: PgpKeys, text: bytes, mid: str,
                      in_reply_to: str) -> None:
    entity = b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + text
    signed = build_signed_mime(entity, detach_sign(home, entity, keys.moderator), mid)
    reply = message("Alice <alice@example.org>", f"Re: [{CASE1}] Bug", mid, signed,
                    to=f"security+{CASE1}@example.org", extra=f"In-Reply-To: {in_reply_to}\r\n")
    await lmtp_send(app, "alice@example.org", [f"security+{CASE1}@example.org"], reply)


async def test_a_key_the_reporter_attaches_to_a_follow_up_encrypts_later_replies(
        pgp_app_config: Settings, sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    own = pgp_fixtures.new_home()
    try:
        fpr = pgp_fixtures.make_key(own, f"Newcomer <{NEWCOMER}>")
        async with running(pgp_app_config, clock, members=()) as app:
            await lmtp_send(app, NEWCOMER, [SECURITY], message(
                NEWCOMER, "Bug", "<n1@example.org>", b"Plain report.\r\n"))
            await settle(app)
            await lmtp_send(app, NEWCOMER, [SECURITY], _with_key_attached(
                NEWCOMER, "Re: Bug", "<n2@example.org>", pgp_fixtures.export_public(own, fpr),
                "In-Reply-To: <n1@example.org>\r\n"))
            await settle(app)
            async with app.store.unit() as tx:
                assert (await case_store.get_case(tx, CASE1)).reporter_fingerprint == fpr
            [alert] = await app.store.audit_listing(action_prefix="alert.case_reporter_key")
            assert alert.detail["fingerprint"] == fpr, "the team is told to check the key"
            await _team_reply(app, pgp_home, pgp_keys, b"Confirmed.\r\n", "<a1@example.org>",
                              "<n2@example.org>")
            await settle(app)
            await outbox_settled(app)
            [relay] = [r for r in to(sink, NEWCOMER) if "Re:" in str(r.message["Subject"])]
            assert relay.message.get_content_type() == "multipart/encrypted"
            assert b"Confirmed." not in relay.data
            # The reporter's keyring lacks the team key: gpg decrypts, then says it
            # cannot check the signature (exit 2).
            block = re.search(rb"-----BEGIN PGP MESSAGE-----.*?-----END PGP MESSAGE-----",
                              relay.data, re.DOTALL)
            assert block is not None
            assert b"Confirmed." in gpg(own, "--decrypt", data=block.group(0),
                                        check=False).stdout
    finally:
        pgp_fixtures.remove_home(own)


async def test_a_key_attached_by_someone_else_never_becomes_the_reporters(
        pgp_app_config: Settings, sink: Sink, clock: FakeClock, pgp_home: Path) -> None:
    other = pgp_fixtures.new_home()
    try:
        fpr = pgp_fixtures.make_key(other, "Bystander <bystander@example.org>")
        async with running(pgp_app_config, clock, members=()) as app:
            await lmtp_send(app, NEWCOMER, [SECURITY], message(
                NEWCOMER, "Bug", "<n1@example.org>", b"Plain report.\r\n"))
            await settle(app)
            # A third party writes into the case with a key of their own.
            await lmtp_send(app, "bystander@example.org", [SECURITY], _with_key_attached(
                "bystander@example.org", f"Re: [{CASE1}] Bug", "<b1@example.org>",
                pgp_fixtures.export_public(other, fpr), "In-Reply-To: <n1@example.org>\r\n"))
            await settle(app)
            async with app.store.unit() as tx:
                assert (await case_store.get_case(tx, CASE1)).reporter_fingerprint is None
            assert await app.store.audit_listing(action_prefix="alert.case_reporter_key") == []
    finally:
        pgp_fixtures.remove_home(other)


async def test_a_party_with_a_key_reads_the_case_only_through_it(
        pgp_app_config: Settings, sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    keyed, plain_party = "psirt@cloud.example", "psirt@vendor.example"
    own = pgp_fixtures.new_home()
    try:
        fpr = pgp_fixtures.make_key(own, f"Cloud PSIRT <{keyed}>")
        pgp_fixtures.import_keys(pgp_home, pgp_fixtures.export_public(own, fpr))
        async with running(pgp_app_config, clock, members=()) as app:
            await lmtp_send(app, REPORTER, [SECURITY], encrypted_report(
                pgp_home, pgp_keys, b"The parser overflows.\r\n"))
            await settle(app)
            async with app.store.unit() as tx:
                await case_store.add_party(tx, CASE1, keyed, "Cloud", "cli:test",
                                           fingerprint=fpr)
                await case_store.add_party(tx, CASE1, plain_party, "Vendor", "cli:test")
            # The reporter's follow-up is encrypted to the team key, like the report.
            secret = b"It also overflows on 4.19.\r\n"
            inner = b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + secret
            follow = message(f"Reporter <{REPORTER}>", "Re: Heap overflow", "<r2@example.net>",
                             build_encrypted_mime(encrypt_to(pgp_home, inner, pgp_keys.team),
                                                  "follow"),
                             extra="In-Reply-To: <r1@example.net>\r\n")
            await lmtp_send(app, REPORTER, [SECURITY], follow)
            await settle(app)
            await outbox_settled(app)
            [sealed] = to(sink, keyed)
            assert sealed.message.get_content_type() == "multipart/encrypted"
            assert CASE1 in sealed.message["Subject"]
            assert secret not in sealed.data
            block = re.search(rb"-----BEGIN PGP MESSAGE-----.*?-----END PGP MESSAGE-----",
                              sealed.data, re.DOTALL)
            assert block is not None
            assert secret in gpg(own, "--decrypt", data=block.group(0)).stdout, \
                "the party reads the decrypted report, not ciphertext to the team key"
            # A party without a key still gets the original bytes, as before.
            [original] = to(sink, plain_party)
            assert secret not in original.data
    finally:
        pgp_fixtures.remove_home(own)


async def test_a_party_whose_key_gpg_refuses_gets_nothing_and_the_team_is_told(
        pgp_app_config: Settings, sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    keyed = "psirt@cloud.example"
    async with running(pgp_app_config, clock, members=()) as app:
        await lmtp_send(app, REPORTER, [SECURITY],
                        message(REPORTER, "Bug", "<p1@example.net>", b"Details.\r\n"))
        await settle(app)
        async with app.store.unit() as tx:
            # A fingerprint gpg does not have (the key was deleted from the keyring).
            await case_store.add_party(tx, CASE1, keyed, "Cloud", "cli:test",
                                       fingerprint="0" * 40)
        await lmtp_send(app, REPORTER, [SECURITY], message(
            REPORTER, "Re: Bug", "<p2@example.net>", b"More details.\r\n",
            extra="In-Reply-To: <p1@example.net>\r\n"))
        await settle(app)
        await outbox_settled(app)
        assert to(sink, keyed) == [], "never the plaintext instead of the sealed copy"
        alerts = await app.store.audit_listing(action_prefix="alert.case_copy_withheld")
        assert any(keyed in str(a.detail) for a in alerts)
