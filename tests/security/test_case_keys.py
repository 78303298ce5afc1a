"""Reporter keys on security@: an attached key speaks only for its sender, the first key
known for an address wins, and user ids match only by exact addr-spec
(docs/design.md "PGP is checked, not trusted")."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from listbot.app import App
from listbot.core.clock import FakeClock
from listbot.core.mail.pgp_keys import KeyInfo
from listbot.core.store import cases as case_store
from listbot.security.reporter_keys import choose_attached, known_for, uid_address
from listbot.settings import Settings
from tests import pgp_fixtures
from tests.daemon import lmtp_send, running, settle
from tests.pgp_fixtures import PgpKeys, export_public, gpg, make_key, new_home, remove_home
from tests.sink import Sink

pgp_template = pgp_fixtures.pgp_template
pgp_keys = pgp_fixtures.pgp_keys
pgp_home = pgp_fixtures.pgp_home

SECURITY = "security@example.org"
VICTIM = "victim@example.org"
EVE = "eve@evil.example"
REPORTER = "reporter@example.net"  # has a key in the team's keyring
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


@pytest.fixture
def eve_home() -> Iterator[Path]:
    home = new_home()
    try:
        yield home
    finally:
        remove_home(home)


def eve_key(home: Path, *uids: str) -> tuple[str, bytes]:
    """Eve's key carrying the given user ids; (fingerprint, armored public key)."""
    fpr = make_key(home, uids[0])
    for uid in uids[1:]:
        gpg(home, "--quick-add-uid", fpr, uid)
    return fpr, export_public(home, fpr).replace(b"\n", b"\r\n")


