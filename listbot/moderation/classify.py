"""Pure moderation decisions: MessageFacts -> Verdict, and why.

`classify` evaluates every rule (all are linear-time RE2), so `Verdict.hits`
names every rule whose condition matched; the first decides. `explain` and
`format_explain` show each condition's evaluation for people asking why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from listbot.moderation.facts import MessageFacts
from listbot.moderation.rules import (
    Action,
    AllOf,
    AnyOf,
    AttachmentName,
    AttachmentType,
    BodyKeywords,
    BodyMatches,
    Condition,
    HasAttachment,
    HeaderMatches,
    ListRules,
    LooksLikePatch,
    NotCond,
    RoleIs,
    SignedBySender,
    SizeBetween,
    SubjectMatches,
)


@dataclass(frozen=True)
class Verdict:
    action: Action
    rule: str  # the deciding rule's name, or "default"
    reason: str
    notice: str | None  # template name, only for reject
    hits: tuple[str, ...]  # every rule whose condition matched, in file order

    def hits_header(self) -> str:
        """Value for X-Listbot-Rule-Hits; rule names are validated, so no CR/LF."""
        return ", ".join(self.hits) if self.hits else "none"


@dataclass(frozen=True)
class ConditionTrace:
    condition: str  # e.g. "any", "body_keywords ['x'] (quoted text excluded)"
    matched: bool
    detail: str  # what was found, or why not
    children: tuple[ConditionTrace, ...] = ()


@dataclass(frozen=True)
class RuleTrace:
    rule: str
    action: Action
    matched: bool
    decided: bool
    trace: ConditionTrace


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= 60 else flat[:57] + "...")


def _found(text: str | None) -> tuple[bool, str]:
    return (False, "no match") if text is None else (True, f"found {_snippet(text)}")


def _first(pattern_hits: list[str | None]) -> str | None:
    return next((h for h in pattern_hits if h is not None), None)


def _role(cond: RoleIs, facts: MessageFacts) -> tuple[str, bool, str]:
    want = sorted(r.value for r in cond.roles)
    return f"sender_role {want}", facts.sender_role in cond.roles, f"sender is {facts.sender_role}"


def _header(cond: HeaderMatches, facts: MessageFacts) -> tuple[str, bool, str]:
    what = f"header {cond.name} ~ {cond.pattern.source!r}"
    values = facts.header_values(cond.name)
    if not values:
        return what, False, "header absent"
    return what, *_found(_first([cond.pattern.search(v) for v in values]))


def _subject(cond: SubjectMatches, facts: MessageFacts) -> tuple[str, bool, str]:
    return f"subject_matches {cond.pattern.source!r}", *_found(cond.pattern.search(facts.subject))


def _body(cond: BodyMatches | BodyKeywords, facts: MessageFacts) -> tuple[str, bool, str]:
    text = facts.body_unquoted if cond.exclude_quoted else facts.body
    what = (f"body_matches {cond.pattern.source!r}" if isinstance(cond, BodyMatches)
            else f"body_keywords {list(cond.words)}")
    if cond.exclude_quoted:
        what += " (quoted text excluded)"
    return what, *_found(cond.pattern.search(text))


def _attachment(
    cond: AttachmentName | AttachmentType, facts: MessageFacts
) -> tuple[str, bool, str]:
    byname = isinstance(cond, AttachmentName)
    found = _first([cond.pattern.search(a.filename if byname else a.content_type)
                    for a in facts.attachments])
    kind = "attachment_name_matches" if byname else "attachment_type_matches"
    return f"{kind} {cond.pattern.source!r}", *_found(found)


def _size(cond: SizeBetween, facts: MessageFacts) -> tuple[str, bool, str]:
    low, high = cond.min_bytes, cond.max_bytes
    ok = (low is None or facts.size >= low) and (high is None or facts.size <= high)
    return f"size min={low} max={high}", ok, f"message is {facts.size} bytes"


_LEAVES: dict[type, Callable[[Any, MessageFacts], tuple[str, bool, str]]] = {
    RoleIs: _role,
    HeaderMatches: _header,
    SubjectMatches: _subject,
    BodyMatches: _body,
    BodyKeywords: _body,
    AttachmentName: _attachment,
    AttachmentType: _attachment,
    SizeBetween: _size,
}


def _leaf(cond: Condition, facts: MessageFacts) -> tuple[str, bool, str]:
    """One non-combinator condition: (description, matched, detail)."""
    if isinstance(cond, HasAttachment | LooksLikePatch | SignedBySender):
        return _flag(cond, cond.value, facts)
    return _LEAVES[type(cond)](cond, facts)


def _flag(cond: Condition, value: bool, facts: MessageFacts) -> tuple[str, bool, str]:
    if isinstance(cond, HasAttachment):
        name, actual = "has_attachment", bool(facts.attachments)
        detail = f"{len(facts.attachments)} attachment(s)"
    elif isinstance(cond, LooksLikePatch):
        name, actual = "looks_like_patch", facts.looks_like_patch
        detail = "inline diff" if facts.inline_patch else (
            "patch attached" if actual else "no diff found")
    else:
        name, actual = "signed_by_sender", facts.signed_by_sender
        detail = "signed by the sender's key" if actual else "not signed by the sender's key"
    return f"{name} = {str(value).lower()}", actual == value, detail


def matches(cond: Condition, facts: MessageFacts) -> bool:
    """Short-circuit evaluation; agrees with `trace(cond, facts).matched`."""
    match cond:
        case AllOf(items):
            return all(matches(c, facts) for c in items)
        case AnyOf(items):
            return any(matches(c, facts) for c in items)
        case NotCond(item):
            return not matches(item, facts)
    return _leaf(cond, facts)[1]


def trace(cond: Condition, facts: MessageFacts) -> ConditionTrace:
    """Full evaluation of every branch, for people asking why."""
    match cond:
        case AllOf(items) | AnyOf(items):
            kids = tuple(trace(c, facts) for c in items)
            every = isinstance(cond, AllOf)
            ok = all(k.matched for k in kids) if every else any(k.matched for k in kids)
            count = sum(k.matched for k in kids)
            return ConditionTrace("all" if every else "any", ok,
                                  f"{count} of {len(kids)} matched", kids)
        case NotCond(item):
            kid = trace(item, facts)
            return ConditionTrace("not", not kid.matched, "inner condition "
                                  + ("matched" if kid.matched else "did not match"), (kid,))
    what, ok, detail = _leaf(cond, facts)
    return ConditionTrace(what, ok, detail)


def classify(facts: MessageFacts, rules: ListRules) -> Verdict:
    hits = tuple(r for r in rules.rules if matches(r.when, facts))
    if not hits:
        d = rules.default
        return Verdict(d.action, "default", d.reason, d.notice, ())
    first = hits[0].outcome
    return Verdict(first.action, hits[0].name, first.reason, first.notice,
                   tuple(r.name for r in hits))


def explain(facts: MessageFacts, rules: ListRules) -> list[RuleTrace]:
    traces: list[RuleTrace] = []
    decided = False
    for rule in rules.rules:
        t = trace(rule.when, facts)
        traces.append(RuleTrace(rule.name, rule.outcome.action, t.matched,
                                t.matched and not decided, t))
        decided = decided or t.matched
    return traces


def format_explain(facts: MessageFacts, rules: ListRules) -> str:
    verdict = classify(facts, rules)
    lines = [
        f"list {rules.name} ({rules.source})",
        f"facts: role={facts.sender_role} signed={str(facts.signed_by_sender).lower()}"
        f" size={facts.size} attachments={len(facts.attachments)}"
        f" patch={str(facts.looks_like_patch).lower()}"
        + (" body=from-html" if facts.body_from_html else "")
        + (" body=truncated" if facts.body_truncated else ""),
        f"subject: {_snippet(facts.subject)}",
    ]
    for rt in explain(facts, rules):
        mark = "DECIDES" if rt.decided else ("matched" if rt.matched else "no")
        lines.append(f"rule {rt.rule} -> {rt.action}: {mark}")
        lines.extend(_tree(rt.trace, "    "))
    lines.append(f"verdict: {verdict.action} by {verdict.rule} ({verdict.reason})"
                 + (f", notice {verdict.notice}" if verdict.notice else ""))
    return "\n".join(lines)


def _tree(t: ConditionTrace, indent: str) -> list[str]:
    out = [f"{indent}[{'x' if t.matched else ' '}] {t.condition}: {t.detail}"]
    for kid in t.children:
        out.extend(_tree(kid, indent + "    "))
    return out
