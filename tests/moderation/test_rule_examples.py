from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from listbot.core.errors import ConfigError
from listbot.moderation.classify import classify
from listbot.moderation.facts import facts_from_message
from listbot.moderation.rule_files import load_rules
from listbot.moderation.rulecheck import CheckReport, check_examples, format_report
from listbot.moderation.rules import Action, Role

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
EXAMPLES = RULES / "examples"
ALL = sorted(EXAMPLES.glob("*/*/*.eml"))


def test_enough_examples_of_each_kind() -> None:
    for action in ("approve", "reject", "hold"):
        assert len(list((EXAMPLES / "discuss" / action).glob("*.eml"))) >= 10


@pytest.fixture(scope="module")
def report() -> CheckReport:
    return check_examples(RULES, EXAMPLES)


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_example_is_classified_as_labelled(path: Path, report: CheckReport) -> None:
    (result,) = [r for r in report.results if r.path == str(path)]
    assert result.verdict.action is Action(path.parent.name), format_report(report)
    if result.verdict.action is Action.REJECT:
        assert result.verdict.notice == "policy"


def test_check_report_is_clean_and_formatted(report: CheckReport) -> None:
    assert report.ok, format_report(report)
    assert len(report.results) == len(ALL) >= 36
    counts = report.confusion()
    assert counts[(Action.APPROVE, Action.APPROVE)] >= 10
    text = format_report(report)
    assert f"{len(ALL)} examples, {len(ALL)} classified as labelled" in text
    assert text.endswith("OK")


def test_examples_do_not_depend_on_file_names() -> None:
    # classify the bytes alone: the verdict must not come from where the file lives
    discuss = load_rules(RULES).get("discuss")
    assert discuss is not None
    for path in ALL:
        if b"X-Listbot-Example-Role" in path.read_bytes():
            continue
        f = facts_from_message(path.read_bytes(), sender_role=Role.MEMBER,
                               signed_by_sender=False)
        assert classify(f, discuss).action is Action(path.parent.name), path.name


def test_mismatches_and_problems_are_reported(tmp_path: Path) -> None:
    examples = tmp_path / "examples"
    wrong = examples / "discuss" / "approve"
    wrong.mkdir(parents=True)
    shutil.copy(EXAMPLES / "discuss" / "reject" / "allowed-to-deploy.eml", wrong / "x.eml")
    (examples / "discuss" / "maybe").mkdir()
    (examples / "unknown-list").mkdir()
    report = check_examples(RULES, examples)
    assert not report.ok
    (m,) = report.mismatches
    assert (m.expected, m.verdict.action, m.verdict.rule) == (
        Action.APPROVE, Action.REJECT, "policy-deployment")
    assert report.confusion() == {(Action.APPROVE, Action.REJECT): 1}
    text = format_report(report)
    assert "MISMATCH" in text and "by policy-deployment" in text
    assert "not an action folder" in text and "no rules for list 'unknown-list'" in text
    assert text.endswith("FAILED")


def test_bad_rules_raise_config_error(tmp_path: Path) -> None:
    (tmp_path / "discuss.toml").write_text("[list]\nname = 1\n")
    with pytest.raises(ConfigError):
        check_examples(tmp_path, EXAMPLES)
