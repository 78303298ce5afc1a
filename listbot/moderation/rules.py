"""Moderation rule files: TOML in a closed vocabulary, turned into frozen values.

Nothing in a rule file is executed (docs/design.md "Rules are data"). One file holds the rules of
one list; `load_rules(directory)` reads every `*.toml` in it, validates all of
them and raises one `ConfigError` listing every problem with its file and key
path, so a caller can keep the rules it already has.

File format::

    [list]
    name = "discuss"
    default = { action = "hold", reason = "no rule matched" }

    [[rule]]
    name = "policy-embargo-change"      # letters, digits, '.', '_', '-'
    action = "reject"                   # approve | reject | hold | discard
    notice = "policy"                   # reject only: the notice template
    reason = "asks to change an embargo"   # optional, shown to moderators
    when.any = [
      { subject_matches = "embargo (extension|change)" },
      { body_keywords = ["extend the embargo"], quoted = "exclude" },
    ]

A condition is a table with exactly one condition key:

    sender_role = "member" | ["member", "team", ...]  (member moderator team nonmember)
    header = { name = "List-Unsubscribe", matches = "regex" }   (any occurrence)
    subject_matches = "regex"
    body_matches = "regex"            + optional quoted = "include" | "exclude"
    body_keywords = ["phrase", ...]   + optional quoted = "include" | "exclude"
    has_attachment = true | false
    attachment_name_matches = "regex"      (any attachment's file name)
    attachment_type_matches = "regex"      (any attachment's content type)
    looks_like_patch = true | false        (unified diff / format-patch, inline or attached)
    signed_by_sender = true | false        (computed by the caller)
    size = { min = bytes, max = bytes }    (either bound optional, both inclusive)
    all = [cond, ...]   any = [cond, ...]   not = cond

Regexes use RE2 (linear time, no backtracking, so no ReDoS) and are
case-insensitive unless a pattern says `(?-i)`. Keywords are case-insensitive
phrases; any run of whitespace in a phrase matches any run of whitespace in
the text, and a phrase that starts or ends with a letter or digit only matches
at a word boundary. Text fed to a regex is capped: body text at TEXT_LIMIT
characters, each header value at HEADER_LIMIT (see classify.facts_from_message).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import re2

from listbot.core.errors import ConfigError

TEXT_LIMIT = 256 * 1024
HEADER_LIMIT = 8 * 1024
MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 16
_NAME = re2.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


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


def _keyword_regex(words: Sequence[str]) -> str:
    parts = []
    for word in words:
        body = r"\s+".join(re2.escape(piece) for piece in word.split())
        start = r"\b" if word[0].isascii() and word[0].isalnum() else ""
        end = r"\b" if word[-1].isascii() and word[-1].isalnum() else ""
        parts.append(start + body + end)
    return "(?:" + "|".join(parts) + ")"


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


# ---------------------------------------------------------------- parsing


class _Problems:
    """Collects every problem of one file, each prefixed with file name and key path."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{self.source}: {path}: {message}" if path else
                          f"{self.source}: {message}")


_BOOL_CONDITIONS: dict[str, type[HasAttachment | LooksLikePatch | SignedBySender]] = {
    "has_attachment": HasAttachment,
    "looks_like_patch": LooksLikePatch,
    "signed_by_sender": SignedBySender,
}
_REGEX_CONDITIONS: dict[str, type[SubjectMatches | AttachmentName | AttachmentType]] = {
    "subject_matches": SubjectMatches,
    "attachment_name_matches": AttachmentName,
    "attachment_type_matches": AttachmentType,
}
_BODY_CONDITIONS = ("body_matches", "body_keywords")
CONDITION_KEYS = (
    "sender_role", "header", *_REGEX_CONDITIONS, *_BODY_CONDITIONS, *_BOOL_CONDITIONS,
    "size", "all", "any", "not",
)


def _pattern(value: object, path: str, p: _Problems) -> Pattern | None:
    if not isinstance(value, str) or not value:
        p.add(path, "expected a non-empty regex string")
        return None
    try:
        return compile_pattern(value)
    except ValueError as exc:
        p.add(path, f"{exc} in {value!r}")
        return None


def _condition(value: object, path: str, p: _Problems, depth: int = 0) -> Condition | None:
    if depth > MAX_DEPTH:
        p.add(path, f"conditions nested deeper than {MAX_DEPTH}")
        return None
    if not isinstance(value, dict):
        p.add(path, "expected a condition table, e.g. { subject_matches = \"...\" }")
        return None
    kinds = [k for k in value if k in CONDITION_KEYS]
    for key in value:
        if key not in CONDITION_KEYS and key != "quoted":
            p.add(path, f"unknown condition {key!r}")
    if len(kinds) != 1:
        if kinds or "quoted" in value:
            p.add(path, f"expected exactly one condition, found {kinds or 'none'}"
                  " (combine several with all = [...])")
        elif not value:
            p.add(path, "empty condition")
        return None
    kind = kinds[0]
    if "quoted" in value and kind not in _BODY_CONDITIONS:
        p.add(f"{path}.quoted", f"'quoted' applies only to {' and '.join(_BODY_CONDITIONS)}")
    return _one_condition(kind, value, f"{path}.{kind}", p, depth)


