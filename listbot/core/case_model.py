"""Plain values of a security case."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from listbot.core.calendar.timeline import Timeline


class CaseState(StrEnum):
    NEW = "new"
    TRIAGED = "triaged"
    EMBARGOED = "embargoed"
    PREDISCLOSED = "predisclosed"
    PUBLIC = "public"
    CLOSED = "closed"
    REJECTED = "rejected"


# No reminders once a case is out in the open or finished.
FINISHED_STATES = frozenset({CaseState.PUBLIC, CaseState.CLOSED, CaseState.REJECTED})


class MessageKind(StrEnum):
    REPORT = "report"
    FOLLOW_UP = "follow_up"  # the reporter, or anyone not speaking as the team
    TEAM_REPLY = "team_reply"  # relayed to the reporter as the team
    TEAM_NOTE = "team_note"  # from a team member, not relayed (e.g. unsigned)


def case_id_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"\b({re.escape(prefix)}-\d{{4}}-\d{{4,}})\b", re.IGNORECASE)


def format_case_id(prefix: str, year: int, seq: int) -> str:
    return f"{prefix}-{year:04d}-{seq:04d}"


@dataclass(frozen=True)
class Case:
    id: str
    state: CaseState
    reporter: str
    reporter_fingerprint: str | None
    subject: str
    opened_at: datetime
    timeline: Timeline
    embargo_at: datetime | None
    cve_ids: tuple[str, ...]
    advisory: str | None
    credits: str
    notes: str
    patch_attached: bool


@dataclass(frozen=True)
class Party:
    case_id: str
    address: str
    name: str
    added_at: datetime
    added_by: str
    fingerprint: str | None  # its key: embargoed copies are sealed to it
