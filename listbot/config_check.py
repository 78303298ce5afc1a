"""The whole configuration checked in one pass: the core sections and every extension
section, so `check-config`, start-up and reload report all problems at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from listbot.advisories.config import parse_advisories
from listbot.applications.config import parse_applications, parse_members
from listbot.core import config as config_mod
from listbot.core.config import Config
from listbot.core.errors import ConfigError
from listbot.core.intake.imap import parse_imap
from listbot.core.mail.keyring import parse_pgp
from listbot.core.metrics import parse_metrics
from listbot.moderation.config import parse_moderation, parse_rules_config
from listbot.security.config import parse_cases

# One parser per name in config.EXTENSION_SECTIONS; each raises ConfigError.
SECTIONS: tuple[tuple[str, Callable[[Config], object]], ...] = (
    ("pgp", parse_pgp),
    ("cases", parse_cases),
    ("advisories", parse_advisories),
    ("applications", parse_applications),
    ("members", parse_members),
    ("imap", parse_imap),
    ("metrics", parse_metrics),
    ("rules", parse_rules_config),
    ("moderation", parse_moderation),
)


def section_problems(cfg: Config) -> list[str]:
    problems: list[str] = []
    for _, parse in SECTIONS:
        try:
            parse(cfg)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return problems


def load_checked(path: Path) -> Config:
    """config.load, plus every extension section; all problems in one ConfigError."""
    cfg, problems = config_mod.load_lenient(path)
    problems += section_problems(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg
