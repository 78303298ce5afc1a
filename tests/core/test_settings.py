"""The config file is read once: every section is parsed into frozen, typed values at
load, the problems of every section come back together, and after the load nothing
reads the file's tables again."""

from __future__ import annotations

import ast
import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from listbot import settings
from listbot.core.config import Config, Endpoint
from listbot.core.errors import ConfigError
from listbot.settings import SECTIONS, Settings
from tests import tomlfile
from tests.conftest import BASE_CONFIG, merge
from tests.layout.test_architecture import modules

# Every parser of a part of the file; only the loading module may call them.
PARSERS = {"parse_core", "parse_pgp", "parse_cases", "parse_advisories",
           "parse_applications", "parse_members", "parse_imap", "parse_metrics",
           "parse_rules_config", "parse_moderation"}
LOADER = "listbot.settings"
# Rule files are files of their own, read and checked by the rule file reader.
RULE_FILES = "listbot.moderation.rule_files"


def write(tmp_path: Path, extra: dict[str, Any]) -> Path:
    data = merge(BASE_CONFIG, {"instance": {"state_dir": str(tmp_path / "state")}})
    return tomlfile.write(tmp_path / "listbot.toml", merge(data, extra))


def test_every_section_is_parsed_at_load(tmp_path: Path) -> None:
    path = write(tmp_path, {
        "pgp": {"home": "keys", "expiry_warning_days": 10},
        "cases": {"prefix": "ACME"},
        "advisories": {"prefix": "ASA"},
        "applications": {"decision_days": 9},
        "members": {"bounce_threshold": 7},
        "imap": {"host": "imap.example.org", "user": "u", "password_file": "pw"},
        "metrics": {"listen": "127.0.0.1:9999"},
        "rules": {"dir": "my-rules"},
        "moderation": {"hold_expiry_days": 3},
    })
    s = settings.load(path)
    assert [f.name for f in dataclasses.fields(s)] == ["core", *SECTIONS]
    base = path.resolve().parent
    assert s.pgp.home == s.core.state_dir / "keys" and s.pgp.expiry_warning_days == 10
    assert s.cases.prefix == "ACME"
    assert s.advisories.prefix == "ASA"
    assert s.applications.decision_days == 9
    assert s.members.bounce_threshold == 7
    assert s.imap is not None and s.imap.password_file == base / "pw"
    assert s.metrics is not None and s.metrics.listen == Endpoint("127.0.0.1", 9999)
    assert s.rules.directory == base / "my-rules"
    assert s.moderation.hold_expiry == timedelta(days=3)
    for name in ("core", *SECTIONS):
        value = getattr(s, name)
        assert dataclasses.is_dataclass(value), name
        assert value.__dataclass_params__.frozen, name  # type: ignore[union-attr]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.cases = s.cases  # type: ignore[misc]


def test_problems_of_several_sections_are_reported_together(tmp_path: Path) -> None:
    path = write(tmp_path, {"worker": {"batch": "many"}, "pgp": {"expiry_warning_days": -1},
                            "cases": {"release_time": "noon"}, "metrics": 1,
                            "moderation": {"hold_expiry_days": 0}})
    with pytest.raises(ConfigError) as info:
        settings.load(path)
    # The core first, then the sections in the order of Settings.
    assert [p.split(":")[0] for p in info.value.problems] == [
        "worker.batch", "pgp.expiry_warning_days", "cases.release_time", "metrics",
        "moderation.hold_expiry_days"]
    report = settings.read(path)
    assert [p.split(":")[0] for p in report.core_problems] == ["worker.batch"]
    assert sorted(n for n, found in report.section_problems.items() if found) == [
        "cases", "metrics", "moderation", "pgp"]
    assert report.problems == info.value.problems


def test_an_unreadable_file_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "listbot.toml"
    path.write_text("[instance\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        settings.load(path)
    assert len(info.value.problems) == 1 and str(path) in info.value.problems[0]


def trees() -> dict[str, ast.AST]:
    return {name: ast.parse(path.read_text()) for name, path in modules().items()}


def imports_tomllib(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name == "tomllib" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "tomllib":
            return True
    return False


def called_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def test_only_the_loading_module_reads_toml() -> None:
    readers = {name for name, tree in trees().items() if imports_tomllib(tree)}
    assert readers == {LOADER, RULE_FILES}


def test_no_section_is_parsed_after_the_load() -> None:
    callers = {f"{name}:{node.lineno} {called_name(node)}"
               for name, tree in trees().items() if name != LOADER
               for node in ast.walk(tree)
               if isinstance(node, ast.Call) and called_name(node) in PARSERS}
    assert callers == set()


def test_no_config_keeps_or_hands_out_the_raw_file() -> None:
    assert "raw" not in {f.name for f in dataclasses.fields(Config)}
    assert "raw" not in {f.name for f in dataclasses.fields(Settings)}
    # `.raw` stays fine on messages; on anything named like a config it is the old way.
    config_like = {"cfg", "config", "settings", "core", "new"}
    found = [f"{name}:{node.lineno}" for name, tree in trees().items()
             for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and node.attr == "raw"
             and ast.unparse(node.value).split(".")[-1] in config_like]
    assert found == []


def test_the_checks_catch_what_they_claim_to() -> None:
    source = ("import tomllib\n"
              "def f(cfg, doc):\n    parse_pgp(doc, cfg, [])\n    return cfg.raw, self.cfg.raw\n")
    tree = ast.parse(source)
    assert imports_tomllib(tree)
    calls = [called_name(n) for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert "parse_pgp" in calls
    raws = [ast.unparse(n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and n.attr == "raw"]
    assert sorted(raws) == ["cfg", "self.cfg"]
