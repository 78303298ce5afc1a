"""Throwaway GnuPG homes and keys for tests.

Keys are ed25519 (sign) + cv25519 (encrypt), unprotected, so generation takes
milliseconds. A session-scoped template home holds the usual cast; each test gets
its own copy (`pgp_home`). Homes live under a short /tmp path because gpg-agent's
socket path has a length limit; every agent started is stopped at teardown.

Use from another test module (or list "tests.pgp_fixtures" in a root conftest's
`pytest_plugins`):

    from tests import pgp_fixtures
    pgp_template = pgp_fixtures.pgp_template
    pgp_keys = pgp_fixtures.pgp_keys
    pgp_home = pgp_fixtures.pgp_home
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

GPG = "gpg"
# Inside the validity window of the expired key (created 2020-01-01, expired 2021-01-01).
EXPIRED_KEY_ERA = "20200601T120000"


def gpg(
    home: Path, *args: str, data: bytes | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [GPG, "--homedir", str(home), "--batch", "--no-tty", "--trust-model", "always", *args],
        input=data,
        capture_output=True,
        check=check,
    )


def new_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="lbgpg-"))
    home.chmod(0o700)
    return home


def stop_agent(home: Path) -> None:
    subprocess.run(
        ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False, capture_output=True
    )


def remove_home(home: Path) -> None:
    stop_agent(home)
    shutil.rmtree(home, ignore_errors=True)


def copy_home(src: Path) -> Path:
    dst = new_home()
    shutil.copytree(
        src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("S.*", "*.lock", ".#lk*")
    )
    return dst


def make_key(home: Path, uid: str, *, expire: str = "never", faked_time: str | None = None) -> str:
    """An ed25519 primary (sign) with a cv25519 subkey (encrypt); returns the fingerprint."""
    when = ["--faked-system-time", faked_time] if faked_time else []
    common = ["--pinentry-mode", "loopback", "--passphrase", "", *when, "--status-fd", "1"]
    out = gpg(home, *common, "--quick-gen-key", uid, "ed25519", "sign", expire).stdout.decode()
    created = [line.split()[3] for line in out.splitlines() if "KEY_CREATED" in line]
    assert len(created) == 1, out
    fpr = created[0]
    gpg(home, *common, "--quick-add-key", fpr, "cv25519", "encr", expire)
    return fpr


def make_key_expiring(home: Path, uid: str, expires: datetime) -> str:
    """A key that expires on `expires`'s date, whatever the real date is today.

    gpg refuses an expiry date already past on its own clock, so the key is made
    as if a year earlier; listbot judges expiry on its injected clock, not gpg's.
    """
    made = (expires - timedelta(days=365)).strftime("%Y%m%dT%H%M%S!")
    return make_key(home, uid, expire=expires.strftime("%Y-%m-%d"), faked_time=made)


def export_public(home: Path, fpr: str) -> bytes:
    return gpg(home, "--armor", "--export", fpr).stdout


def export_secret(home: Path, fpr: str) -> bytes:
    return gpg(
        home,
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
        "--armor",
        "--export-secret-keys",
        fpr,
    ).stdout


def import_keys(home: Path, armored: bytes) -> None:
    gpg(home, "--import", data=armored)


def revoke(home: Path, fpr: str) -> None:
    """Import the revocation certificate gpg stored when it made the key."""
    cert = (home / "openpgp-revocs.d" / f"{fpr}.rev").read_text()
    # gpg guards the stored certificate against accidental import with a leading colon.
    import_keys(
        home,
        cert.replace(
            ":-----BEGIN PGP PUBLIC KEY BLOCK", "-----BEGIN PGP PUBLIC KEY BLOCK"
        ).encode(),
    )


def clearsign(home: Path, text: bytes, fpr: str, *, faked_time: str | None = None) -> bytes:
    when = ["--faked-system-time", faked_time] if faked_time else []
    return gpg(
        home, *when, "--local-user", fpr, "--digest-algo", "SHA256", "--clearsign", data=text
    ).stdout


def detach_sign(home: Path, data: bytes, fpr: str, *, faked_time: str | None = None) -> bytes:
    when = ["--faked-system-time", faked_time] if faked_time else []
    return gpg(
        home,
        *when,
        "--local-user",
        fpr,
        "--digest-algo",
        "SHA256",
        "--armor",
        "--detach-sign",
        data=data,
    ).stdout


def encrypt_to(home: Path, data: bytes, fpr: str, *extra: str) -> bytes:
    return gpg(home, "--armor", "--recipient", fpr, *extra, "--encrypt", data=data).stdout


def encrypt_without_mdc(home: Path, data: bytes, fpr: str) -> bytes:
    """A ciphertext without integrity protection (legacy CAST5, no MDC packet)."""
    return encrypt_to(home, data, fpr, "--rfc2440", "--cipher-algo", "CAST5")


@dataclass(frozen=True)
class PgpKeys:
    team: str
    moderator: str
    member: str
    reporter: str
    expired: str  # valid 2020-01-01 .. 2021-01-01
    outsider: str  # public key known; secret only in `foreign_home`
    foreign_home: Path  # a home that holds the outsider's secret and everyone's public keys


@pytest.fixture(scope="session")
def pgp_template() -> Iterator[tuple[Path, PgpKeys]]:
    home, foreign = new_home(), new_home()
    try:
        team = make_key(home, "Security Team <security@example.org>")
        moderator = make_key(home, "Moderator <mod@example.org>")
        member = make_key(home, "Vendor Security <security@vendor.example>")
        reporter = make_key(home, "Reporter <reporter@example.net>")
        expired = make_key(
            home, "Expired <old@example.org>", expire="2021-01-01", faked_time="20200101T000000!"
        )
        outsider = make_key(foreign, "Outsider <outsider@example.com>")
        import_keys(home, export_public(foreign, outsider))
        import_keys(foreign, gpg(home, "--armor", "--export").stdout)
        stop_agent(home)
        stop_agent(foreign)
        yield home, PgpKeys(team, moderator, member, reporter, expired, outsider, foreign)
    finally:
        remove_home(home)
        remove_home(foreign)


@pytest.fixture
def pgp_keys(pgp_template: tuple[Path, PgpKeys]) -> PgpKeys:
    return pgp_template[1]


@pytest.fixture
def pgp_home(pgp_template: tuple[Path, PgpKeys]) -> Iterator[Path]:
    home = copy_home(pgp_template[0])
    try:
        yield home
    finally:
        remove_home(home)
