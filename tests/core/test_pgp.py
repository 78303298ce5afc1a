"""docs/design.md "PGP is checked, not trusted": real gpg, throwaway keys."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listbot.core.errors import PGPError
from listbot.core.mail.pgp import Keyring
from listbot.core.mail.pgp_status import GpgOutcome, judge_decryption, judge_signature, parse_status
from tests import pgp_fixtures
from tests.pgp_fixtures import (
    EXPIRED_KEY_ERA,
    PgpKeys,
    clearsign,
    encrypt_to,
    encrypt_without_mdc,
    export_public,
    export_secret,
    gpg,
    make_key,
    new_home,
    remove_home,
    revoke,
)

# Fixtures are bound as plain names (an import would be flagged as shadowed).
pgp_template = pgp_fixtures.pgp_template
pgp_keys = pgp_fixtures.pgp_keys
pgp_home = pgp_fixtures.pgp_home

NOW = datetime.now(UTC)
TEXT = "Advisory text\n- a line starting with a dash\nFrom the team\n"


@pytest.fixture
def keyring(pgp_home: Path) -> Keyring:
    return Keyring(pgp_home)


# -- keys -------------------------------------------------------------------


async def test_key_info_describes_generated_key(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    info = await keyring.key_info(pgp_keys.team, check_secret=True)
    assert info is not None
    assert info.fingerprint == pgp_keys.team
    assert info.uids == ("Security Team <security@example.org>",)
    assert info.can_sign and info.can_encrypt and info.has_secret and not info.revoked
    assert info.expires is None and info.usable_at(NOW)
    assert not info.expires_within(NOW, timedelta(days=3650))
    assert await keyring.key_info("0" * 40) is None


async def test_key_info_expiry(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    info = await keyring.key_info(pgp_keys.expired)
    assert info is not None and info.expires is not None
    assert info.expires.year == 2021
    assert not info.usable_at(NOW)
    assert info.usable_at(datetime(2020, 6, 1, tzinfo=UTC))
    assert info.expires_within(datetime(2020, 12, 1, tzinfo=UTC), timedelta(days=60))
    assert not info.expires_within(datetime(2020, 6, 1, tzinfo=UTC), timedelta(days=60))


async def test_list_keys_public_and_secret(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    public = {k.fingerprint: k for k in await keyring.list_keys()}
    secret = {k.fingerprint for k in await keyring.list_keys(secret=True)}
    assert pgp_keys.outsider in public and public[pgp_keys.outsider].has_secret is None
    assert pgp_keys.team in secret and pgp_keys.outsider not in secret


async def test_keyring_creates_private_home(tmp_path: Path) -> None:
    home = tmp_path / "new" / "gnupg"
    Keyring(home)
    assert home.is_dir() and (home.stat().st_mode & 0o777) == 0o700


async def test_import_public_key(pgp_keys: PgpKeys) -> None:
    home = new_home()
    try:
        ring = Keyring(home)
        imported = await ring.import_keys(export_public(pgp_keys.foreign_home, pgp_keys.member))
        assert [k.fingerprint for k in imported] == [pgp_keys.member]
        assert not imported[0].has_secret
    finally:
        remove_home(home)


async def test_import_refuses_secret_key_unless_allowed(pgp_keys: PgpKeys) -> None:
    home = new_home()
    try:
        ring = Keyring(home)
        secret = export_secret(pgp_keys.foreign_home, pgp_keys.outsider)
        assert secret.startswith(b"-----BEGIN PGP PRIVATE KEY BLOCK-----")
        with pytest.raises(PGPError):
            await ring.import_keys(secret)
        assert await ring.list_keys() == ()
        imported = await ring.import_keys(secret, allow_secret=True)
        assert imported[0].has_secret
    finally:
        remove_home(home)


async def test_revoked_key_is_reported_and_its_signature_refused(
    pgp_home: Path, pgp_keys: PgpKeys
) -> None:
    signed = clearsign(pgp_home, TEXT.encode(), pgp_keys.moderator)
    revoke(pgp_home, pgp_keys.moderator)
    ring = Keyring(pgp_home)
    info = await ring.key_info(pgp_keys.moderator)
    assert info is not None and info.revoked and not info.usable_at(NOW)
    result = await ring.verify_clearsigned(signed, [pgp_keys.moderator], NOW)
    assert not result.valid and result.signed_content is None


# -- signing and clear-signed verification ----------------------------------


async def test_clear_sign_round_trip(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    signed = await keyring.sign_clear(TEXT, pgp_keys.team)
    assert signed.startswith("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n")
    assert "\n- - a line starting with a dash\n" in signed  # dash-escaped
    result = await keyring.verify_clearsigned(signed.encode(), [pgp_keys.team], NOW)
    assert result.valid, result.reason
    assert result.fingerprint == pgp_keys.team
    assert result.signed_content == TEXT.encode()


async def test_sign_with_unknown_key_raises(keyring: Keyring) -> None:
    with pytest.raises(PGPError):
        await keyring.sign_clear(TEXT, "A" * 40)
    with pytest.raises(PGPError):
        await keyring.sign_clear(TEXT, "security@example.org")  # not a fingerprint


async def test_signer_not_on_allowlist(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    signed = clearsign(pgp_keys.foreign_home, TEXT.encode(), pgp_keys.outsider)
    result = await keyring.verify_clearsigned(signed, [pgp_keys.team, pgp_keys.moderator], NOW)
    assert not result.valid
    assert result.fingerprint == pgp_keys.outsider
    assert result.reason == "signer not on allowlist"
    assert result.signed_content is None
    allowed = await keyring.verify_clearsigned(signed, [pgp_keys.outsider.lower()], NOW)
    assert allowed.valid


async def test_signature_from_key_unknown_to_keyring(pgp_keys: PgpKeys) -> None:
    home = new_home()
    try:
        signed = clearsign(pgp_keys.foreign_home, TEXT.encode(), pgp_keys.outsider)
        result = await Keyring(home).verify_clearsigned(signed, [pgp_keys.outsider], NOW)
        assert not result.valid and result.reason == "signing key not in keyring"
    finally:
        remove_home(home)


async def test_signature_by_key_expired_according_to_gpg(
    keyring: Keyring, pgp_home: Path, pgp_keys: PgpKeys
) -> None:
    signed = clearsign(pgp_home, TEXT.encode(), pgp_keys.expired, faked_time=EXPIRED_KEY_ERA)
    result = await keyring.verify_clearsigned(signed, [pgp_keys.expired], NOW)
    assert not result.valid
    assert result.reason == "signing key expired"
    assert result.signed_content is None


async def test_signature_by_key_expired_at_injected_now(pgp_home: Path, pgp_keys: PgpKeys) -> None:
    # gpg's own clock says the key is fine; listbot's clock says it expired.
    fpr = make_key(pgp_home, "Short <short@example.org>", expire="2d")
    ring = Keyring(pgp_home)
    signed = await ring.sign_clear(TEXT, fpr)
    assert (await ring.verify_clearsigned(signed.encode(), [fpr], NOW)).valid
    later = await ring.verify_clearsigned(signed.encode(), [fpr], NOW + timedelta(days=3))
    assert not later.valid and later.reason == "signing key not usable"


async def test_two_clear_signed_blocks(keyring: Keyring, pgp_home: Path, pgp_keys: PgpKeys) -> None:
    one = clearsign(pgp_home, b"first\n", pgp_keys.team)
    two = clearsign(pgp_home, b"second\n", pgp_keys.team)
    result = await keyring.verify_clearsigned(one + two, [pgp_keys.team], NOW)
    assert not result.valid and result.reason == "more than one signature"


async def test_two_signatures_on_one_text(
    keyring: Keyring, pgp_home: Path, pgp_keys: PgpKeys
) -> None:
    signed = gpg(
        pgp_home, "-u", pgp_keys.team, "-u", pgp_keys.moderator, "--clearsign", data=TEXT.encode()
    ).stdout
    result = await keyring.verify_clearsigned(signed, [pgp_keys.team, pgp_keys.moderator], NOW)
    assert not result.valid and result.reason == "more than one signature"


@pytest.mark.parametrize(
    ("before", "after", "reason"),
    [
        (b"Please also apply this:\n", b"", "unsigned text before the signed block"),
        (b"", b"PS: unsigned instruction\n", "unsigned text after the signed block"),
        (b"\n\n", b"\n  \n", None),
    ],
)
async def test_unsigned_text_around_clear_signed_block(
    keyring: Keyring,
    pgp_home: Path,
    pgp_keys: PgpKeys,
    before: bytes,
    after: bytes,
    reason: str | None,
) -> None:
    signed = clearsign(pgp_home, TEXT.encode(), pgp_keys.team)
    result = await keyring.verify_clearsigned(before + signed + after, [pgp_keys.team], NOW)
    assert result.valid is (reason is None)
    if reason is not None:
        assert result.reason == reason and result.signed_content is None


async def test_tampered_clear_signed_text(
    keyring: Keyring, pgp_home: Path, pgp_keys: PgpKeys
) -> None:
    signed = clearsign(pgp_home, b"Embargo ends 2030-01-01 12:00 UTC\n", pgp_keys.team)
    tampered = signed.replace(b"2030", b"2020")
    result = await keyring.verify_clearsigned(tampered, [pgp_keys.team], NOW)
    assert not result.valid and result.reason == "bad signature"
    assert result.signed_content is None


async def test_extra_armor_header_is_refused(
    keyring: Keyring, pgp_home: Path, pgp_keys: PgpKeys
) -> None:
    signed = clearsign(pgp_home, TEXT.encode(), pgp_keys.team)
    smuggled = signed.replace(b"Hash: SHA256\n", b"Hash: SHA256\nComment: unsigned words\n")
    result = await keyring.verify_clearsigned(smuggled, [pgp_keys.team], NOW)
    assert not result.valid and result.reason == "malformed signed block"


async def test_trailing_whitespace_is_not_part_of_signed_content(
    keyring: Keyring, pgp_home: Path, pgp_keys: PgpKeys
) -> None:
    signed = clearsign(pgp_home, b"line\n", pgp_keys.team)
    padded = signed.replace(b"\nline\n", b"\nline   \t\n")
    assert padded != signed
    result = await keyring.verify_clearsigned(padded, [pgp_keys.team], NOW)
    assert result.valid and result.signed_content == b"line\n"


async def test_crlf_clear_signed_text_verifies(
    keyring: Keyring, pgp_home: Path, pgp_keys: PgpKeys
) -> None:
    signed = clearsign(pgp_home, b"one\ntwo\n", pgp_keys.team)
    result = await keyring.verify_clearsigned(signed.replace(b"\n", b"\r\n"), [pgp_keys.team], NOW)
    assert result.valid, result.reason
    assert result.signed_content == b"one\ntwo\n"


# -- detached signatures ----------------------------------------------------


async def test_detached_round_trip_and_one_byte_change(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    data = b"Content-Type: text/plain\r\n\r\nApprove 7Q2X\r\n"
    signature = await keyring.sign_detached(data, pgp_keys.moderator)
    assert signature.startswith(b"-----BEGIN PGP SIGNATURE-----")
    good = await keyring.verify_detached(data, signature, [pgp_keys.moderator], NOW)
    assert good.valid and good.signed_content == data
    bad = await keyring.verify_detached(
        data.replace(b"7Q2X", b"7Q2Y"), signature, [pgp_keys.moderator], NOW
    )
    assert not bad.valid and bad.reason == "bad signature"


async def test_detached_signature_with_two_signers(
    keyring: Keyring, pgp_home: Path, pgp_keys: PgpKeys
) -> None:
    data = b"approve\r\n"
    both = gpg(
        pgp_home,
        "-u",
        pgp_keys.team,
        "-u",
        pgp_keys.moderator,
        "--armor",
        "--detach-sign",
        data=data,
    ).stdout
    result = await keyring.verify_detached(data, both, [pgp_keys.team, pgp_keys.moderator], NOW)
    assert not result.valid and result.reason == "more than one signature"


async def test_detached_garbage_is_unsigned(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    result = await keyring.verify_detached(b"data", b"not a signature", [pgp_keys.team], NOW)
    assert not result.valid and result.signed_content is None


# -- encryption -------------------------------------------------------------


async def test_encrypt_decrypt_round_trip_hidden_recipients(
    keyring: Keyring, pgp_keys: PgpKeys
) -> None:
    secret = b"embargoed: do not share before 2030\n"
    armored = await keyring.encrypt(
        secret, [pgp_keys.member, pgp_keys.team], hidden_recipients=True
    )
    assert armored.startswith(b"-----BEGIN PGP MESSAGE-----")
    packets = gpg(keyring.home, "--list-packets", data=armored, check=False).stdout
    assert b"keyid 0000000000000000" in packets and pgp_keys.member[-16:].encode() not in packets
    result = await keyring.decrypt(armored)
    assert result.ok and result.plaintext == secret and result.signature is None


async def test_encrypt_names_recipients_by_default(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    armored = await keyring.encrypt(b"x", [pgp_keys.member])
    packets = gpg(keyring.home, "--list-packets", data=armored, check=False).stdout
    assert b"keyid 0000000000000000" not in packets


async def test_encrypt_and_sign(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    armored = await keyring.encrypt(b"signed secret\n", [pgp_keys.team], sign_with=pgp_keys.team)
    result = await keyring.decrypt(armored, [pgp_keys.team], NOW)
    assert result.ok and result.signature is not None
    assert result.signature.valid and result.signature.signed_content == b"signed secret\n"
    other = await keyring.decrypt(armored, [pgp_keys.moderator], NOW)
    assert other.ok and other.signature is not None and not other.signature.valid


async def test_encrypt_to_unknown_recipient_raises(keyring: Keyring) -> None:
    with pytest.raises(PGPError):
        await keyring.encrypt(b"x", ["B" * 40])
    with pytest.raises(PGPError):
        await keyring.encrypt(b"x", [])


async def test_encrypt_to_a_key_gpg_refuses_is_a_pgp_error_even_mid_write(
        keyring: Keyring, pgp_keys: PgpKeys) -> None:
    # gpg refuses the expired key and exits before it reads its input; with more
    # than a pipe's worth of data python-gnupg's writer meets a broken pipe, which
    # callers that handle PGPError must see as one.
    for size in (1, 1 << 20):
        with pytest.raises(PGPError):
            await keyring.encrypt(b"x" * size, [pgp_keys.expired])


async def test_decrypt_with_wrong_key(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    armored = encrypt_to(pgp_keys.foreign_home, b"for the outsider only\n", pgp_keys.outsider)
    result = await keyring.decrypt(armored)
    assert not result.ok and result.plaintext is None and result.reason == "no secret key"


async def test_decrypt_not_encrypted(keyring: Keyring, pgp_home: Path, pgp_keys: PgpKeys) -> None:
    signed_only = gpg(pgp_home, "-u", pgp_keys.team, "--armor", "--sign", data=b"hi\n").stdout
    result = await keyring.decrypt(signed_only)
    assert not result.ok and result.plaintext is None and result.reason == "not encrypted"


async def test_no_mdc_ciphertext_yields_no_plaintext(
    keyring: Keyring, pgp_home: Path, pgp_keys: PgpKeys
) -> None:
    secret = b"unprotected plaintext\n"
    armored = encrypt_without_mdc(pgp_home, secret, pgp_keys.team)
    # gpg does print the plaintext before it fails...
    raw = gpg(pgp_home, "--decrypt", data=armored, check=False)
    assert secret in raw.stdout and raw.returncode != 0
    # ...and listbot throws it away.
    result = await keyring.decrypt(armored)
    assert not result.ok and result.plaintext is None
    assert result.reason == "decryption failed"


async def test_tampered_ciphertext_yields_no_plaintext(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    armored = await keyring.encrypt(b"A" * 2000, [pgp_keys.team])
    binary = gpg(keyring.home, "--dearmor", data=armored).stdout
    flipped = bytearray(binary)
    flipped[-30] ^= 0x01
    result = await keyring.decrypt(bytes(flipped))
    assert not result.ok and result.plaintext is None


# -- status judgement (the stream gpg printed, fed back as text) ------------

FPR = "DCE36A41B742D908C290B6DDCC306C503356052F"
NO_MDC_IGNORED = f"""[GNUPG:] ENC_TO DF0004512573F40E 18 0
[GNUPG:] DECRYPTION_KEY C64704A4A2E6B4C4CDFF6390DF0004512573F40E {FPR} u
[GNUPG:] BEGIN_DECRYPTION
[GNUPG:] DECRYPTION_INFO 0 3 0
[GNUPG:] PLAINTEXT 62 1795598672 p.txt
[GNUPG:] PLAINTEXT_LENGTH 12
[GNUPG:] DECRYPTION_OKAY
[GNUPG:] END_DECRYPTION
"""


def _outcome(stderr: str, rc: int = 0) -> GpgOutcome:
    return GpgOutcome(rc, parse_status(stderr), b"plaintext")


def test_decryption_without_mdc_is_refused_even_when_gpg_says_okay() -> None:
    # What gpg prints with --ignore-mdc-error: it calls it DECRYPTION_OKAY.
    assert judge_decryption(_outcome(NO_MDC_IGNORED)) == "not integrity protected"
    protected = NO_MDC_IGNORED.replace("DECRYPTION_INFO 0 3 0", "DECRYPTION_INFO 2 9 0")
    assert judge_decryption(_outcome(protected)) == "not integrity protected"  # no GOODMDC
    assert judge_decryption(_outcome(protected + "[GNUPG:] GOODMDC\n")) is None
    aead = NO_MDC_IGNORED.replace("DECRYPTION_INFO 0 3 0", "DECRYPTION_INFO 0 9 2")
    assert judge_decryption(_outcome(aead)) is None


def test_status_lines_only_count_at_line_start() -> None:
    fake = f"gpg: [GNUPG:] GOODSIG CC306C503356052F x\nfoo [GNUPG:] VALIDSIG {FPR}\n"
    assert parse_status(fake) == ()
    assert judge_signature(_outcome(fake)) == ("unsigned", None)


def test_goodsig_without_validsig_is_not_valid() -> None:
    stderr = "[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG CC306C503356052F Team\n"
    assert judge_signature(_outcome(stderr))[0] == "signature not confirmed good and valid"


def test_goodsig_for_other_key_than_validsig_is_not_valid() -> None:
    stderr = (
        "[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG 1111111111111111 Team\n"
        f"[GNUPG:] VALIDSIG {FPR} 2026-11-25 1795598677 0 4 0 22 8 01 {FPR}\n"
    )
    assert judge_signature(_outcome(stderr))[0] == "inconsistent signature status"


# -- the event loop and the logs --------------------------------------------


async def test_twenty_concurrent_signatures(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    texts = [f"message {i}\n" for i in range(20)]
    signed = await asyncio.gather(*(keyring.sign_clear(t, pgp_keys.team) for t in texts))
    results = await asyncio.gather(
        *(keyring.verify_clearsigned(s.encode(), [pgp_keys.team], NOW) for s in signed)
    )
    assert [r.signed_content for r in results] == [t.encode() for t in texts]


async def test_calls_run_one_at_a_time_off_the_loop(keyring: Keyring, pgp_keys: PgpKeys) -> None:
    active = 0
    peak = 0
    ticks = 0
    real_engine = keyring._engine

    def counting_engine() -> object:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        return real_engine()

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    original_release = keyring._release

    def release(future: asyncio.Future[object]) -> None:
        nonlocal active
        active -= 1
        original_release(future)

    keyring._engine = counting_engine  # type: ignore[method-assign]
    keyring._release = release  # type: ignore[method-assign]
    tick = asyncio.create_task(ticker())
    await asyncio.gather(*(keyring.sign_detached(b"x", pgp_keys.team) for _ in range(5)))
    tick.cancel()
    assert peak == 1
    assert ticks > 5  # the loop kept running while gpg worked


async def test_cancelled_call_keeps_the_lock_until_gpg_finishes(
    keyring: Keyring, pgp_keys: PgpKeys
) -> None:
    task = asyncio.create_task(keyring.sign_clear(TEXT, pgp_keys.team))
    await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the next call still works once the orphaned one is done
    assert (await keyring.sign_clear(TEXT, pgp_keys.team)).startswith("-----BEGIN PGP")


async def test_nothing_secret_reaches_the_logs(
    keyring: Keyring, pgp_keys: PgpKeys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = b"TOPSECRETPLAINTEXT"
    armored = await keyring.encrypt(secret, [pgp_keys.team])
    await keyring.decrypt(armored)
    await keyring.import_keys(export_public(pgp_keys.foreign_home, pgp_keys.outsider))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "TOPSECRETPLAINTEXT" not in logged
    assert "PUBLIC KEY BLOCK" not in logged and "PGP MESSAGE" not in logged
