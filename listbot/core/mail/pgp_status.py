"""What gpg's status lines say: a signature or a decryption counts only as stated here.

A signature counts only when exactly one signature is present and gpg reports it
GOOD and VALID; a decryption only when gpg reports it complete and integrity
protected. Decisions are taken from gpg's status lines only
(docs/design.md "PGP is checked, not trusted").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from listbot.core.mail.pgp_keys import gpg_time

_STATUS_PREFIX = "[GNUPG:] "
_SIGNATURE_PROBLEMS = {
    "BADSIG": "bad signature",
    "NO_PUBKEY": "signing key not in keyring",
    "ERRSIG": "signature could not be checked",
    "EXPSIG": "signature expired",
    "EXPKEYSIG": "signing key expired",
    "REVKEYSIG": "signing key revoked",
}


@dataclass(frozen=True)
class Verification:
    valid: bool
    fingerprint: str | None  # primary key fingerprint of the signer, when gpg named one
    reason: str
    signed_content: bytes | None  # exactly what the signature covers; None unless valid


@dataclass(frozen=True)
class Decryption:
    ok: bool
    plaintext: bytes | None  # None unless ok
    reason: str
    signature: Verification | None  # None when the plaintext carried no signature


@dataclass(frozen=True)
class GpgOutcome:
    """What one gpg run produced: exit code, parsed status lines, stdout bytes."""

    returncode: int
    status: tuple[tuple[str, str], ...]
    output: bytes

    def names(self) -> list[str]:
        return [name for name, _ in self.status]

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.status if key == name]


def parse_status(stderr: str) -> tuple[tuple[str, str], ...]:
    lines = []
    for line in stderr.splitlines():
        if line.startswith(_STATUS_PREFIX):
            name, _, value = line[len(_STATUS_PREFIX) :].partition(" ")
            lines.append((name, value.strip()))
    return tuple(lines)


@dataclass(frozen=True)
class SignatureFacts:
    signing_fpr: str  # the key that made the signature (may be a subkey)
    primary_fpr: str
    expires: datetime | None  # of the signature itself


def judge_signature(outcome: GpgOutcome) -> SignatureFacts | tuple[str, str | None]:
    """Exactly one GOOD+VALID signature, or (reason, fingerprint-if-known) why not."""
    validsig = outcome.values("VALIDSIG")
    parts = validsig[0].split() if len(validsig) == 1 else []
    fpr = parts[9] if len(parts) > 9 else None
    problem = _signature_problem(outcome, parts)
    if problem is not None or fpr is None:
        return (problem or "signature not confirmed good and valid", fpr)
    expires = None if parts[3] == "0" else gpg_time(parts[3])
    return SignatureFacts(signing_fpr=parts[0], primary_fpr=fpr, expires=expires)


def _signature_problem(outcome: GpgOutcome, validsig: list[str]) -> str | None:
    names = outcome.names()
    kinds = ("GOODSIG", "BADSIG", "ERRSIG", "EXPSIG", "EXPKEYSIG", "REVKEYSIG")
    count = max(names.count("NEWSIG"), sum(names.count(k) for k in kinds))
    if count != 1:
        return "unsigned" if count == 0 else "more than one signature"
    known = next((reason for name, reason in _SIGNATURE_PROBLEMS.items() if name in names), None)
    goodsig = outcome.values("GOODSIG")
    confirmed = len(goodsig) == 1 and len(validsig) >= 10
    # GOODSIG names the long key id of the key that VALIDSIG names in full.
    consistent = confirmed and validsig[0].endswith(goodsig[0].split()[0].upper())
    checks = (
        (known is not None, known),
        ("ERROR" in names or "FAILURE" in names, "gpg reported an error"),
        (not confirmed, "signature not confirmed good and valid"),
        (not consistent, "inconsistent signature status"),
    )
    return next((reason for failed, reason in checks if failed), None)


def judge_decryption(outcome: GpgOutcome) -> str | None:
    """None when the decryption is complete and integrity protected, else the reason."""
    names = outcome.names()
    checks = (
        ("BEGIN_DECRYPTION" not in names and "DECRYPTION_FAILED" not in names
         and "NO_SECKEY" not in names, "not encrypted"),
        ("NO_SECKEY" in names and "DECRYPTION_OKAY" not in names, "no secret key"),
        ("DECRYPTION_FAILED" in names, "decryption failed"),
        ("BADMDC" in names, "integrity check failed"),
        ("ERROR" in names or "FAILURE" in names, "gpg reported an error"),
        (names.count("DECRYPTION_OKAY") != 1 or "END_DECRYPTION" not in names,
         "decryption incomplete"),
        (not _integrity_protected(outcome), "not integrity protected"),
    )  # fmt: skip
    return next((reason for failed, reason in checks if failed), None)


def _integrity_protected(outcome: GpgOutcome) -> bool:
    infos = outcome.values("DECRYPTION_INFO")
    if len(infos) != 1:
        return False
    fields = infos[0].split()
    mdc = fields[0] if fields else "0"
    aead = fields[2] if len(fields) > 2 else "0"
    if aead != "0":
        return True
    return mdc != "0" and "GOODMDC" in outcome.names()


_CLEAR_BEGIN = b"-----BEGIN PGP SIGNED MESSAGE-----"
_SIG_BEGIN = b"-----BEGIN PGP SIGNATURE-----"
_SIG_END = b"-----END PGP SIGNATURE-----"
_HASH_HEADER_RE = re.compile(rb"Hash: [A-Za-z0-9]+(?:, ?[A-Za-z0-9]+)*")


def clearsigned_shape_problem(data: bytes) -> str | None:
    """Why `data` is not exactly one clear-signed block (whitespace around allowed)."""
    lines = [line.rstrip(b" \t\r") for line in data.replace(b"\r\n", b"\n").split(b"\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    if not lines or lines[0] != _CLEAR_BEGIN:
        return "unsigned text before the signed block" if _CLEAR_BEGIN in lines else "unsigned"
    if lines.count(_CLEAR_BEGIN) > 1 or lines.count(_SIG_BEGIN) > 1:
        return "more than one signature"
    if lines[-1] != _SIG_END or lines.count(_SIG_BEGIN) != 1 or lines.count(_SIG_END) != 1:
        return (
            "unsigned text after the signed block"
            if _SIG_END in lines
            else ("malformed signed block")
        )
    body_start = lines.index(b"") if b"" in lines else len(lines)
    headers = lines[1:body_start]
    if not headers or not all(_HASH_HEADER_RE.fullmatch(h) for h in headers):
        return "malformed signed block"
    text = lines[body_start + 1 : lines.index(_SIG_BEGIN)]
    if any(line.startswith(b"-") and not line.startswith(b"- ") for line in text):
        return "malformed signed block"
    return None
