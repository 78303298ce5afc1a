"""Conditions of moderation rule files: one TOML table in, one `Condition` out.

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
characters, each header value at HEADER_LIMIT (see facts.facts_from_message).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import re2

from listbot.moderation.rules import (
    AllOf,
    AnyOf,
    AttachmentName,
    AttachmentType,
    BodyKeywords,
    BodyMatches,
    Condition,
    HasAttachment,
    HeaderMatches,
    LooksLikePatch,
    NotCond,
    Pattern,
    Role,
    RoleIs,
    SignedBySender,
    SizeBetween,
    SubjectMatches,
    compile_pattern,
)

MAX_DEPTH = 16


def _keyword_regex(words: Sequence[str]) -> str:
    parts = []
    for word in words:
        body = r"\s+".join(re2.escape(piece) for piece in word.split())
        start = r"\b" if word[0].isascii() and word[0].isalnum() else ""
        end = r"\b" if word[-1].isascii() and word[-1].isalnum() else ""
        parts.append(start + body + end)
    return "(?:" + "|".join(parts) + ")"


class Problems:
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


def _pattern(value: object, path: str, p: Problems) -> Pattern | None:
    if not isinstance(value, str) or not value:
        p.add(path, "expected a non-empty regex string")
        return None
    try:
        return compile_pattern(value)
    except ValueError as exc:
        p.add(path, f"{exc} in {value!r}")
        return None


def parse_condition(value: object, path: str, p: Problems, depth: int = 0) -> Condition | None:
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
    kind: str, table: dict[str, Any], path: str, p: Problems, depth: int
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
    kind: str, value: object, path: str, p: Problems, depth: int
) -> Condition | None:
    if kind == "not":
        inner = parse_condition(value, path, p, depth + 1)
        return None if inner is None else NotCond(inner)
    if not isinstance(value, list) or not value:
        p.add(path, "expected a non-empty array of conditions")
        return None
    items = [parse_condition(v, f"{path}[{i}]", p, depth + 1) for i, v in enumerate(value)]
    good = tuple(c for c in items if c is not None)
    if len(good) != len(items):
        return None
    return AllOf(good) if kind == "all" else AnyOf(good)


def _body(kind: str, value: object, quoted: object, path: str, p: Problems) -> Condition | None:
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


def _roles(value: object, path: str, p: Problems) -> Condition | None:
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


def _header(value: object, path: str, p: Problems) -> Condition | None:
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


def _size(value: object, path: str, p: Problems) -> Condition | None:
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


_SIMPLE_PARSERS: dict[str, Callable[[object, str, Problems], Condition | None]] = {
    "sender_role": _roles,
    "header": _header,
    "size": _size,
}
