"""`listbot check-config` validates every section in one pass (README: exit 78)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from listbot.cli.common import root
from listbot.core.config import EXTENSION_SECTIONS
from listbot.core.errors import EX_CONFIG
from listbot.settings import SECTIONS
from tests import tomlfile
from tests.conftest import BASE_CONFIG, merge

REPO = Path(__file__).resolve().parents[2]

# One mistake in every section of config/listbot.toml (and [pgp]), each with the key
# path the report must name.
MISTAKES: dict[str, tuple[dict[str, object], str]] = {
    "instance": ({"log_format": "loud"}, "instance.log_format"),
    "database": ({"url": "mysql://db/listbot"}, "database.url"),
    "listen": ({"max_message_bytes": 0}, "listen.max_message_bytes"),
    "worker": ({"batch": "many"}, "worker.batch"),
    "delivery": ({"transport": "pigeon", "smtp": {"pool_size": 0}}, "delivery.transport"),
    "project": ({"public_lists": "announce@lists.example.org"}, "project.public_lists"),
    "team": ({"members": [{"name": "A", "address": "a@example.org",
                           "fingerprint": "XYZ"}]}, "team.members[0].fingerprint"),
    "lists": ({"applications": {"kind": "mystery"}}, "lists.applications.kind"),
    "cases": ({"release_time": "noon"}, "cases.release_time"),
    "advisories": ({"late_alert_seconds": -1}, "advisories.late_alert_seconds"),
    "imap": ({"after": "delete", "host": "imap.example.org", "user": "u",
              "password_file": "pw"}, "imap.after"),
    "metrics": ({"listen": "0.0.0.0:9464"}, "metrics.listen"),
    "rules": ({"colour": "blue"}, "rules.colour"),
    "moderation": ({"hold_expiry_days": 0}, "moderation.hold_expiry_days"),
    "applications": ({"decision_days": 0}, "applications.decision_days"),
    "members": ({"bounce_threshold": 0}, "members.bounce_threshold"),
    "pgp": ({"expiry_warning_days": -1}, "pgp.expiry_warning_days"),
}


def check(tmp_path: Path, extra: dict[str, object]) -> tuple[int, str]:
    data = merge(BASE_CONFIG, {"instance": {"state_dir": str(tmp_path / "state")}})
    config = tomlfile.write(tmp_path / "listbot.toml", merge(data, extra))
    result = CliRunner().invoke(root, ["--config", str(config), "check-config"])
    return result.exit_code, result.stderr


def test_a_mistake_in_every_section_is_reported_at_once(tmp_path: Path) -> None:
    extra = {section: table for section, (table, _) in MISTAKES.items()}
    code, err = check(tmp_path, {**extra, "calendar": {"holidays": []}})
    assert code == EX_CONFIG
    for section, (_, key_path) in MISTAKES.items():
        assert f"error: {key_path}" in err, (section, err)
    assert "delivery.smtp.pool_size" in err
    # Holidays live in [cases]; a [calendar] table is a mistake, not a section.
    assert "error: calendar: unknown key" in err


def test_a_section_that_is_not_a_table_is_reported(tmp_path: Path) -> None:
    code, err = check(tmp_path, {"pgp": "gnupg", "metrics": 1, "worker": {"batch": 0.5}})
    assert code == EX_CONFIG
    assert "error: pgp: expected a table" in err
    assert "error: metrics: expected a table" in err
    assert "error: worker.batch" in err


def test_every_extension_section_has_a_validator() -> None:
    assert sorted(EXTENSION_SECTIONS) == sorted(SECTIONS)


def test_a_good_config_passes(tmp_path: Path) -> None:
    code, err = check(tmp_path, {})
    assert code == 0, err


def test_the_shipped_config_passes() -> None:
    shipped = REPO / "config" / "listbot.toml"
    result = CliRunner().invoke(root, ["--config", str(shipped), "check-config"])
    assert result.exit_code == 0, result.stderr


def test_serve_reports_every_section_before_starting(tmp_path: Path) -> None:
    data = merge(BASE_CONFIG, {
        "instance": {"state_dir": str(tmp_path / "state")},
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'listbot.db'}"},
        "metrics": {"refresh_seconds": 0}, "members": {"bounce_threshold": 0}})
    config = tomlfile.write(tmp_path / "listbot.toml", data)
    done = subprocess.run([sys.executable, "-m", "listbot", "--config", str(config), "serve"],
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          timeout=60, check=False)
    assert done.returncode == EX_CONFIG
    assert b"metrics.refresh_seconds" in done.stderr
    assert b"members.bounce_threshold" in done.stderr
    assert not (tmp_path / "listbot.db").exists()  # refused before touching anything


def test_a_quoted_boolean_is_an_error_not_true(tmp_path: Path) -> None:
    # bool("false") is True: a quoted flag must be refused, not read as on.
    code, err = check(tmp_path, {
        "pgp": {"require_encryption": "false", "home": 1, "passphrase_file": 2},
        "advisories": {"two_person_rule": "no", "hidden_recipients": "false",
                       "index_dir": 3, "recipients_line": 4},
        "metrics": {"enabled": "false"},
    })
    assert code == EX_CONFIG
    for key in ("pgp.require_encryption", "pgp.home", "pgp.passphrase_file",
                "advisories.two_person_rule", "advisories.hidden_recipients",
                "advisories.index_dir", "advisories.recipients_line", "metrics.enabled"):
        assert f"error: {key}" in err, (key, err)
