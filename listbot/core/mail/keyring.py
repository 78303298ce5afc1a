"""The [pgp] section and the keyring listbot signs, decrypts and verifies with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from listbot.core.config import Config, Document, section
from listbot.core.mail.pgp import Keyring


@dataclass(frozen=True)
class PgpConfig:
    home: Path
    team_fingerprint: str | None
    passphrase_file: Path | None
    # Embargoed mail to members (advisories and discuss posts) only as ciphertext.
    require_encryption: bool
    # One ciphertext for several members (hidden recipients) only for groups up to this.
    hidden_recipients_max_group: int
    # Warn about member/moderator keys expiring within this many days.
    expiry_warning_days: int

    def passphrase(self) -> str | None:
        if self.passphrase_file is None:
            return None
        return self.passphrase_file.read_text(encoding="utf-8").strip()


def _fingerprint(raw: Mapping[str, Any], key: str, problems: list[str]) -> str | None:
    value = str(raw.get(key, "")).replace(" ", "").upper()
    if not value:
        return None
    if len(value) != 40 or any(c not in "0123456789ABCDEF" for c in value):
        problems.append(f"pgp.{key}: expected 40 hex digits")
        return None
    return value


def parse_pgp(doc: Document, cfg: Config, problems: list[str]) -> PgpConfig:
    """The [pgp] section, read once at load (listbot.settings)."""

    def parse(raw: Mapping[str, Any], problems: list[str]) -> PgpConfig:
        known = {"home", "team_fingerprint", "passphrase_file", "require_encryption",
                 "hidden_recipients_max_group", "expiry_warning_days"}
        problems.extend(f"pgp.{k}: unknown key" for k in raw if k not in known)
        for key in ("home", "team_fingerprint", "passphrase_file"):
            if not isinstance(raw.get(key, ""), str):
                problems.append(f"pgp.{key}: expected a string")
        encrypt = raw.get("require_encryption", False)
        if not isinstance(encrypt, bool):  # bool("false") would turn it on
            problems.append("pgp.require_encryption: expected true or false")
            encrypt = False
        home = Path(str(raw.get("home", "gnupg")))
        passphrase = str(raw.get("passphrase_file", ""))
        group = raw.get("hidden_recipients_max_group", 50)
        if not isinstance(group, int) or group < 1:
            problems.append("pgp.hidden_recipients_max_group: expected a positive integer")
            group = 50
        days = raw.get("expiry_warning_days", 30)
        if not isinstance(days, int) or days < 0:
            problems.append("pgp.expiry_warning_days: expected a non-negative integer")
            days = 30
        return PgpConfig(
            home=home if home.is_absolute() else cfg.state_dir / home,
            team_fingerprint=_fingerprint(raw, "team_fingerprint", problems),
            passphrase_file=Path(passphrase) if passphrase else None,
            require_encryption=encrypt,
            hidden_recipients_max_group=group,
            expiry_warning_days=days,
        )
    return section(doc, "pgp", parse, problems)


def open_keyring(pgp: PgpConfig) -> Keyring:
    return Keyring(pgp.home)
