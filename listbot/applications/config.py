"""The [applications] and [members] sections.

[applications] holds the completeness policy
(docs/design.md "Applications to the pre-disclosure list") and who receives the
public applications list. [members] holds where the daemon keeps the public roster
and when repeated delivery failures to a member's role address alert the team.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

from listbot.applications.policy import AppPolicy
from listbot.core.config import Config, section
from listbot.core.errors import ConfigError
from listbot.core.mail.address import normalize_address


@dataclass(frozen=True)
class ApplicationsConfig:
    policy: AppPolicy
    # The applications list is public: its subscribers are configured here, and only
    # here (subscription requests by mail change nothing).
    subscribers: tuple[str, ...]
    decision_days: int  # a decision token lives this long; the shell can always decide


@dataclass(frozen=True)
class MembersConfig:
    roster_dir: Path | None  # the daemon keeps roster.md/json/html current here
    bounce_threshold: int  # permanent failures within the window that alert the team
    bounce_window: timedelta
    key_check_hours: float  # how often the daemon looks for expiring member keys


_POLICY_LISTS = ("role_allow_patterns", "role_deny_patterns", "personal_localpart_patterns",
                 "common_first_names", "freemail_domains", "link_shortener_domains")
_POLICY_PAIRS = ("link_deny_domains", "link_deny_patterns")


def _strings(raw: Mapping[str, Any], key: str, problems: list[str]) -> tuple[str, ...] | None:
    if key not in raw:
        return None
    value = raw[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"applications.{key}: expected a list of strings")
        return None
    return tuple(value)


def _pairs(raw: Mapping[str, Any], key: str,
           problems: list[str]) -> tuple[tuple[str, str], ...] | None:
    """A table {pattern-or-domain = "why it is not acceptable"}."""
    if key not in raw:
        return None
    value = raw[key]
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        problems.append(f"applications.{key}: expected a table of strings")
        return None
    return tuple((str(k), str(v)) for k, v in value.items())


def _policy(cfg: Config, raw: Mapping[str, Any], problems: list[str]) -> AppPolicy:
    kwargs: dict[str, Any] = {"project_name": cfg.project_name,
                              "own_domains": tuple(sorted({lc.domain
                                                           for lc in cfg.lists.values()}))}
    for key in _POLICY_LISTS:
        if (value := _strings(raw, key, problems)) is not None:
            kwargs[key] = value
    for key in _POLICY_PAIRS:
        if (pairs := _pairs(raw, key, problems)) is not None:
            kwargs[key] = pairs
    url = raw.get("policy_url")
    if url is not None:
        kwargs["policy_url"] = str(url)
    try:
        return AppPolicy(**kwargs)
    except ConfigError as exc:
        problems.extend(f"applications.{p}" for p in exc.problems)
        return AppPolicy(project_name=cfg.project_name)


def parse_applications(cfg: Config) -> ApplicationsConfig:
    def parse(raw: Mapping[str, Any], problems: list[str]) -> ApplicationsConfig:
        known = {*_POLICY_LISTS, *_POLICY_PAIRS, "policy_url", "subscribers", "decision_days"}
        problems.extend(f"applications.{k}: unknown key" for k in raw if k not in known)
        subscribers: list[str] = []
        for i, address in enumerate(_strings(raw, "subscribers", problems) or ()):
            try:
                subscribers.append(normalize_address(address))
            except ValueError:
                problems.append(f"applications.subscribers[{i}]: not a valid address")
        days = raw.get("decision_days", 30)
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            problems.append("applications.decision_days: expected a positive integer")
            days = 30
        return ApplicationsConfig(_policy(cfg, raw, problems), tuple(subscribers), days)
    return section(cfg, "applications", parse)


def parse_members(cfg: Config) -> MembersConfig:
    base = cfg.source.resolve().parent if cfg.source is not None else Path.cwd()

    def parse(raw: Mapping[str, Any], problems: list[str]) -> MembersConfig:
        known = {f.name for f in fields(MembersConfig)} - {"bounce_window"}
        known |= {"bounce_window_days"}
        problems.extend(f"members.{k}: unknown key" for k in raw if k not in known)
        roster = raw.get("roster_dir")
        roster_dir = None
        if roster is not None:
            roster_dir = Path(str(roster))
            roster_dir = roster_dir if roster_dir.is_absolute() else base / roster_dir
        threshold = raw.get("bounce_threshold", 3)
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
            problems.append("members.bounce_threshold: expected a positive integer")
            threshold = 3
        window = raw.get("bounce_window_days", 14)
        if isinstance(window, bool) or not isinstance(window, int | float) or window <= 0:
            problems.append("members.bounce_window_days: expected a positive number")
            window = 14
        hours = raw.get("key_check_hours", 24)
        if isinstance(hours, bool) or not isinstance(hours, int | float) or hours <= 0:
            problems.append("members.key_check_hours: expected a positive number")
            hours = 24
        return MembersConfig(roster_dir, threshold, timedelta(days=window), float(hours))
    return section(cfg, "members", parse)
