"""The [cases] section: case ids, the disclosure calendar, and how case mail is protected."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, time
from enum import StrEnum
from typing import Any

from listbot.core.calendar.embargo import CalendarPolicy
from listbot.core.calendar.working_days import HolidayCalendar
from listbot.core.config import Config, Document, section
from listbot.core.config.addresses import too_long

PREFIX = re.compile(r"[A-Z][A-Z0-9]{0,15}")


class KeepClear(StrEnum):
    """What of a decrypted report is kept readable in the database."""

    # Case facts, sender, subject and Message-IDs only; the decrypted body is never
    # written anywhere (the inbound row keeps the ciphertext as received).
    METADATA = "metadata"
    # The decrypted text is also kept in the case record, for `listbot case show`.
    PLAINTEXT = "plaintext"


@dataclass(frozen=True)
class CasesConfig:
    prefix: str
    holiday_country: str | None
    holiday_subdivision: str | None
    extra_holidays: tuple[date, ...]
    release_time: time
    predisclosure_working_days: int
    public_working_days_after_predisclosure: int
    no_patch_warning_working_days: int
    # Team copies of case mail only as ciphertext to each member's own key.
    encrypt_team_copies: bool
    # A team reply to a case address must be PGP-signed by that member's key to reach
    # the reporter as the team (a member without a configured key then cannot).
    require_signed_team_replies: bool
    keep_clear: KeepClear
    # Backstop wake-up of the reminder dispatcher (seconds).
    reminder_poll_seconds: int

    def policy(self, years: range) -> CalendarPolicy:
        cal = HolidayCalendar.build(self.holiday_country, self.holiday_subdivision,
                                    self.extra_holidays, years)
        return CalendarPolicy(
            predisclosure_working_days=self.predisclosure_working_days,
            public_working_days_after_predisclosure=self.public_working_days_after_predisclosure,
            release_time=self.release_time,
            no_patch_warning_working_days=self.no_patch_warning_working_days,
            holidays=cal)

    def policy_for(self, year: int) -> CalendarPolicy:
        """A calendar covering the year of day 0 and the two after it (embargoes are short)."""
        return self.policy(range(year - 1, year + 3))


KNOWN = {"prefix", "holiday_country", "holiday_subdivision", "holidays", "release_time",
         "predisclosure_working_days", "public_working_days_after_predisclosure",
         "no_patch_warning_working_days", "encrypt_team_copies",
         "require_signed_team_replies", "keep_clear_at_rest", "reminder_poll_seconds"}


def _positive(raw: Mapping[str, Any], key: str, default: int, problems: list[str]) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        problems.append(f"cases.{key}: expected a positive integer")
        return default
    return value


def _flag(raw: Mapping[str, Any], key: str, default: bool, problems: list[str]) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        problems.append(f"cases.{key}: expected true or false")
        return default
    return value


def _text(raw: Mapping[str, Any], key: str, problems: list[str]) -> str | None:
    value = raw.get(key, "")
    if not isinstance(value, str):
        problems.append(f"cases.{key}: expected a string")
        return None
    return value or None


def _holidays(raw: Mapping[str, Any], problems: list[str]) -> tuple[date, ...]:
    found: list[date] = []
    values = raw.get("holidays", [])
    if not isinstance(values, list):
        problems.append("cases.holidays: expected a list of dates")
        return ()
    for i, value in enumerate(values):
        if type(value) is date:
            found.append(value)
            continue
        try:
            found.append(date.fromisoformat(str(value)))
        except ValueError:
            problems.append(f"cases.holidays[{i}]: expected a date (YYYY-MM-DD)")
    return tuple(found)


def _release_time(raw: Mapping[str, Any], problems: list[str]) -> time:
    value = raw.get("release_time", "12:00")
    try:
        parsed = value if isinstance(value, time) else time.fromisoformat(str(value))
    except ValueError:
        problems.append("cases.release_time: expected HH:MM (UTC)")
        return time(12, 0)
    if parsed.tzinfo is not None:
        problems.append("cases.release_time: a UTC wall time without offset")
        return time(12, 0)
    return parsed


def parse_table(raw: Mapping[str, Any], problems: list[str],
                team_has_keys: bool = True) -> CasesConfig:
    problems.extend(f"cases.{k}: unknown key" for k in raw if k not in KNOWN)
    prefix = str(raw.get("prefix", "SEC"))
    if not PREFIX.fullmatch(prefix):
        problems.append("cases.prefix: expected capital letters and digits, starting "
                        "with a letter (at most 16)")
        prefix = "SEC"
    keep_text = str(raw.get("keep_clear_at_rest", KeepClear.METADATA.value))
    try:
        keep = KeepClear(keep_text)
    except ValueError:
        problems.append("cases.keep_clear_at_rest: expected 'metadata' or 'plaintext'")
        keep = KeepClear.METADATA
    country = _text(raw, "holiday_country", problems)
    subdivision = _text(raw, "holiday_subdivision", problems)
    cfg = CasesConfig(
        prefix=prefix,
        holiday_country=country,
        holiday_subdivision=subdivision,
        extra_holidays=_holidays(raw, problems),
        release_time=_release_time(raw, problems),
        predisclosure_working_days=_positive(raw, "predisclosure_working_days", 5, problems),
        public_working_days_after_predisclosure=_positive(
            raw, "public_working_days_after_predisclosure", 10, problems),
        no_patch_warning_working_days=_positive(raw, "no_patch_warning_working_days", 10,
                                                problems),
        encrypt_team_copies=_flag(raw, "encrypt_team_copies", False, problems),
        require_signed_team_replies=_flag(raw, "require_signed_team_replies", True, problems),
        keep_clear=keep,
        reminder_poll_seconds=_positive(raw, "reminder_poll_seconds", 900, problems),
    )
    if cfg.encrypt_team_copies and not team_has_keys:
        problems.append("cases.encrypt_team_copies: every [[team.members]] needs a fingerprint")
    try:
        cfg.policy_for(2026)
    except ValueError as exc:
        problems.append(f"cases.holiday_country: {exc}")
    return cfg


def parse_cases(doc: Document, cfg: Config, problems: list[str]) -> CasesConfig:
    has_keys = all(m.fingerprint for m in cfg.team_members)
    cases = section(doc, "cases", lambda raw, found: parse_table(raw, found, has_keys),
                    problems)
    # Reporters and the team reply to team+CASE-ID; the sequence may reach six digits.
    local, _, domain = cfg.team_address.partition("@")
    longest = f"{local}+{cases.prefix}-2026-{'9' * 6}@{domain}"
    if why := too_long(longest):
        problems.append(f"cases.prefix: the case reply address {longest} cannot be "
                        f"received: {why}; shorten the prefix or [team] address")
    return cases
