"""Moderation rules as frozen values: conditions, outcomes, a list's rules, the rule set.

The vocabulary is closed (docs/design.md "Rules are data"): nothing here is executed, and every
regex is RE2 (linear time, no backtracking, so no ReDoS), case-insensitive unless
a pattern says `(?-i)`. `rule_files` builds these values from TOML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import re2

TEXT_LIMIT = 256 * 1024
HEADER_LIMIT = 8 * 1024


class Role(StrEnum):
    MEMBER = "member"
    MODERATOR = "moderator"
    TEAM = "team"
    NONMEMBER = "nonmember"


class Action(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    HOLD = "hold"
    DISCARD = "discard"


def _re2_options() -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # the error goes into our report, not to stderr
    return options


@dataclass(frozen=True)
class Pattern:
    """An RE2 regex; `search` returns the matched text or None."""

    source: str
    compiled: Any = field(compare=False, repr=False)

    def search(self, text: str) -> str | None:
        found = self.compiled.search(text)
        return None if found is None else str(found.group(0))


def compile_pattern(source: str) -> Pattern:
    """Compile with RE2; raises ValueError with RE2's message if it cannot."""
    try:
        return Pattern(source, re2.compile(source, _re2_options()))
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise ValueError(f"regex not accepted by RE2: {detail}") from None


@dataclass(frozen=True)
class RoleIs:
    roles: frozenset[Role]


@dataclass(frozen=True)
class HeaderMatches:
    name: str  # lower case
    pattern: Pattern


@dataclass(frozen=True)
class SubjectMatches:
    pattern: Pattern


@dataclass(frozen=True)
class BodyMatches:
    pattern: Pattern
    exclude_quoted: bool


@dataclass(frozen=True)
class BodyKeywords:
    words: tuple[str, ...]
    pattern: Pattern
    exclude_quoted: bool


@dataclass(frozen=True)
class HasAttachment:
    value: bool


@dataclass(frozen=True)
class AttachmentName:
    pattern: Pattern


@dataclass(frozen=True)
class AttachmentType:
    pattern: Pattern


@dataclass(frozen=True)
class LooksLikePatch:
    value: bool


@dataclass(frozen=True)
class SignedBySender:
    value: bool


@dataclass(frozen=True)
class SizeBetween:
    min_bytes: int | None
    max_bytes: int | None


@dataclass(frozen=True)
class AllOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class NotCond:
    item: Condition


Condition = (
    RoleIs | HeaderMatches | SubjectMatches | BodyMatches | BodyKeywords | HasAttachment
    | AttachmentName | AttachmentType | LooksLikePatch | SignedBySender | SizeBetween
    | AllOf | AnyOf | NotCond
)


@dataclass(frozen=True)
class Outcome:
    action: Action
    reason: str
    notice: str | None


@dataclass(frozen=True)
class Rule:
    name: str
    outcome: Outcome
    when: Condition


@dataclass(frozen=True)
class ListRules:
    name: str
    source: str
    rules: tuple[Rule, ...]
    default: Outcome


@dataclass(frozen=True)
class RuleSet:
    lists: tuple[ListRules, ...]

    def get(self, name: str) -> ListRules | None:
        return next((lr for lr in self.lists if lr.name == name), None)

    def names(self) -> tuple[str, ...]:
        return tuple(lr.name for lr in self.lists)