def with_key(sender: str, subject: str, mid: str, key: bytes) -> bytes:
    head = (f"From: {sender}\r\nTo: {SECURITY}\r\nSubject: {subject}\r\nMessage-ID: {mid}\r\n"
            "MIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b"\r\n\r\n')
    return (head.encode() + b"--b\r\nContent-Type: text/plain\r\n\r\nA bug.\r\n"
            b"--b\r\nContent-Type: application/pgp-keys\r\n\r\n" + key + b"\r\n--b--\r\n")


def plain(sender: str, subject: str, mid: str) -> bytes:
    return (f"From: {sender}\r\nTo: {SECURITY}\r\nSubject: {subject}\r\nMessage-ID: {mid}\r\n"
            "Content-Type: text/plain\r\n\r\nAnother bug.\r\n").encode()


@pytest.fixture
def keys_config(make_config: Callable[..., Settings], sink: Sink, pgp_home: Path,
                pgp_keys: PgpKeys) -> Settings:
    extra: dict[str, Any] = {"pgp": {"home": str(pgp_home), "team_fingerprint": pgp_keys.team}}
    return make_config(extra, sink=sink)


async def reporter_keys(app: App) -> dict[str, str | None]:
    async with app.store.unit() as tx:
        cases = [await case_store.get_case(tx, f"SEC-2026-000{n}") for n in (1, 2)]
    return {c.reporter: c.reporter_fingerprint for c in cases}


async def ignored_key_alerts(app: App) -> list[str]:
    entries = await app.store.audit_listing(action_prefix="alert.case_key_ignored")
    return [str(e.detail) for e in entries]


def in_keyring(home: Path, fpr: str) -> bool:
    return gpg(home, "--list-keys", fpr, check=False).returncode == 0


@pytest.mark.parametrize("uids", [
    ("Victim <victim@example.org>",),  # a key for someone else altogether
    ("Eve <eve@evil.example>", "Victim <victim@example.org>"),  # and one for the sender
    ("Eve <eve@evil.example> <victim@example.org>",),  # two addresses in one user id
    ("Eve (<victim@example.org>) <eve@evil.example>",),  # an address in a comment
])
async def test_key_planted_for_another_address_is_not_used(
        keys_config: Settings, sink: Sink, clock: FakeClock, pgp_home: Path, eve_home: Path,
        uids: tuple[str, ...]) -> None:
    fpr, key = eve_key(eve_home, *uids)
    async with running(keys_config, clock, members=()) as app:
        await lmtp_send(app, EVE, [SECURITY], with_key(f"Eve <{EVE}>", "Bug", "<e1@x>", key))
        await lmtp_send(app, VICTIM, [SECURITY], plain(f"Victim <{VICTIM}>", "Bug 2", "<v1@x>"))
        await settle(app)
        found = await reporter_keys(app)
        assert found[VICTIM] is None, "Eve's key must not speak for the victim"
        victim_uids = gpg(pgp_home, "--list-keys", VICTIM, check=False)
        assert victim_uids.returncode != 0, "no key in the keyring names the victim"
        if found[EVE] is None:
            assert await ignored_key_alerts(app), "the team is told of the ignored key"
        else:
            assert found[EVE] == fpr


async def test_second_key_for_a_known_reporter_is_ignored_and_reported(
        keys_config: Settings, sink: Sink, clock: FakeClock, pgp_home: Path, eve_home: Path,
        pgp_keys: PgpKeys) -> None:
    fpr, key = eve_key(eve_home, f"Reporter <{REPORTER}>")
    async with running(keys_config, clock, members=()) as app:
        await lmtp_send(app, REPORTER, [SECURITY],
                        with_key(f"Reporter <{REPORTER}>", "Bug", "<e1@x>", key))
        await lmtp_send(app, VICTIM, [SECURITY], plain(VICTIM, "Bug 2", "<v1@x>"))
        await settle(app)
        assert (await reporter_keys(app))[REPORTER] == pgp_keys.reporter
        assert not in_keyring(pgp_home, fpr), "the second key is not even imported"
        [alert] = await ignored_key_alerts(app)
        assert fpr in alert and pgp_keys.reporter in alert
        mailed = [r for r in sink.received if "case_key_ignored" in str(r.message["Subject"])]
        assert mailed, "the alert is mailed to the team"


async def test_own_key_is_taken_without_other_names(
        keys_config: Settings, sink: Sink, clock: FakeClock, pgp_home: Path,
        eve_home: Path) -> None:
    fpr, key = eve_key(eve_home, f"Eve <{EVE.upper()}>", f"Victim <{VICTIM}>")
    async with running(keys_config, clock, members=()) as app:
        await lmtp_send(app, EVE, [SECURITY], with_key(f"Eve <{EVE}>", "Bug", "<e1@x>", key))
        await lmtp_send(app, VICTIM, [SECURITY], plain(VICTIM, "Bug 2", "<v1@x>"))
        await settle(app)
        assert await reporter_keys(app) == {EVE: fpr, VICTIM: None}
        listed = gpg(pgp_home, "--with-colons", "--list-keys", fpr).stdout.decode()
        assert VICTIM not in listed and EVE.upper() in listed
        assert await ignored_key_alerts(app) == []


@pytest.mark.parametrize(("uid", "address"), [
    ("Victim <victim@example.org>", VICTIM),
    ("victim@Example.ORG", VICTIM),
    ("Victim <Victim@example.org>", VICTIM),
    ("Eve <eve-victim@example.org>", "eve-victim@example.org"),
    ("Eve <victim@example.org.evil>", "victim@example.org.evil"),
    ("Eve <eve@evil.example> <victim@example.org>", None),
    ("Eve (<victim@example.org>) <eve@evil.example>", None),
    ("Victim", None),
    ("<victim@example.org", None),
])
def test_uid_address_is_the_exact_addr_spec(uid: str, address: str | None) -> None:
    assert uid_address(uid) == address


def key(fpr: str, *uids: str, created: int = 1) -> KeyInfo:
    return KeyInfo(fingerprint=fpr * 40, uids=uids, created=datetime(2020, created, 1, tzinfo=UTC),
                   expires=None, can_encrypt=True, can_sign=True, revoked=False,
                   has_secret=False)


@pytest.mark.parametrize("uid", ["<eve-victim@example.org>", "<victim@example.org.evil>",
                                 "V <victim@example.org> <x@y.example>", "xvictim@example.org"])
def test_look_alike_uid_is_no_key_for_the_address(uid: str) -> None:
    assert known_for(VICTIM, [key("A", uid)], None, NOW) is None


def test_first_key_wins() -> None:
    first, second = key("A", VICTIM, created=1), key("B", f"V <{VICTIM}>", created=2)
    assert known_for(VICTIM, [second, first], None, NOW) == first.fingerprint
    choice = choose_attached(VICTIM, [second], [first], None, NOW)
    assert choice.fingerprint is None and choice.problem and first.fingerprint in choice.problem
    assert choose_attached(VICTIM, [first], [first], None, NOW).fingerprint == first.fingerprint
    registered = choose_attached(VICTIM, [first], [], second.fingerprint, NOW)
    assert registered.fingerprint is None and registered.problem


async def test_member_with_expired_key_gets_nothing_and_the_rest_get_the_report(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    cfg = make_config({
        "pgp": {"home": str(pgp_home), "team_fingerprint": pgp_keys.team},
        "team": {"members": [
            {"name": "Alice", "address": "alice@example.org", "fingerprint": pgp_keys.moderator},
            {"name": "Bob", "address": "bob@example.org", "fingerprint": pgp_keys.member},
            {"name": "Carol", "address": "carol@example.org", "fingerprint": pgp_keys.expired}]},
        "cases": {"encrypt_team_copies": True},
    }, sink=sink)
    secret = b"The parser overflows on a long header."
    report = (f"From: {REPORTER}\r\nTo: {SECURITY}\r\nSubject: Overflow\r\n"
              "Message-ID: <r1@example.net>\r\nContent-Type: text/plain\r\n\r\n").encode() + secret
    async with running(cfg, clock, members=()) as app:
        await lmtp_send(app, REPORTER, [SECURITY], report)
        await settle(app)
        async with app.store.unit() as tx:
            case = await case_store.get_case(tx, "SEC-2026-0001")
        assert case.reporter == REPORTER
        # ack to the reporter, ciphertext to Alice and Bob, the alert to all three
        await sink.wait_deliveries(6)
        by = {r: [rec for to, rec in sink.deliveries() if to == r]
              for r in (REPORTER, "alice@example.org", "bob@example.org", "carol@example.org")}
        assert len(by[REPORTER]) == 1 and "SEC-2026-0001" in str(by[REPORTER][0].message["Subject"])
        for member in ("alice@example.org", "bob@example.org"):
            copies = [r for r in by[member]
                      if r.message.get_content_type() == "multipart/encrypted"]
            assert len(copies) == 1 and secret not in copies[0].data
        [alert] = by["carol@example.org"]
        assert "alert" in str(alert.message["Subject"]) and secret not in alert.data
        assert b"carol@example.org" in alert.data and b"expired" in alert.data
        assert all(secret not in rec.data for rec in sink.received)


def test_only_a_single_key_per_attachment_is_taken() -> None:
    mine, other = key("A", f"Eve <{EVE}>"), key("B", f"Eve <{EVE}>", created=2)
    assert choose_attached(EVE, [mine], [], None, NOW).fingerprint == mine.fingerprint
    both = choose_attached(EVE, [mine, other], [], None, NOW)
    assert both.fingerprint is None and both.problem


def test_attached_key_that_cannot_encrypt_is_not_taken() -> None:
    expired = replace(key("A", f"Eve <{EVE}>"), expires=datetime(2021, 1, 1, tzinfo=UTC))
    choice = choose_attached(EVE, [expired], [], None, NOW)
    assert choice.fingerprint is None and choice.problem and "cannot encrypt" in choice.problem
