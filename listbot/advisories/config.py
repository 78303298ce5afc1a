"""The [advisories] section: where advisories go and the boilerplate they carry."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from listbot.advisories.doc import PREFIX_RE
from listbot.core.config import Config, Document, raw_table, section
from listbot.core.mail.address import normalize_address

DEFAULT_STANDARD = (
    "Deployment of the patches and/or mitigations described above (or others\n"
    "which are substantially similar) is permitted during the embargo, even\n"
    "on public-facing systems with untrusted guest users and administrators."
)
DEFAULT_RESTRICTIVE = (
    "Deployment of the patches described above is permitted during the\n"
    "embargo. Deployment of the mitigations is NOT permitted on public-facing\n"
    "systems, because it would make the vulnerability recognisable."
)

DEFAULT_INDEX_MODE = 0o644
_MODE_RE = re.compile(r"0?[0-7]{3}")


@dataclass(frozen=True)
class AdvisoriesConfig:
    prefix: str
    public_lists: tuple[str, ...]
    # Where the To: header of pre-disclosure copies points; members get them by envelope.
    predisclosure_address: str
    recipients_line: str | None
    deployment_standard: str
    deployment_restrictive: str
    two_person_rule: bool
    index_dir: Path | None
    url_template: str | None  # e.g. "https://example.org/advisories/xsa-{number}.txt"
    # Embargoed copies to members: one ciphertext each, or hidden-recipient groups.
    hidden_recipients: bool
    # A release later than this after its instant is announced to the team as late.
    late_alert_seconds: int
    # File mode of the public index files, set on every write: a web server reads them.
    index_file_mode: int = DEFAULT_INDEX_MODE

    def url_for(self, number: int) -> str | None:
        return self.url_template.format(number=number) if self.url_template else None


_KNOWN = {"prefix", "public_lists", "predisclosure_address", "recipients_line",
          "deployment_standard", "deployment_restrictive", "two_person_rule", "index_dir",
          "url_template", "hidden_recipients", "late_alert_seconds", "index_file_mode"}


def _address(value: str) -> str | None:
    try:
        return normalize_address(value)
    except ValueError:
        return None


def _addresses(value: Any, key: str, problems: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"advisories.{key}: expected a list of addresses")
        return ()
    out = []
    for v in value:
        addr = _address(v)
        if addr is None:
            problems.append(f"advisories.{key}: {v!r} is not an address")
        else:
            out.append(addr)
    return tuple(out)


def _text(raw: Mapping[str, Any], key: str, default: str, problems: list[str]) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value.strip():
        problems.append(f"advisories.{key}: expected a non-empty string")
        return default
    return value.strip("\n")


def _flag(raw: Mapping[str, Any], key: str, problems: list[str]) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):  # bool("false") would turn it on
        problems.append(f"advisories.{key}: expected true or false")
        return False
    return value


def _optional_text(raw: Mapping[str, Any], key: str, problems: list[str]) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        problems.append(f"advisories.{key}: expected a string")
        return None
    return value


def _file_mode(raw: Mapping[str, Any], problems: list[str]) -> int:
    """An octal string such as "0644"; a TOML integer 644 would be read as decimal."""
    value = raw.get("index_file_mode", f"{DEFAULT_INDEX_MODE:04o}")
    if not isinstance(value, str) or not _MODE_RE.fullmatch(value):
        problems.append('advisories.index_file_mode: expected an octal mode such as "0644"')
        return DEFAULT_INDEX_MODE
    mode = int(value, 8)
    if mode & 0o002 or not mode & 0o400:
        # Public files anyone could rewrite, or that listbot itself could not read back.
        problems.append("advisories.index_file_mode: must be owner-readable and not "
                        "world-writable")
        return DEFAULT_INDEX_MODE
    return mode


def parse_advisories(doc: Document, cfg: Config, problems: list[str]) -> AdvisoriesConfig:
    project = raw_table(doc, "project")

    def parse(raw: Mapping[str, Any], problems: list[str]) -> AdvisoriesConfig:
        problems.extend(f"advisories.{k}: unknown key" for k in raw if k not in _KNOWN)
        prefix = str(raw.get("prefix", project.get("advisory_prefix", "XSA")))
        if not PREFIX_RE.fullmatch(prefix):
            problems.append("advisories.prefix: expected 2-10 capital letters")
        lists = _addresses(raw.get("public_lists", project.get("public_lists", [])),
                           "public_lists", problems)
        pre = _address(str(raw.get("predisclosure_address", cfg.team_address)))
        if pre is None:
            problems.append("advisories.predisclosure_address: not an address")
        line = _optional_text(raw, "recipients_line", problems)
        template = raw.get("url_template")
        if template is not None and (not isinstance(template, str) or
                                     "{number}" not in template):
            problems.append("advisories.url_template: expected a string with {number}")
            template = None
        index_dir = _optional_text(raw, "index_dir", problems)
        late = raw.get("late_alert_seconds", 60)
        if not isinstance(late, int) or late < 0:
            problems.append("advisories.late_alert_seconds: expected a non-negative integer")
            late = 60
        return AdvisoriesConfig(
            prefix=prefix,
            public_lists=lists,
            predisclosure_address=pre or cfg.team_address,
            recipients_line=line or None,
            deployment_standard=_text(raw, "deployment_standard", DEFAULT_STANDARD, problems),
            deployment_restrictive=_text(raw, "deployment_restrictive", DEFAULT_RESTRICTIVE,
                                         problems),
            two_person_rule=_flag(raw, "two_person_rule", problems),
            index_dir=(cfg.state_dir / index_dir) if index_dir else None,
            url_template=template,
            hidden_recipients=_flag(raw, "hidden_recipients", problems),
            late_alert_seconds=late,
            index_file_mode=_file_mode(raw, problems),
        )
    return section(doc, "advisories", parse, problems)
