"""Measure the rules on a labelled corpus (`listbot rules check --corpus DIR`).

DIR holds `labels.csv` (columns `file,label,split`, more are ignored) and the
.eml files it names; label is approve|reject|hold, split is tune|holdout. Each
post is classified as a member's unsigned post. The result is a confusion table
per split and a few figures; it measures and never judges, so nothing here
fails on a poor result — only on a corpus it cannot read.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from listbot.core.errors import EX_DATAERR, ListbotError
from listbot.moderation.classify import classify
from listbot.moderation.facts import facts_from_message
from listbot.moderation.rules import Action, ListRules, Role

LABELS_FILE = "labels.csv"
SPLITS = ("tune", "holdout")
# Discard drops a post silently, just as a held post may never reach the list:
# for the measurement both are "not decided by the rules".
COLUMNS = (Action.APPROVE, Action.REJECT, Action.HOLD)


class CorpusError(ListbotError):
    """The corpus cannot be read: a missing file, a bad label or split."""

    exit_code = EX_DATAERR


@dataclass(frozen=True)
class LabelledPost:
    file: str
    label: Action
    split: str


def _post(row: Mapping[str, str | None], line: int) -> LabelledPost:
    name, label, split = (row.get(k) or "" for k in ("file", "label", "split"))
    if not name or label not in COLUMNS or split not in SPLITS:
        raise CorpusError(f"{LABELS_FILE} line {line}: need file, label "
                          f"(approve|reject|hold) and split (tune|holdout)")
    return LabelledPost(name, Action(label), split)


def load_labels(corpus: Path) -> list[LabelledPost]:
    try:
        with (corpus / LABELS_FILE).open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise CorpusError(f"{corpus / LABELS_FILE}: cannot read: {exc.strerror or exc}") from exc
    return [_post(row, i) for i, row in enumerate(rows, start=2)]


def _verdict_column(action: Action) -> Action:
    return Action.HOLD if action is Action.DISCARD else action


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


@dataclass(frozen=True)
class SplitTable:
    """Counts by (label, verdict) for one split."""

    split: str
    counts: Mapping[tuple[Action, Action], int]

    def cell(self, label: Action, verdict: Action) -> int:
        return self.counts.get((label, verdict), 0)

    def labelled(self, label: Action) -> int:
        return sum(self.cell(label, v) for v in COLUMNS)

    def verdicts(self, verdict: Action) -> int:
        return sum(self.cell(lab, verdict) for lab in COLUMNS)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def figures(self) -> dict[str, Any]:
        approved_wrongly = (self.cell(Action.REJECT, Action.APPROVE)
                            + self.cell(Action.HOLD, Action.APPROVE))
        return {
            "approve_precision": _ratio(self.cell(Action.APPROVE, Action.APPROVE),
                                        self.verdicts(Action.APPROVE)),
            "reject_precision": _ratio(self.cell(Action.REJECT, Action.REJECT),
                                       self.verdicts(Action.REJECT)),
            "technical_approved": self.cell(Action.APPROVE, Action.APPROVE),
            "technical_total": self.labelled(Action.APPROVE),
            "policy_rejected": self.cell(Action.REJECT, Action.REJECT),
            "policy_total": self.labelled(Action.REJECT),
            # The worst error: a post the rules should not have let through went out.
            "reject_or_hold_approved": approved_wrongly,
        }

    def as_dict(self) -> dict[str, Any]:
        table = {lab.value: {v.value: self.cell(lab, v) for v in COLUMNS} for lab in COLUMNS}
        return {"split": self.split, "posts": self.total, "table": table, **self.figures()}


def tabulate(split: str, pairs: Iterable[tuple[Action, Action]]) -> SplitTable:
    """Count (label, verdict) pairs; a discard verdict counts as hold."""
    return SplitTable(split, Counter((lab, _verdict_column(v)) for lab, v in pairs))


def _classify_file(path: Path, rules: ListRules) -> Action:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    facts = facts_from_message(raw, sender_role=Role.MEMBER, signed_by_sender=False)
    return classify(facts, rules).action


def evaluate(corpus: Path, rules: ListRules, splits: Iterable[str]) -> list[SplitTable]:
    """One table per requested split, in the order asked; raises CorpusError."""
    posts = load_labels(corpus)
    tables = []
    for split in splits:
        pairs = [(p.label, _classify_file(corpus / p.file, rules))
                 for p in posts if p.split == split]
        tables.append(tabulate(split, pairs))
    return tables


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def format_table(table: SplitTable) -> str:
    width = max(len(a) for a in COLUMNS) + 2
    lines = [f"{table.split}: {table.total} posts",
             "label \\ verdict".ljust(16) + "".join(a.value.rjust(width) for a in COLUMNS)]
    for lab in COLUMNS:
        row = "".join(str(table.cell(lab, v)).rjust(width) for v in COLUMNS)
        lines.append(lab.value.ljust(16) + row)
    f = table.figures()
    lines += [
        f"approve precision        {_pct(f['approve_precision'])}",
        f"reject precision         {_pct(f['reject_precision'])}",
        f"technical approved       {f['technical_approved']}/{f['technical_total']}",
        f"policy rejected          {f['policy_rejected']}/{f['policy_total']}",
        f"reject/hold approved     {f['reject_or_hold_approved']}",
    ]
    return "\n".join(lines)


def format_tables(tables: Iterable[SplitTable]) -> str:
    return "\n\n".join(format_table(t) for t in tables)
