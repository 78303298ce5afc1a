"""PGP through gpg: the only module that imports python-gnupg.

Invariant (docs/design.md "PGP is checked, not trusted"). A signature counts only
when exactly one signature is present, gpg reports it GOOD and VALID, its key is
on the caller's allowlist and usable at the caller's `now`. A decryption counts
only when gpg reports it complete and integrity protected; otherwise whatever gpg
printed is thrown away. Decisions are taken from gpg's status lines only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import gnupg

from listbot.core.clock import ensure_utc
from listbot.core.errors import PGPError
from listbot.core.mail.pgp_keys import KeyInfo, key_info_from_listing, normalise_fingerprint
from listbot.core.mail.pgp_status import (
    Decryption,
    GpgOutcome,
    SignatureFacts,
    Verification,
    clearsigned_shape_problem,
    judge_decryption,
    judge_signature,
    parse_status,
)

_T = TypeVar("_T")

# python-gnupg logs key data and message prefixes at DEBUG; nothing of that may
# reach our logs, whatever the root logger's level (docs/design.md "Nothing secret in logs").
_GNUPG_LOG_LEVEL = logging.WARNING

# Options on every gpg call. Human-readable diagnostics go nowhere so that the
# status stream (fd 2, fixed by python-gnupg) cannot be spoofed by text gpg echoes
# from the input; keys are never fetched from the network; trust decisions are
# ours (allowlists from our own config), so gpg's web of trust is not consulted.
_BASE_OPTIONS = (
    "--logger-file", os.devnull,
    "--no-auto-key-retrieve",
    "--no-auto-key-import",
    "--auto-key-locate", "local",
    "--trust-model", "always",
    "--no-greeting",
    "--utf8-strings",
)  # fmt: skip

_CLEARSIGN_HEADER = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256"


def _outcome(result: Any) -> GpgOutcome:
    rc = result.returncode
    data = getattr(result, "data", b"")
    return GpgOutcome(
        returncode=rc if isinstance(rc, int) else -1,
        status=parse_status(str(getattr(result, "stderr", "") or "")),
        output=data if isinstance(data, bytes) else b"",
    )


class Keyring:
    """One GNUPGHOME. gpg runs in a worker thread, one call at a time per keyring."""

    def __init__(self, home: Path, gpg_binary: str = "gpg") -> None:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._home = home
        self._binary = gpg_binary
        self._gpg: Any = None
        self._lock = asyncio.Lock()

    @property
    def home(self) -> Path:
        return self._home

    def _engine(self) -> Any:
        # Created lazily, in the worker thread: constructing it already runs gpg.
        if self._gpg is None:
            logging.getLogger("gnupg").setLevel(_GNUPG_LOG_LEVEL)
            self._gpg = gnupg.GPG(
                gpgbinary=self._binary, gnupghome=str(self._home), options=list(_BASE_OPTIONS)
            )
        return self._gpg

    async def _run(self, call: Callable[[Any], _T]) -> _T:
        await self._lock.acquire()
        try:
            future = asyncio.ensure_future(asyncio.to_thread(lambda: call(self._engine())))
        except BaseException:
            self._lock.release()
            raise
        # A cancelled caller cannot stop the thread: the lock is held until gpg is
        # done, so a later call never runs beside an orphaned one.
        future.add_done_callback(self._release)
        return await asyncio.shield(future)

    def _release(self, future: asyncio.Future[Any]) -> None:
        self._lock.release()
        if not future.cancelled():
            future.exception()  # retrieved, so an abandoned failure is not reported twice

    # -- keys ---------------------------------------------------------------

    def _list(
        self, gpg: Any, secret: bool, keys: Sequence[str] | None = None, *,
        check_secret: bool = False,
    ) -> tuple[KeyInfo, ...]:
        """Keys as gpg lists them. Whether a secret key is present costs a second gpg run:
        only asked for with `check_secret` (else `has_secret` is None)."""
        wanted = list(keys) if keys else None
        public = gpg.list_keys(secret=secret, keys=wanted)
        secret_fprs: set[str] | None = None
        if secret:
            secret_fprs = set(public.fingerprints)
        elif check_secret:
            secret_fprs = set(gpg.list_keys(secret=True, keys=wanted).fingerprints)
        return tuple(key_info_from_listing(raw, secret_fprs) for raw in public)

    async def list_keys(self, secret: bool = False) -> tuple[KeyInfo, ...]:
        return await self._run(lambda gpg: self._list(gpg, secret))

    async def key_info(self, fingerprint: str, *, check_secret: bool = False) -> KeyInfo | None:
        fpr = normalise_fingerprint(fingerprint)
        found = await self._run(lambda gpg: self._list(gpg, False, [fpr],
                                                       check_secret=check_secret))
        return next((k for k in found if k.fingerprint == fpr), None)

    async def scan_keys(self, armored: bytes) -> tuple[KeyInfo, ...]:
        """The public keys in `armored` as gpg reads them, without importing anything."""

        def call(gpg: Any) -> tuple[KeyInfo, ...]:
            if _has_secret_material(gpg, armored):
                raise PGPError("secret key material")
            return tuple(key_info_from_listing(raw, ()) for raw in gpg.scan_keys_mem(armored)
                         if raw.get("fingerprint"))

        return await self._run(call)

    async def keys_info(self, fingerprints: Collection[str]) -> dict[str, KeyInfo]:
        """Several keys by fingerprint in one listing (a fan-out checks every member's
        key: one gpg listing per batch, not one per member); absent ones are left out."""
        fprs = sorted({normalise_fingerprint(f) for f in fingerprints})
        if not fprs:
            return {}
        found = await self._run(lambda gpg: self._list(gpg, False, fprs))
        return {k.fingerprint: k for k in found if k.fingerprint in fprs}

    async def import_keys(
        self, armored: bytes, *, allow_secret: bool = False, passphrase: str | None = None,
        only_address: str | None = None,
    ) -> tuple[KeyInfo, ...]:
        """Import keys; secret keys are refused (nothing imported) unless allowed.

        With `only_address` (a plain lower-case addr-spec), gpg keeps only the user ids
        of that mailbox, so a key cannot bring in names for other addresses."""
        extra = [] if only_address is None else [
            "--import-filter", f"keep-uid=mbox = {only_address}"]

        def call(gpg: Any) -> tuple[KeyInfo, ...]:
            if not allow_secret and _has_secret_material(gpg, armored):
                raise PGPError("refusing to import secret key material")
            result = gpg.import_keys(armored, passphrase=passphrase, extra_args=extra or None)
            fprs = sorted({fpr for fpr in result.fingerprints if fpr})
            if not fprs:
                raise PGPError("no key imported")
            return self._list(gpg, False, fprs, check_secret=True)

        return await self._run(call)

    # -- signing --------------------------------------------------------------

    def _check_signed(self, gpg: Any, result: Any, signer: str) -> None:
        outcome = _outcome(result)
        created = outcome.values("SIG_CREATED")
        if outcome.returncode != 0 or len(created) != 1:
            raise PGPError("gpg did not sign")
        made_by = created[0].split()[-1]
        keys = self._list(gpg, False, [signer])
        if not keys or keys[0].signing_key(made_by) is None:
            raise PGPError("gpg signed with an unexpected key")

    async def sign_clear(self, text: str, signer: str, passphrase: str | None = None) -> str:
        fpr = normalise_fingerprint(signer)

        def call(gpg: Any) -> str:
            result = gpg.sign(
                text.encode("utf-8"), clearsign=True, passphrase=passphrase,
                extra_args=["--local-user", fpr, "--digest-algo", "SHA256"],
            )  # fmt: skip
            self._check_signed(gpg, result, fpr)
            signed = bytes(result.data).decode("utf-8")
            if not signed.startswith(_CLEARSIGN_HEADER):
                raise PGPError("unexpected clear-signed output")
            return signed

        return await self._run(call)

    async def sign_detached(self, data: bytes, signer: str, passphrase: str | None = None) -> bytes:
        fpr = normalise_fingerprint(signer)

        def call(gpg: Any) -> bytes:
            result = gpg.sign(
                data, clearsign=False, detach=True, passphrase=passphrase,
                extra_args=["--local-user", fpr, "--digest-algo", "SHA256"],
            )  # fmt: skip
            self._check_signed(gpg, result, fpr)
            return bytes(result.data)

        return await self._run(call)

    # -- verification ---------------------------------------------------------

    async def verify_clearsigned(
        self, data: bytes, allowlist: Collection[str], now: datetime
    ) -> Verification:
        """Verify one clear-signed block; text outside it makes the whole unsigned."""
        problem = clearsigned_shape_problem(data)
        if problem is not None:
            return Verification(False, None, problem, None)
        # --decrypt on a clear-signed block writes exactly the text that was hashed
        # (dash-escaping removed, trailing whitespace stripped); line endings are
        # not part of the hash, so they are handed on as LF.
        outcome = await self._run(lambda gpg: _outcome(gpg.decrypt(data)))
        text = outcome.output.replace(b"\r\n", b"\n")
        return await self._verdict(outcome, text, allowlist, now)

    async def verify_detached(
        self, data: bytes, signature: bytes, allowlist: Collection[str], now: datetime
    ) -> Verification:
        def call(gpg: Any) -> GpgOutcome:
            with tempfile.TemporaryDirectory(dir=self._home) as tmp:
                sig_path = Path(tmp) / "signature.asc"
                sig_path.write_bytes(signature)
                return _outcome(gpg.verify_data(str(sig_path), data))

        outcome = await self._run(call)
        return await self._verdict(outcome, data, allowlist, now)

    async def _verdict(
        self, outcome: GpgOutcome, content: bytes, allowlist: Collection[str], now: datetime
    ) -> Verification:
        facts = judge_signature(outcome)
        if not isinstance(facts, SignatureFacts):
            return Verification(False, facts[1], facts[0], None)
        if outcome.returncode != 0:
            return Verification(False, facts.primary_fpr, "gpg exit status not zero", None)
        return await self._check_key(facts, content, allowlist, now)

    async def _check_key(
        self, facts: SignatureFacts, content: bytes, allowlist: Collection[str], now: datetime
    ) -> Verification:
        fpr = facts.primary_fpr
        allowed = {normalise_fingerprint(a) for a in allowlist}
        if fpr not in allowed:
            return Verification(False, fpr, "signer not on allowlist", None)
        now = ensure_utc(now)
        if facts.expires is not None and facts.expires <= now:
            return Verification(False, fpr, "signature expired", None)
        key = await self.key_info(fpr)
        if key is None or not key.usable_at(now):
            return Verification(False, fpr, "signing key not usable", None)
        subkey = key.signing_key(facts.signing_fpr)
        if subkey is None or not subkey.usable_at(now):
            return Verification(False, fpr, "signing subkey not usable", None)
        return Verification(True, fpr, "good signature", content)

    # -- encryption -----------------------------------------------------------

    async def encrypt(
        self,
        data: bytes,
        recipients: Sequence[str],
        *,
        sign_with: str | None = None,
        hidden_recipients: bool = False,
        passphrase: str | None = None,
    ) -> bytes:
        fprs = [normalise_fingerprint(r) for r in recipients]
        if not fprs:
            raise PGPError("no recipients")
        extra = ["--no-encrypt-to"]
        if sign_with is not None:
            extra += [
                "--sign",
                "--local-user",
                normalise_fingerprint(sign_with),
                "--digest-algo",
                "SHA256",
            ]

        def call(gpg: Any) -> bytes:
            try:
                result = gpg.encrypt(
                    data,
                    None if hidden_recipients else fprs,
                    hidden_recipients=fprs if hidden_recipients else None,
                    armor=True, passphrase=passphrase, extra_args=extra,
                )  # fmt: skip
            except BrokenPipeError as exc:
                # gpg refused a recipient and exited before reading all of `data`;
                # python-gnupg re-raises its writer's broken pipe.
                raise PGPError("gpg did not encrypt") from exc
            outcome = _outcome(result)
            if outcome.returncode != 0 or "END_ENCRYPTION" not in outcome.names():
                raise PGPError("gpg did not encrypt")
            if sign_with is not None and not outcome.values("SIG_CREATED"):
                raise PGPError("gpg did not sign")
            return outcome.output

        return await self._run(call)

    async def decrypt(
        self, data: bytes, allowlist: Collection[str] = (), now: datetime | None = None
    ) -> Decryption:
        outcome = await self._run(lambda gpg: _outcome(gpg.decrypt(data)))
        problem = judge_decryption(outcome)
        if problem is not None:
            # gpg streams plaintext before it knows the end is sound: drop it.
            return Decryption(False, None, problem, None)
        facts = judge_signature(outcome)
        signature: Verification | None
        if isinstance(facts, SignatureFacts):
            when = now if now is not None else datetime.now(UTC)
            signature = await self._check_key(facts, outcome.output, allowlist, when)
        elif facts[0] == "unsigned":
            signature = None
        else:
            signature = Verification(False, facts[1], facts[0], None)
        return Decryption(True, outcome.output, "decrypted", signature)


def _has_secret_material(gpg: Any, armored: bytes) -> bool:
    shown = gpg.scan_keys_mem(armored)
    return any(raw.get("type") == "sec" for raw in shown) or b"PRIVATE KEY BLOCK" in armored
