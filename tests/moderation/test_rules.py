from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from listbot.core.errors import ConfigError
from listbot.moderation.rule_files import load_rules, parse_rules
from listbot.moderation.rules import (
    Action,
    AllOf,
    BodyKeywords,
    NotCond,
    Role,
    RoleIs,
    compile_pattern,
)

HEAD = """
[list]
name = "discuss"
default = { action = "hold", reason = "no rule matched" }
"""


def problems_of(text: str, source: str = "rules/discuss.toml") -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_rules(text, source)
    return info.value.problems


def test_valid_file_becomes_frozen_values() -> None:
    lr = parse_rules(HEAD + """
[[rule]]
name = "policy"
action = "reject"
notice = "policy"
when.all = [ { sender_role = ["member", "team"] },
             { not = { body_keywords = ["extend the embargo"], quoted = "exclude" } } ]
""", "d.toml")
    assert lr.name == "discuss" and lr.default.action is Action.HOLD
    (rule,) = lr.rules
    assert rule.outcome.notice == "policy"
    assert isinstance(rule.when, AllOf)
    role, neg = rule.when.items
    assert role == RoleIs(frozenset({Role.MEMBER, Role.TEAM}))
    assert isinstance(neg, NotCond) and isinstance(neg.item, BodyKeywords)
    assert neg.item.exclude_quoted
    with pytest.raises(AttributeError):
        rule.name = "x"  # type: ignore[misc]


def test_syntax_error_names_file_line_and_column() -> None:
    (problem,) = problems_of(HEAD + '\n[[rule]]\nname = "x\n', "rules/discuss.toml")
    assert problem.startswith("rules/discuss.toml: TOML syntax error")
    assert "line 7" in problem


def test_unknown_condition_reported_with_key_path() -> None:
    text = HEAD + """
[[rule]]
name = "a"
action = "approve"
when = { looks_like_patch = true }

[[rule]]
name = "b"
action = "approve"
when = { looks_like_patch = true }

[[rule]]
name = "c"
action = "approve"
when = { looks_like_patch = true }

[[rule]]
name = "d"
action = "reject"
notice = "policy"
when.any = [ { subject_matches = "x" }, { bodyy_regex = "embargo" } ]
"""
    assert problems_of(text) == [
        "rules/discuss.toml: rule[3].when.any[1]: unknown condition 'bodyy_regex'"
    ]


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of(HEAD + """
[[rule]]
name = "bad name!"
action = "reject"
when = { subject_matches = "(?<=x)y" }

[[rule]]
name = "two"
action = "explode"
when = { size = { min = 10, max = 1 }, quoted = "exclude" }

[[rule]]
name = "three"
action = "hold"
notice = "policy"
when = { sender_role = "admin" }
""")
    joined = "\n".join(problems)
    assert "rule[0].name:" in joined
    assert "rule[0].notice: a reject needs a notice" in joined
    assert "rule[0].when.subject_matches: regex not accepted by RE2" in joined
    assert "rule[1].action: expected one of" in joined
    assert "rule[1].when.quoted:" in joined
    assert "rule[1].when.size: min is larger than max" in joined
    assert "rule[2].notice: only a reject sends a notice" in joined
    assert "rule[2].when.sender_role: unknown role(s) ['admin']" in joined
    assert len(problems) == 8


@pytest.mark.parametrize("pattern", ["(?<=a)b", "(a)\\1", "(?=x)", "[z-a]", "(unclosed"])
def test_patterns_re2_cannot_compile_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="RE2"):
        compile_pattern(pattern)
    text = HEAD + f"""
[[rule]]
name = "r"
action = "hold"
when = {{ body_matches = '{pattern}' }}
"""
    (problem,) = problems_of(text)
    assert problem.startswith("rules/discuss.toml: rule[0].when.body_matches: regex not accepted")


def test_catastrophic_pattern_runs_in_linear_time() -> None:
    pat = compile_pattern("(a+)+$")
    start = time.perf_counter()
    assert pat.search("a" * 200_000 + "!") is None
    assert time.perf_counter() - start < 1.0


def test_patterns_are_case_insensitive_unless_told() -> None:
    assert compile_pattern("embargo").search("EMBARGO") == "EMBARGO"
    assert compile_pattern("(?-i)embargo").search("EMBARGO") is None


def test_keywords_match_on_word_boundaries_across_whitespace() -> None:
    (rule,) = parse_rules(HEAD + """
[[rule]]
name = "k"
action = "hold"
when = { body_keywords = ["extend the  embargo", "nda"] }
""", "x").rules
    assert isinstance(rule.when, BodyKeywords)
    assert rule.when.words == ("extend the embargo", "nda")
    search = rule.when.pattern.search
    assert search("could you Extend the\n  embargo?") is not None
    assert search("under NDA.") is not None
    assert search("the agenda for today") is None


