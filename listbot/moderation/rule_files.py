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

See `rule_conditions` for the condition keys.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import re2

from listbot.core.errors import ConfigError
from listbot.moderation.rule_conditions import Problems, parse_condition
from listbot.moderation.rules import Action, ListRules, Outcome, Rule, RuleSet

MAX_FILE_BYTES = 1024 * 1024
_NAME = re2.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _outcome(table: dict[str, Any], path: str, p: Problems, fallback: str) -> Outcome | None:
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


def _rule(raw: object, path: str, p: Problems, seen: set[str]) -> Rule | None:
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
    when = parse_condition(raw["when"], f"{path}.when", p)
    if name is None or outcome is None or when is None:
        return None
    return Rule(name, outcome, when)


def parse_rules(text: str, source: str) -> ListRules:
    """Parse one rule file's text; `source` names it in error messages."""
    p = Problems(source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: TOML syntax error: {exc}"]) from None
    except RecursionError:
        raise ConfigError([f"{source}: TOML nested too deeply"]) from None
    return _build(data, p)


def _head(data: dict[str, Any], p: Problems) -> tuple[str | None, Outcome | None]:
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


def _build(data: dict[str, Any], p: Problems) -> ListRules:
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
