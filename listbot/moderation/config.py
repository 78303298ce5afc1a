"""The [moderation] and [rules] sections."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from listbot.core.config import Config, Document, raw_table, section


@dataclass(frozen=True)
class ModerationConfig:
    hold_expiry: timedelta  # a held post's tokens live this long; the post stays listed after
    reminder_before: timedelta  # moderators are reminded this long before expiry
    encrypt_requests: bool  # moderation requests only as ciphertext to each moderator's key
    security_contact: str  # named in the policy-rejection notice
    public_lists: tuple[str, ...]  # likewise


@dataclass(frozen=True)
class RulesConfig:
    directory: Path
    examples: Path


def _base(cfg: Config) -> Path:
    return cfg.source.resolve().parent if cfg.source is not None else Path.cwd()


def _number(raw: Mapping[str, Any], key: str, default: float, problems: list[str]) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        problems.append(f"moderation.{key}: expected a positive number")
        return default
    return float(value)


def _notice_contacts(cfg: Config, project: Mapping[str, Any],
                     problems: list[str]) -> tuple[str, tuple[str, ...]]:
    """[project] security_contact and public_lists, which the policy notice names."""
    contact = project.get("security_contact", "")
    if not isinstance(contact, str):
        problems.append("project.security_contact: expected a string")
        contact = ""
    lists = project.get("public_lists", [])
    if not isinstance(lists, list) or not all(isinstance(x, str) for x in lists):
        problems.append("project.public_lists: expected a list of addresses")
        lists = []
    return contact or cfg.team_address, tuple(lists)


def parse_moderation(doc: Document, cfg: Config, problems: list[str]) -> ModerationConfig:
    project = raw_table(doc, "project")
    encrypt_default = bool(raw_table(doc, "pgp").get("require_encryption", False))

    def parse(raw: Mapping[str, Any], problems: list[str]) -> ModerationConfig:
        known = {"hold_expiry_days", "reminder_before_hours", "encrypt_requests"}
        problems.extend(f"moderation.{k}: unknown key" for k in raw if k not in known)
        contact, public = _notice_contacts(cfg, project, problems)
        days = _number(raw, "hold_expiry_days", 7, problems)
        hours = _number(raw, "reminder_before_hours", 24, problems)
        if hours >= days * 24:
            problems.append("moderation.reminder_before_hours: must be shorter than the expiry")
        encrypt = raw.get("encrypt_requests", encrypt_default)
        if not isinstance(encrypt, bool):
            problems.append("moderation.encrypt_requests: expected true or false")
            encrypt = True
        return ModerationConfig(timedelta(days=days), timedelta(hours=hours), encrypt,
                                contact, public)
    return section(doc, "moderation", parse, problems)


def parse_rules_config(doc: Document, cfg: Config, problems: list[str]) -> RulesConfig:
    def parse(raw: Mapping[str, Any], problems: list[str]) -> RulesConfig:
        problems.extend(f"rules.{k}: unknown key" for k in raw if k not in ("dir", "examples"))
        for key in ("dir", "examples"):
            if not isinstance(raw.get(key, ""), str):
                problems.append(f"rules.{key}: expected a path")
        directory = Path(str(raw.get("dir", "rules")))
        directory = directory if directory.is_absolute() else _base(cfg) / directory
        examples = Path(str(raw.get("examples", directory / "examples")))
        examples = examples if examples.is_absolute() else _base(cfg) / examples
        return RulesConfig(directory, examples)
    return section(doc, "rules", parse, problems)

