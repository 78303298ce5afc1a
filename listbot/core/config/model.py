"""The core settings as typed, frozen values: instance, listeners, team, lists, delivery.

Each capability keeps its own section type beside its code; listbot.settings puts
them together with these at load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

# The default decision address of a list is its local part with this suffix. Before it
# was short, replies went to LOCAL-moderation+TOKEN; routing still accepts those.
DECISIONS_SUFFIX = "-mod"
LEGACY_DECISIONS_SUFFIX = "-moderation"


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
    # Where replies that decide a held item arrive, as DECISIONS+TOKEN@domain: short by
    # default, because mail servers refuse local parts over 64 octets (RFC 5321).
    decisions_local_part: str = ""

    @property
    def local_part(self) -> str:
        return self.address.split("@", 1)[0]

    @property
    def decisions_local(self) -> str:
        return self.decisions_local_part or f"{self.local_part}{DECISIONS_SUFFIX}"

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

    def list_by_kind(self, kind: ListKind) -> ListConfig | None:
        return next((lc for lc in self.lists.values() if lc.kind is kind), None)

    @property
    def team_recipients(self) -> tuple[str, ...]:
        """Where team mail is delivered: the members themselves, never the intake alias."""
        return tuple(sorted({m.address for m in self.team_members}))

    @property
    def team_addresses(self) -> frozenset[str]:
        return frozenset({self.team_address, *self.team_recipients})