def _one_condition(
    kind: str, table: dict[str, Any], path: str, p: _Problems, depth: int
) -> Condition | None:
    value = table[kind]
    if kind in ("all", "any", "not"):
        return _combination(kind, value, path, p, depth)
    if kind in _BODY_CONDITIONS:
        return _body(kind, value, table.get("quoted", "include"), path, p)
    if kind in _BOOL_CONDITIONS:
        if not isinstance(value, bool):
            p.add(path, "expected true or false")
            return None
        return _BOOL_CONDITIONS[kind](value)
    if kind in _REGEX_CONDITIONS:
        pat = _pattern(value, path, p)
        return None if pat is None else _REGEX_CONDITIONS[kind](pat)
    return _SIMPLE_PARSERS[kind](value, path, p)


def _combination(
    kind: str, value: object, path: str, p: _Problems, depth: int
) -> Condition | None:
    if kind == "not":
        inner = _condition(value, path, p, depth + 1)
        return None if inner is None else NotCond(inner)
    if not isinstance(value, list) or not value:
        p.add(path, "expected a non-empty array of conditions")
        return None
    items = [_condition(v, f"{path}[{i}]", p, depth + 1) for i, v in enumerate(value)]
    good = tuple(c for c in items if c is not None)
    if len(good) != len(items):
        return None
    return AllOf(good) if kind == "all" else AnyOf(good)


def _body(kind: str, value: object, quoted: object, path: str, p: _Problems) -> Condition | None:
    if quoted not in ("include", "exclude"):
        p.add(path.rsplit(".", 1)[0] + ".quoted", "expected \"include\" or \"exclude\"")
        return None
    exclude = quoted == "exclude"
    if kind == "body_matches":
        pat = _pattern(value, path, p)
        return None if pat is None else BodyMatches(pat, exclude)
    if (not isinstance(value, list) or not value
            or not all(isinstance(w, str) and w.strip() for w in value)):
        p.add(path, "expected a non-empty array of non-empty strings")
        return None
    words = tuple(" ".join(w.split()) for w in value)
    pat = _pattern(_keyword_regex(words), path, p)
    return None if pat is None else BodyKeywords(words, pat, exclude)


def _roles(value: object, path: str, p: _Problems) -> Condition | None:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        p.add(path, "expected a role or an array of roles")
        return None
    known = {r.value for r in Role}
    bad = [n for n in names if n not in known]
    if bad:
        p.add(path, f"unknown role(s) {bad}; expected some of {sorted(known)}")
        return None
    return RoleIs(frozenset(Role(n) for n in names))


def _header(value: object, path: str, p: _Problems) -> Condition | None:
    if not isinstance(value, dict):
        p.add(path, "expected { name = \"Header-Name\", matches = \"regex\" }")
        return None
    for key in value:
        if key not in ("name", "matches"):
            p.add(f"{path}.{key}", "unknown key (expected name, matches)")
    name = value.get("name")
    if not isinstance(name, str) or not name or any(c in name for c in ": \t\r\n"):
        p.add(f"{path}.name", "expected a header field name")
        name = None
    if "matches" not in value:
        p.add(f"{path}.matches", "missing")
        return None
    pat = _pattern(value["matches"], f"{path}.matches", p)
    if name is None or pat is None:
        return None
    return HeaderMatches(name.lower(), pat)


def _size(value: object, path: str, p: _Problems) -> Condition | None:
    if not isinstance(value, dict) or not value:
        p.add(path, "expected { min = bytes, max = bytes } with at least one bound")
        return None
    bounds: dict[str, int] = {}
    for key, bound in value.items():
        if key not in ("min", "max"):
            p.add(f"{path}.{key}", "unknown key (expected min, max)")
        elif isinstance(bound, bool) or not isinstance(bound, int) or bound < 0:
            p.add(f"{path}.{key}", "expected a number of bytes >= 0")
        else:
            bounds[key] = bound
    if len(bounds) != len(value):
        return None
    low, high = bounds.get("min"), bounds.get("max")
    if low is not None and high is not None and low > high:
        p.add(path, "min is larger than max")
        return None
    return SizeBetween(low, high)


_SIMPLE_PARSERS: dict[str, Callable[[object, str, _Problems], Condition | None]] = {
    "sender_role": _roles,
    "header": _header,
    "size": _size,
}


