"""Measuring the rules on a labelled corpus: counting, figures, and the CLI on the
real corpus (tests/data/corpus/discuss). Nothing here asserts how good the rules are."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from listbot.moderation.evaluation import (
    CorpusError,
    evaluate,
    format_tables,
    load_labels,
    tabulate,
)
from listbot.moderation.rule_files import load_rules
from listbot.moderation.rules import Action, ListRules
from tests.proc import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "rules" / "examples" / "discuss"
CORPUS = ROOT / "tests" / "data" / "corpus" / "discuss"
A, R, H, D = Action.APPROVE, Action.REJECT, Action.HOLD, Action.DISCARD


@pytest.fixture(scope="module")
def discuss() -> ListRules:
    rules = load_rules(ROOT / "rules").get("discuss")
    assert rules is not None
    return rules


def test_tabulate_counts_discard_as_hold_and_computes_figures() -> None:
    pairs = [(A, A), (A, A), (A, H), (R, R), (R, A), (R, D), (H, A), (H, R), (H, H)]
    t = tabulate("tune", pairs)
    assert t.total == 9
    assert (t.cell(A, A), t.cell(A, H), t.cell(R, H), t.cell(R, D)) == (2, 1, 1, 0)
    f = t.figures()
    assert f["approve_precision"] == round(2 / 4, 4)  # 2 right of 4 approved
    assert f["reject_precision"] == 0.5  # 1 right of 2 rejected
    assert (f["technical_approved"], f["technical_total"]) == (2, 3)
    assert (f["policy_rejected"], f["policy_total"]) == (1, 3)
    assert f["reject_or_hold_approved"] == 2
    d = t.as_dict()
    assert d["table"]["reject"] == {"approve": 1, "reject": 1, "hold": 1}
    assert d["posts"] == 9


def test_no_verdict_of_a_kind_gives_no_precision() -> None:
    f = tabulate("holdout", [(A, H), (R, H)]).figures()
    assert f["approve_precision"] is None and f["reject_precision"] is None
    assert "approve precision        n/a" in format_tables([tabulate("holdout", [])])


def _corpus(tmp_path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """rows: (example as <action>/<name>, label, split); files are renamed pNNN.eml."""
    with (tmp_path / "labels.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "label", "category", "split"])
        for i, (example, label, split) in enumerate(rows, start=1):
            shutil.copy(EXAMPLES / example, tmp_path / f"p{i:03d}.eml")
            w.writerow([f"p{i:03d}.eml", label, "x", split])
    return tmp_path


def test_evaluate_tiny_corpus_per_split(tmp_path: Path, discuss: ListRules) -> None:
    corpus = _corpus(tmp_path, [
        ("approve/test-results-amd.eml", "approve", "tune"),
        ("reject/shorten-embargo.eml", "reject", "tune"),
        ("hold/job-posting.eml", "hold", "tune"),
        # labelled against what the rules do: the worst error, on the held-out part
        ("approve/dom0-crash-log.eml", "reject", "holdout"),
        ("reject/allowed-to-deploy.eml", "approve", "holdout"),
    ])
    tune, holdout = evaluate(corpus, discuss, ["tune", "holdout"])
    assert (tune.split, tune.total, holdout.total) == ("tune", 3, 2)
    assert (tune.cell(A, A), tune.cell(R, R), tune.cell(H, H)) == (1, 1, 1)
    assert tune.figures()["reject_or_hold_approved"] == 0
    assert tune.figures()["approve_precision"] == 1.0
    assert (holdout.cell(R, A), holdout.cell(A, R)) == (1, 1)
    assert holdout.figures()["reject_or_hold_approved"] == 1
    assert holdout.figures()["approve_precision"] == 0.0
    (only_tune,) = evaluate(corpus, discuss, ["tune"])
    assert only_tune == tune


def test_unreadable_corpus_is_a_data_error(tmp_path: Path, discuss: ListRules) -> None:
    with pytest.raises(CorpusError):
        load_labels(tmp_path)  # no labels.csv
    (tmp_path / "labels.csv").write_text("file,label,split\np1.eml,maybe,tune\n")
    with pytest.raises(CorpusError, match="line 2"):
        load_labels(tmp_path)
    (tmp_path / "labels.csv").write_text("file,label,split\np1.eml,hold,tune\n")
    with pytest.raises(CorpusError, match=r"p1\.eml"):
        evaluate(tmp_path, discuss, ["tune"])


def _rows_per_split() -> dict[str, int]:
    with (CORPUS / "labels.csv").open(newline="") as fh:
        splits = [row["split"] for row in csv.DictReader(fh)]
    return {s: splits.count(s) for s in ("tune", "holdout")}


async def test_cli_measures_real_corpus_both_splits() -> None:
    config = ROOT / "config" / "listbot.toml"
    expected = _rows_per_split()
    rc, out, err = await cli(config, "rules", "check", "--corpus", str(CORPUS),
                             "--holdout", "--json")
    assert rc == 0, err
    tables = json.loads(out)
    assert [t["split"] for t in tables] == ["tune", "holdout"]
    for t in tables:
        assert set(t["table"]) == {"approve", "reject", "hold"}
        assert all(set(row) == {"approve", "reject", "hold"} for row in t["table"].values())
        cells = sum(sum(row.values()) for row in t["table"].values())
        assert cells == t["posts"] == expected[t["split"]]
        assert t["technical_total"] == sum(t["table"]["approve"].values())
    rc, out, err = await cli(config, "rules", "check", "--corpus", str(CORPUS))
    assert rc == 0, err
    assert f"tune: {expected['tune']} posts" in out and "holdout" not in out
    assert "label \\ verdict" in out and "reject/hold approved" in out
