"""`listbot doctor` against real parts: gpg keyring, database, sink, sockets."""

from __future__ import annotations

import asyncio
import shutil
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from listbot import settings
from listbot.cli.common import root
from listbot.core.calendar.embargo import default_timeline
from listbot.core.clock import SystemClock
from listbot.core.errors import EX_CONFIG, EX_TEMPFAIL
from listbot.core.store import Store
from listbot.core.store import cases as case_store
from tests import tomlfile
from tests.conftest import BASE_CONFIG, merge
from tests.pgp_fixtures import PgpKeys, make_key, pgp_home, pgp_keys, pgp_template

REPO = Path(__file__).resolve().parents[2]
__all__ = ["pgp_home", "pgp_keys", "pgp_template"]  # fixtures used below


def invoke(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(root, ["--config", str(config), "doctor", *args])
    return result.exit_code, result.output


def write(tmp_path: Path, extra: dict[str, Any]) -> Path:
    data = merge(BASE_CONFIG, {"instance": {"state_dir": str(tmp_path / "state")},
                               "database": {"url": f"sqlite+aiosqlite:///{tmp_path}/l.db"},
                               "listen": {"lmtp": "127.0.0.1:0", "smtp": ""}})
    return tomlfile.write(tmp_path / "listbot.toml", merge(data, extra))


def lines_of(output: str, level: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(level)]


def test_healthy_setup_is_all_ok(tmp_path: Path, pgp_home: Path, pgp_keys: PgpKeys) -> None:
    (tmp_path / "rules").mkdir()
    shutil.copy(REPO / "rules" / "discuss.toml", tmp_path / "rules")
    with socket.socket() as smarthost:  # accepting TCP is all the check needs
        smarthost.bind(("127.0.0.1", 0))
        smarthost.listen()
        config = write(tmp_path, {"pgp": {"home": str(pgp_home),
                                          "team_fingerprint": pgp_keys.team},
                                  "delivery": {"smtp": {"port": smarthost.getsockname()[1]}}})
        upgraded = CliRunner().invoke(root, ["--config", str(config), "db", "upgrade"])
        assert upgraded.exit_code == 0
        code, out = invoke(config)
    assert code == 0, out
    assert not lines_of(out, "FAIL") and not lines_of(out, "WARN"), out
    assert "team key" in out and "smarthost" in out and "database: reachable" in out


def test_each_problem_is_reported_with_what_to_do(tmp_path: Path, pgp_home: Path,
                                                        pgp_keys: PgpKeys) -> None:
    soon = make_key(pgp_home, "Soon <soon@example.org>", expire="10d")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = write(tmp_path, {
            "pgp": {"home": str(pgp_home), "team_fingerprint": pgp_keys.outsider},
            "team": {"members": [{"name": "Old", "address": "old@example.org",
                                  "fingerprint": pgp_keys.expired},
                                 {"name": "Soon", "address": "soon@example.org",
                                  "fingerprint": soon}]},
            "delivery": {"smtp": {"port": 1}},
            "listen": {"lmtp": f"127.0.0.1:{port}"},
        })
        code, out = invoke(config, "--days", "30")
    fails, warns = "\n".join(lines_of(out, "FAIL")), "\n".join(lines_of(out, "WARN"))
    assert "team key" in fails and "without its secret key" in fails
    assert "old@example.org: key revoked or expired" in fails
    assert "smarthost" in fails and "->" in fails
    assert "soon@example.org: expires" in warns
    assert "listen lmtp" in warns
    assert "migrations pending" in warns
    assert code == EX_CONFIG
    code, out = invoke(config, "--days", "5")
    assert "soon@example.org" not in out


def test_bad_config_exit_78_and_unreachable_database_exit_75(tmp_path: Path) -> None:
    bad = write(tmp_path, {"worker": {"batch": "x"}})
    code, _ = invoke(bad)
    assert code == EX_CONFIG
    nodb = write(tmp_path, {"database": {"url": "postgresql+psycopg://x@127.0.0.1:1/none"},
                            "delivery": {"transport": "maildir"}})
    code, out = invoke(nodb)
    assert code == EX_TEMPFAIL, out
    assert "FAIL  database" in out


def test_bad_rule_file_in_the_configured_rules_dir_fails_naming_it(tmp_path: Path) -> None:
    # Not the default "rules" next to the config: doctor must follow [rules] dir.
    rules = tmp_path / "policy-rules"
    rules.mkdir()
    good = (REPO / "rules" / "discuss.toml").read_text()
    # Well-formed, so only the full check (notice templates) refuses it.
    (rules / "discuss.toml").write_text(good.replace('notice = "policy"',
                                                     'notice = "no-such-notice"', 1))
    config = write(tmp_path, {"rules": {"dir": str(rules)}})
    code, out = invoke(config)
    fails = lines_of(out, "FAIL")
    assert any(line.startswith("FAIL  rules") and str(rules / "discuss.toml") in line
               and "no-such-notice" in line for line in fails), out
    assert code == EX_CONFIG


def test_a_moderator_outside_the_team_is_a_warning(tmp_path: Path) -> None:
    config = write(tmp_path, {"lists": {"discuss": {
        "moderators": ["alice@example.org", "carol@elsewhere.example"]}},
        "delivery": {"transport": "maildir"}})
    _, out = invoke(config)
    warned = [line for line in lines_of(out, "WARN") if line.startswith("WARN  moderators")]
    assert len(warned) == 1 and "carol@elsewhere.example" in warned[0], out
    assert "alice@example.org" not in warned[0]


def test_a_case_partys_key_expiring_soon_is_a_warning(tmp_path: Path, pgp_home: Path,
                                                      pgp_keys: PgpKeys) -> None:
    soon = make_key(pgp_home, "PSIRT <psirt@cloud.example>", expire="10d")
    config = write(tmp_path, {"pgp": {"home": str(pgp_home),
                                      "team_fingerprint": pgp_keys.team},
                              "delivery": {"transport": "maildir"}})
    assert CliRunner().invoke(root, ["--config", str(config), "db", "upgrade"]).exit_code == 0

    async def seed() -> None:
        cfg = settings.load(config)
        store = Store.open(cfg.core.database_url, SystemClock())
        now = datetime.now(UTC)
        try:
            async with store.unit() as tx:
                await case_store.open_case(
                    tx, case_id="SEC-2026-0001", reporter="r@example.net", subject="Bug",
                    timeline=default_timeline(now, cfg.cases.policy_for(now.year)),
                    reporter_fingerprint=None)
                await case_store.add_party(tx, "SEC-2026-0001", "psirt@cloud.example",
                                           "Cloud", "cli:alice", fingerprint=soon)
        finally:
            await store.close()

    asyncio.run(seed())
    _, out = invoke(config, "--days", "30")
    assert any("party psirt@cloud.example of SEC-2026-0001: expires" in line
               for line in lines_of(out, "WARN")), out
