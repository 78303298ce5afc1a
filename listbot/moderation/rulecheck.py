"""Check rule files against labelled example messages (`listbot rules check`).

Layout: EXAMPLES/<list>/<expected action>/*.eml, e.g.
rules/examples/discuss/reject/deploy-question.eml. An example is classified as
a member's unsigned post unless it carries `X-Listbot-Example-Role: <role>` or
`X-Listbot-Example-Signed: yes` — the facts the caller would supply for it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from listbot.moderation.classify import Verdict, classify
from listbot.moderation.facts import facts_from_message
from listbot.moderation.rule_files import load_rules
from listbot.moderation.rules import Action, ListRules, Role

ROLE_HEADER = "x-listbot-example-role"
SIGNED_HEADER = "x-listbot-example-signed"


@dataclass(frozen=True)
class ExampleResult:
    path: str
    list_name: str
    expected: Action
    verdict: Verdict

    @property
    def ok(self) -> bool:
        return self.verdict.action is self.expected


@dataclass(frozen=True)
class CheckReport:
    results: tuple[ExampleResult, ...]
    problems: tuple[str, ...]  # unreadable files, unknown lists or action folders

    @property
    def mismatches(self) -> tuple[ExampleResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    @property
    def ok(self) -> bool:
        return bool(self.results) and not self.problems and not self.mismatches

    def confusion(self) -> Mapping[tuple[Action, Action], int]:
        """Counts by (expected, got)."""
        return Counter((r.expected, r.verdict.action) for r in self.results)


def _classify_example(raw: bytes, rules: ListRules) -> Verdict:
    facts = facts_from_message(raw, sender_role=Role.MEMBER, signed_by_sender=False)
    role = next(iter(facts.header_values(ROLE_HEADER)), Role.MEMBER.value).strip().lower()
    signed = next(iter(facts.header_values(SIGNED_HEADER)), "no").strip().lower() == "yes"
    facts = dataclasses.replace(
        facts, sender_role=Role(role) if role in set(Role) else Role.MEMBER,
        signed_by_sender=signed,
    )
    return classify(facts, rules)


def _check_list(rules: ListRules, folder: Path, problems: list[str]) -> list[ExampleResult]:
    results = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if sub.name not in set(Action):
            problems.append(f"{sub}: not an action folder ({', '.join(Action)})")
            continue
        for path in sorted(sub.glob("*.eml")):
            try:
                raw = path.read_bytes()
            except OSError as exc:
                problems.append(f"{path}: cannot read: {exc.strerror or exc}")
                continue
            verdict = _classify_example(raw, rules)
            results.append(ExampleResult(str(path), rules.name, Action(sub.name), verdict))
    return results


def check_examples(rules_dir: Path, examples_dir: Path) -> CheckReport:
    """Classify every example; raises ConfigError if the rules themselves are bad."""
    ruleset = load_rules(rules_dir)
    problems: list[str] = []
    results: list[ExampleResult] = []
    try:
        folders = sorted(p for p in examples_dir.iterdir() if p.is_dir())
    except OSError as exc:
        return CheckReport((), (f"{examples_dir}: cannot list: {exc.strerror or exc}",))
    for folder in folders:
        rules = ruleset.get(folder.name)
        if rules is None:
            problems.append(f"{folder}: no rules for list {folder.name!r}")
            continue
        results.extend(_check_list(rules, folder, problems))
    if not results and not problems:
        problems.append(f"{examples_dir}: no examples found")
    return CheckReport(tuple(results), tuple(problems))


def format_report(report: CheckReport) -> str:
    actions = list(Action)
    counts = report.confusion()
    good = len(report.results) - len(report.mismatches)
    lines = [f"{len(report.results)} examples, {good} classified as labelled", ""]
    width = max(len(a) for a in actions) + 2
    lines.append("expected \\ got".ljust(16) + "".join(a.value.rjust(width) for a in actions))
    for exp in actions:
        row = "".join(str(counts.get((exp, got), 0)).rjust(width) for got in actions)
        lines.append(exp.value.ljust(16) + row)
    for m in report.mismatches:
        v = m.verdict
        lines.append(f"MISMATCH {m.path}: expected {m.expected}, got {v.action}"
                     f" by {v.rule} (rules that matched: {', '.join(v.hits) or 'none'})")
    lines.extend(f"PROBLEM {p}" for p in report.problems)
    lines.append("OK" if report.ok else "FAILED")
    return "\n".join(lines)