def _outcome(table: dict[str, Any], path: str, p: _Problems, fallback: str) -> Outcome | None:
    raw = table.get("action")
    # A TOML dotted key can make `action` a table: compare only strings (unhashable otherwise).
    if not isinstance(raw, str) or raw not in {a.value for a in Action}:
        p.add(f"{path}.action" if path else "action",
              f"expected one of {[a.value for a in Action]}, got {raw!r}")
        return None
    action = Action(raw)
    notice = table.get("notice")
    ok = True
    if action is Action.REJECT:
        if not isinstance(notice, str) or not _NAME.search(notice):
            p.add(f"{path}.notice" if path else "notice",
                  "a reject needs a notice template name (letters, digits, . _ -)")
            ok = False
    elif notice is not None:
        p.add(f"{path}.notice" if path else "notice", "only a reject sends a notice")
        ok = False
    reason = table.get("reason", fallback)
    if not isinstance(reason, str) or any(c in reason for c in "\r\n"):
        p.add(f"{path}.reason" if path else "reason", "expected a one-line string")
        ok = False
    return Outcome(action, str(reason), notice) if ok else None


def _rule(raw: object, path: str, p: _Problems, seen: set[str]) -> Rule | None:
    if not isinstance(raw, dict):
        p.add(path, "expected a table")
        return None
    for key in raw:
        if key not in ("name", "action", "notice", "reason", "when", "description"):
            p.add(f"{path}.{key}", "unknown key")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.search(name):
        p.add(f"{path}.name", "expected a name of letters, digits, '.', '_', '-' (max 64)")
        name = None
    elif name in seen or name == "default":
        p.add(f"{path}.name", f"duplicate or reserved rule name {name!r}")
    else:
        seen.add(name)
    outcome = _outcome(raw, path, p, f"matched rule {name}")
    if "when" not in raw:
        p.add(f"{path}.when", "missing (a rule needs a condition)")
        return None
    when = _condition(raw["when"], f"{path}.when", p)
    if name is None or outcome is None or when is None:
        return None
    return Rule(name, outcome, when)


def parse_rules(text: str, source: str) -> ListRules:
    """Parse one rule file's text; `source` names it in error messages."""
    p = _Problems(source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: TOML syntax error: {exc}"]) from None
    except RecursionError:
        raise ConfigError([f"{source}: TOML nested too deeply"]) from None
    return _build(data, p)


def _head(data: dict[str, Any], p: _Problems) -> tuple[str | None, Outcome | None]:
    head = data.get("list")
    if not isinstance(head, dict):
        p.add("list", "missing [list] table with name and default")
        return None, None
    for key in head:
        if key not in ("name", "default", "description"):
            p.add(f"list.{key}", "unknown key")
    name = head.get("name")
    if not isinstance(name, str) or not _NAME.search(name):
        p.add("list.name", "expected a list name")
        name = None
    raw_default = head.get("default")
    if not isinstance(raw_default, dict):
        p.add("list.default", "missing: { action = ..., reason = ... }")
        return name, None
    for key in raw_default:
        if key not in ("action", "notice", "reason"):
            p.add(f"list.default.{key}", "unknown key")
    return name, _outcome(raw_default, "list.default", p, "no rule matched")


def _build(data: dict[str, Any], p: _Problems) -> ListRules:
    for key in data:
        if key not in ("list", "rule"):
            p.add(key, "unknown key (expected [list] and [[rule]])")
    name, default = _head(data, p)
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        p.add("rule", "expected [[rule]] tables")
        raw_rules = []
    seen: set[str] = set()
    rules = [_rule(raw, f"rule[{i}]", p, seen) for i, raw in enumerate(raw_rules)]
    if p.items or name is None or default is None:
        raise ConfigError(p.items)
    return ListRules(name, p.source, tuple(r for r in rules if r is not None), default)


def load_rule_file(path: Path) -> ListRules:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError([f"{path}: larger than {MAX_FILE_BYTES} bytes"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 (byte {exc.start})"]) from None
    return parse_rules(text, str(path))


def load_rules(directory: Path) -> RuleSet:
    """Load and validate every `*.toml` in `directory`; all problems in one ConfigError."""
    try:
        files = sorted(f for f in directory.glob("*.toml") if f.is_file())
    except OSError as exc:
        raise ConfigError([f"{directory}: cannot list: {exc.strerror or exc}"]) from None
    if not files:
        raise ConfigError([f"{directory}: no *.toml rule files"])
    problems: list[str] = []
    loaded: list[ListRules] = []
    for path in files:
        try:
            loaded.append(load_rule_file(path))
        except ConfigError as exc:
            problems.extend(exc.problems)
    owners: dict[str, str] = {}
    for lr in loaded:
        if lr.name in owners:
            problems.append(f"{lr.source}: list.name: list {lr.name!r} already defined"
                            f" in {owners[lr.name]}")
        owners.setdefault(lr.name, lr.source)
    if problems:
        raise ConfigError(problems)
    return RuleSet(tuple(loaded))
