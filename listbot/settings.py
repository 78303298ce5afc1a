"""The configuration file, loaded once: the core and every section parsed into frozen,
typed values, and every problem of every section reported together.

This is the only place the file is read. Serve, reload, check-config, doctor and the
commands all start from `load`; the handlers and services then receive their typed
section through their constructors. Core imports no capability, so each capability
keeps its own section type and parser, and they meet here.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from listbot.advisories.config import AdvisoriesConfig, parse_advisories
from listbot.applications.config import (
    ApplicationsConfig,
    MembersConfig,
    parse_applications,
    parse_members,
)
from listbot.core.config import Config, Document, parse_core
from listbot.core.errors import ConfigError
from listbot.core.intake.imap import ImapConfig, parse_imap
from listbot.core.mail.keyring import PgpConfig, parse_pgp
from listbot.core.metrics import MetricsConfig, parse_metrics
from listbot.moderation.config import (
    ModerationConfig,
    RulesConfig,
    parse_moderation,
    parse_rules_config,
)
from listbot.security.config import CasesConfig, parse_cases

DEFAULT_LOCATIONS = (Path("/etc/listbot/listbot.toml"),)
ENV_VAR = "LISTBOT_CONFIG"


@dataclass(frozen=True)
class Settings:
    """One load of the file. Fields after `core` are the sections, in report order."""

    core: Config
    pgp: PgpConfig
    cases: CasesConfig
    advisories: AdvisoriesConfig
    applications: ApplicationsConfig
    members: MembersConfig
    imap: ImapConfig | None  # None: absent or enabled = false
    metrics: MetricsConfig | None  # likewise
    rules: RulesConfig
    moderation: ModerationConfig


SECTIONS = tuple(f.name for f in fields(Settings) if f.name != "core")


@dataclass(frozen=True)
class Report:
    """A lenient load: the settings with defaults in place of bad values, and what was
    wrong, by section, so `doctor` can judge each section on its own."""

    settings: Settings
    core_problems: tuple[str, ...]
    section_problems: Mapping[str, tuple[str, ...]]  # every name of SECTIONS

    @property
    def problems(self) -> list[str]:
        return [*self.core_problems,
                *(p for name in SECTIONS for p in self.section_problems[name])]


def parse(doc: Document, base_dir: Path, source: Path | None = None) -> Report:
    """Every section of `doc`, each problem recorded; raises nothing."""
    core_problems: list[str] = []
    cfg = parse_core(doc, base_dir, source, core_problems)
    found: dict[str, list[str]] = {name: [] for name in SECTIONS}
    settings = Settings(
        core=cfg,
        pgp=parse_pgp(doc, cfg, found["pgp"]),
        cases=parse_cases(doc, cfg, found["cases"]),
        advisories=parse_advisories(doc, cfg, found["advisories"]),
        applications=parse_applications(doc, cfg, found["applications"]),
        members=parse_members(doc, cfg, found["members"]),
        imap=parse_imap(doc, cfg, found["imap"]),
        metrics=parse_metrics(doc, found["metrics"]),
        rules=parse_rules_config(doc, cfg, found["rules"]),
        moderation=parse_moderation(doc, cfg, found["moderation"]),
    )
    return Report(settings, tuple(core_problems),
                  {name: tuple(problems) for name, problems in found.items()})


def build(doc: Document, base_dir: Path, source: Path | None = None) -> Settings:
    """As `parse`, raising ConfigError with every problem of every section."""
    return _checked(parse(doc, base_dir, source))


def read(path: Path) -> Report:
    """The file parsed leniently; ConfigError only when it cannot be read as TOML."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: {exc}"]) from exc
    return parse(doc, path.resolve().parent, source=path)


def load(path: Path) -> Settings:
    """The file's settings; ConfigError lists every problem in every section at once."""
    return _checked(read(path))


def _checked(report: Report) -> Settings:
    if problems := report.problems:
        raise ConfigError(problems)
    return report.settings


def locate(explicit: str | None, env: Mapping[str, str] = os.environ) -> Path:
    """--config, then LISTBOT_CONFIG, then /etc/listbot/listbot.toml."""
    if explicit:
        return Path(explicit)
    if env.get(ENV_VAR):
        return Path(env[ENV_VAR])
    for candidate in DEFAULT_LOCATIONS:
        if candidate.exists():
            return candidate
    raise ConfigError([f"no configuration: pass --config, set {ENV_VAR}, or create "
                       f"{DEFAULT_LOCATIONS[0]}"])