def test_missing_list_and_default_and_unknown_keys() -> None:
    problems = problems_of('[[rule]]\nname = "r"\naction = "hold"\nwhen = { has_attachment = 1 }'
                           '\nwhen2 = 1\n[extra]\n')
    joined = "\n".join(problems)
    assert "extra: unknown key" in joined
    assert "list: missing [list]" in joined
    assert "rule[0].when2: unknown key" in joined
    assert "rule[0].when.has_attachment: expected true or false" in joined


def test_deep_nesting_is_refused_not_crashing() -> None:
    cond = '{ subject_matches = "x" }'
    for _ in range(40):
        cond = f"{{ not = {cond} }}"
    problems = problems_of(HEAD + f'[[rule]]\nname = "n"\naction = "hold"\nwhen = {cond}\n')
    assert any("nested deeper" in p for p in problems)


def test_load_rules_reads_every_file_and_reports_all(tmp_path: Path) -> None:
    (tmp_path / "discuss.toml").write_text(HEAD)
    (tmp_path / "other.toml").write_text(HEAD.replace("discuss", "other"))
    ruleset = load_rules(tmp_path)
    assert ruleset.names() == ("discuss", "other")
    assert ruleset.get("other") is not None and ruleset.get("nope") is None

    (tmp_path / "broken.toml").write_text("[list\n")
    (tmp_path / "dup.toml").write_text(HEAD)
    (tmp_path / "latin1.toml").write_bytes(b"# caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_rules(tmp_path)
    joined = "\n".join(info.value.problems)
    assert f"{tmp_path / 'broken.toml'}: TOML syntax error" in joined
    assert "line 1" in joined
    assert f"{tmp_path / 'latin1.toml'}: not UTF-8" in joined
    assert "list 'discuss' already defined" in joined


def test_load_rules_refuses_empty_or_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no \*\.toml"):
        load_rules(tmp_path)
    with pytest.raises(ConfigError):
        load_rules(tmp_path / "missing")


def test_shipped_rules_load() -> None:
    ruleset = load_rules(Path(__file__).parents[2] / "rules")
    discuss = ruleset.get("discuss")
    assert discuss is not None
    assert {r.outcome.action for r in discuss.rules} >= {Action.APPROVE, Action.REJECT,
                                                           Action.HOLD}
    assert all(r.outcome.notice == "policy" for r in discuss.rules
               if r.outcome.action is Action.REJECT)


# ------------------------------------------------------------ property tests

KEYS = ["list", "rule", "name", "action", "notice", "when", "any", "all", "not", "quoted",
        "subject_matches", "body_keywords", "body_matches", "header", "size", "min", "max",
        "sender_role", "looks_like_patch", "has_attachment", "matches", "default", "reason"]
VALUES = st.one_of(
    st.sampled_from(['"reject"', '"hold"', '"member"', "true", "-1", "[]", "{}", '"(a+)+$"',
                     '"(?<=x)"', '["a", 1]', '{ subject_matches = "x" }', '{ not = {} }',
                     '[{ any = [{ size = { min = 3 } }] }]', '"exclude"', "1979-05-27"]),
    st.text(max_size=12).map(lambda s: '"' + s.replace("\\", "").replace('"', "") + '"'),
)
LINES = st.one_of(
    st.sampled_from(["[list]", "[[rule]]", "[rule]", "[list.default]", "[[rule.when.any]]", ""]),
    st.builds(lambda k, v: f"{k} = {v}", st.sampled_from(KEYS), VALUES),
    st.builds(lambda a, b, v: f"{a}.{b} = {v}", st.sampled_from(KEYS), st.sampled_from(KEYS),
              VALUES),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LINES, max_size=25))
def test_parse_rules_raises_only_config_error_on_tomlish_text(lines: list[str]) -> None:
    try:
        parse_rules(HEAD + "\n".join(lines), "fuzz.toml")
    except ConfigError as exc:
        assert exc.problems and all(p.startswith("fuzz.toml: ") for p in exc.problems)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_parse_rules_raises_only_config_error_on_any_text(text: str) -> None:
    try:
        parse_rules(text, "fuzz.toml")
    except ConfigError as exc:
        assert exc.problems


def test_pathological_toml_nesting_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        parse_rules("x = " + "[" * 5000 + "]" * 5000, "deep.toml")
