"""Typed, frozen settings loaded from TOML.

Every problem in a file is collected with its key path and reported at once,
so an admin fixes a config in one round instead of one error per restart.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from listbot.core.errors import ConfigError
from listbot.core.mail.address import normalize_address

DEFAULT_LOCATIONS = (Path("/etc/listbot/listbot.toml"),)
ENV_VAR = "LISTBOT_CONFIG"

T = TypeVar("T")


class ListKind(StrEnum):
    SECURITY = "security"
    DISCUSS = "discuss"
    APPLICATIONS = "applications"


class StartTLS(StrEnum):
    REQUIRED = "required"
    OPTIONAL = "optional"
    NONE = "none"


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class TeamMember:
    name: str
    address: str
    fingerprint: str | None


@dataclass(frozen=True)
class ListConfig:
    name: str
    kind: ListKind
    address: str
    display_name: str
    list_id: str
    moderators: tuple[str, ...]
    require_signed_decisions: bool
    help_url: str

    @property
    def local_part(self) -> str:
        return self.address.split("@", 1)[0]

    @property
    def domain(self) -> str:
        return self.address.split("@", 1)[1]


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    starttls: StartTLS
    username: str | None
    password_file: Path | None
    timeout_seconds: float
    pool_size: int
    max_recipients_per_transaction: int


@dataclass(frozen=True)
class DeliveryConfig:
    transport: str  # "smtp" or "maildir"
    maildir: Path
    smtp: SmtpConfig
    retry_period_seconds: int
    backoff_initial_seconds: float
    backoff_max_seconds: float


@dataclass(frozen=True)
class Config:
    source: Path | None
    instance_name: str
    hostname: str
    state_dir: Path
    database_url: str
    lmtp: Endpoint | None
    smtp: Endpoint | None
    max_message_bytes: int
    project_name: str
    team_address: str
    team_name: str
    team_members: tuple[TeamMember, ...]
    lists: Mapping[str, ListConfig]
    delivery: DeliveryConfig
    reply_rate_per_hour: int
    worker_batch: int
    lease_seconds: int
    poll_interval_seconds: float
    log_format: str  # "auto", "json" or "console"
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    def list_by_kind(self, kind: ListKind) -> ListConfig | None:
        return next((lc for lc in self.lists.values() if lc.kind is kind), None)

    @property
    def team_recipients(self) -> tuple[str, ...]:
        """Where team mail is delivered: the members themselves, never the intake alias."""
        return tuple(sorted({m.address for m in self.team_members}))

    @property
    def team_addresses(self) -> frozenset[str]:
        return frozenset({self.team_address, *self.team_recipients})


class _Reader:
    """Walks a TOML table and records every problem with its key path."""

    def __init__(self, data: Mapping[str, Any], problems: list[str], path: str = "") -> None:
        self.data = data
        self.problems = problems
        self.path = path
        self.used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, kind: type[T], default: T) -> T:
        self.used.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.problems.append(
                f"{self._key(key)}: expected {kind.__name__}, got {type(value).__name__}"
            )
            return default
        return value

    def check(self, key: str, ok: bool, message: str) -> None:
        if not ok:
            self.problems.append(f"{self._key(key)}: {message}")

    def table(self, key: str) -> _Reader:
        self.used.add(key)
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            self.problems.append(f"{self._key(key)}: expected a table")
            value = {}
        return _Reader(value, self.problems, self._key(key))

    def address(self, key: str, default: str) -> str:
        raw = self.get(key, str, default)
        try:
            return normalize_address(raw)
        except ValueError as exc:
            self.problems.append(f"{self._key(key)}: not a valid address {raw!r} ({exc})")
            return default

    def finish(self, known_extra: tuple[str, ...] = ()) -> None:
        for key in self.data:
            if key not in self.used and key not in known_extra:
                self.problems.append(f"{self._key(key)}: unknown key")


def parse_endpoint(text: str) -> Endpoint:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, got {text!r}")
    return Endpoint(host.strip("[]"), int(port))


def _endpoint(r: _Reader, key: str, default: str) -> Endpoint | None:
    text = r.get(key, str, default)
    if text == "":
        return None
    try:
        return parse_endpoint(text)
    except ValueError as exc:
        r.check(key, False, str(exc))
        return None


def _path(base: Path, text: str) -> Path:
    p = Path(text)
    return (p if p.is_absolute() else base / p).resolve()


def _team(r: _Reader) -> tuple[str, str, tuple[TeamMember, ...]]:
    t = r.table("team")
    address = t.address("address", "security@example.org")
    name = t.get("name", str, "security team")
    members: list[TeamMember] = []
    for i, raw in enumerate(t.get("members", list, [])):
        if not isinstance(raw, dict):
            t.check(f"members[{i}]", False, "expected a table")
            continue
        m = _Reader(raw, r.problems, f"team.members[{i}]")
        fpr = m.get("fingerprint", str, "").replace(" ", "").upper() or None
        if fpr is not None:
            m.check("fingerprint", len(fpr) == 40 and _is_hex(fpr), "expected 40 hex digits")
        member_address = m.address("address", address)
        m.check("address", member_address != address,
                "a team member needs a personal address, not the team alias")
        members.append(TeamMember(m.get("name", str, ""), member_address, fpr))
        m.finish()
    t.check("members", bool(members), "at least one team member is needed to receive team mail")
    t.finish()
    return address, name, tuple(members)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789ABCDEF" for c in text)


def _lists(r: _Reader, hostname: str) -> dict[str, ListConfig]:
    lists_table = r.table("lists")
    result: dict[str, ListConfig] = {}
    for name in lists_table.data:
        lr = lists_table.table(name)
        kind_text = lr.get("kind", str, "")
        try:
            kind = ListKind(kind_text)
        except ValueError:
            lr.check("kind", False, f"expected one of {[k.value for k in ListKind]}")
            continue
        address = lr.address("address", f"{name}@{hostname}")
        moderators = []
        for i, mod in enumerate(lr.get("moderators", list, [])):
            try:
                moderators.append(normalize_address(str(mod)))
            except ValueError:
                lr.check(f"moderators[{i}]", False, f"not a valid address {mod!r}")
        result[name] = ListConfig(
            name=name,
            kind=kind,
            address=address,
            display_name=lr.get("display_name", str, name),
            list_id=lr.get("list_id", str, address.replace("@", ".")),
            moderators=tuple(moderators),
            require_signed_decisions=lr.get("require_signed_decisions", bool, True),
            help_url=lr.get("help_url", str, ""),
        )
        lr.finish()
    kinds = [lc.kind for lc in result.values()]
    for kind in ListKind:
        lists_table.check(str(kind), kinds.count(kind) <= 1, f"more than one list of kind {kind}")
    addresses = [lc.address for lc in result.values()]
    lists_table.check("*", len(set(addresses)) == len(addresses), "two lists share an address")
    return result


def _delivery(r: _Reader, state_dir: Path) -> DeliveryConfig:
    d = r.table("delivery")
    transport = d.get("transport", str, "maildir")
    d.check("transport", transport in ("smtp", "maildir"), "expected 'smtp' or 'maildir'")
    s = d.table("smtp")
    starttls_text = s.get("starttls", str, "optional")
    try:
        starttls = StartTLS(starttls_text)
    except ValueError:
        s.check("starttls", False, "expected 'required', 'optional' or 'none'")
        starttls = StartTLS.OPTIONAL
    password_file = s.get("password_file", str, "")
    smtp = SmtpConfig(
        host=s.get("host", str, "127.0.0.1"),
        port=s.get("port", int, 25),
        starttls=starttls,
        username=s.get("username", str, "") or None,
        password_file=Path(password_file) if password_file else None,
        timeout_seconds=s.get("timeout_seconds", float, 30.0),
        pool_size=s.get("pool_size", int, 4),
        max_recipients_per_transaction=s.get("max_recipients_per_transaction", int, 50),
    )
    s.check("pool_size", smtp.pool_size >= 1, "must be at least 1")
    s.check("max_recipients_per_transaction", smtp.max_recipients_per_transaction >= 1,
            "must be at least 1")
    s.finish()
    cfg = DeliveryConfig(
        transport=transport,
        maildir=_path(state_dir, d.get("maildir", str, "outgoing")),
        smtp=smtp,
        retry_period_seconds=d.get("retry_period_seconds", int, 5 * 24 * 3600),
        backoff_initial_seconds=d.get("backoff_initial_seconds", float, 30.0),
        backoff_max_seconds=d.get("backoff_max_seconds", float, 3600.0),
    )
    d.check("backoff_initial_seconds", cfg.backoff_initial_seconds > 0, "must be positive")
    d.finish()
    return cfg


# Sections owned by later features are read by their own modules from `Config.raw`.
# Every one is validated by listbot.config_check in the same pass as the core sections.
EXTENSION_SECTIONS = ("pgp", "cases", "advisories", "applications", "imap",
                      "metrics", "rules", "moderation", "members")


def build(data: Mapping[str, Any], base_dir: Path, source: Path | None = None) -> Config:
    cfg, problems = build_lenient(data, base_dir, source)
    if problems:
        raise ConfigError(problems)
    return cfg


def build_lenient(data: Mapping[str, Any], base_dir: Path,
                  source: Path | None = None) -> tuple[Config, list[str]]:
    """The config with defaults in place of bad values, and every problem found, so the
    extension sections can be checked in the same pass even when a core key is wrong."""
    problems: list[str] = []
    r = _Reader(data, problems)
    inst = r.table("instance")
    hostname = inst.get("hostname", str, "lists.example.org")
    state_dir = _path(base_dir, inst.get("state_dir", str, "state"))
    log_format = inst.get("log_format", str, "auto")
    inst.check("log_format", log_format in ("auto", "json", "console"),
               "expected 'auto', 'json' or 'console'")
    instance_name = inst.get("name", str, "listbot")
    inst.finish()
    db = r.table("database")
    url = db.get("url", str, "") or f"sqlite+aiosqlite:///{state_dir / 'listbot.db'}"
    db.check("url", url.startswith(("sqlite+aiosqlite://", "postgresql+psycopg://")),
             "expected sqlite+aiosqlite:// or postgresql+psycopg://")
    db.finish()
    listen = r.table("listen")
    lmtp = _endpoint(listen, "lmtp", "127.0.0.1:8024")
    smtp = _endpoint(listen, "smtp", "127.0.0.1:8025")
    max_bytes = listen.get("max_message_bytes", int, 25 * 1024 * 1024)
    listen.check("max_message_bytes", max_bytes > 0, "must be positive")
    listen.finish()
    proj = r.table("project")
    project_name = proj.get("name", str, "Example")
    proj.finish(known_extra=("advisory_prefix", "case_prefix", "security_contact",
                             "public_lists", "public_url"))
    team_address, team_name, team_members = _team(r)
    lists = _lists(r, hostname)
    delivery = _delivery(r, state_dir)
    work = r.table("worker")
    cfg = Config(
        source=source,
        instance_name=instance_name,
        hostname=hostname,
        state_dir=state_dir,
        database_url=url,
        lmtp=lmtp,
        smtp=smtp,
        max_message_bytes=max_bytes,
        project_name=project_name,
        team_address=team_address,
        team_name=team_name,
        team_members=team_members,
        lists=lists,
        delivery=delivery,
        reply_rate_per_hour=work.get("reply_rate_per_hour", int, 10),
        worker_batch=work.get("batch", int, 64),
        lease_seconds=work.get("lease_seconds", int, 300),
        poll_interval_seconds=work.get("poll_interval_seconds", float, 5.0),
        log_format=log_format,
        raw=data,
    )
    work.finish()
    r.finish(known_extra=EXTENSION_SECTIONS)
    return cfg, problems


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


def load(path: Path) -> Config:
    cfg, problems = load_lenient(path)
    if problems:
        raise ConfigError(problems)
    return cfg


def load_lenient(path: Path) -> tuple[Config, list[str]]:
    """As build_lenient; a file that cannot be read or parsed raises ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: {exc}"]) from exc
    return build_lenient(data, path.resolve().parent, source=path)


def raw_table(cfg: Config, name: str) -> Mapping[str, Any]:
    """A top-level table of the file; {} when absent or not a table (the section's own
    check reports that), so one bad section never stops the others being read."""
    value = cfg.raw.get(name, {})
    return value if isinstance(value, dict) else {}


def section(cfg: Config, name: str, parse: Callable[[Mapping[str, Any], list[str]], T]) -> T:
    """Parse an extension section, raising ConfigError with all its problems."""
    if not isinstance(cfg.raw.get(name, {}), dict):
        raise ConfigError([f"{name}: expected a table"])
    problems: list[str] = []
    value = parse(raw_table(cfg, name), problems)
    if problems:
        raise ConfigError(problems)
    return value
