"""What the command line says when it cannot start, as a person can act on it: the
cause, the config key to change, and an exit code systemd reads right (78: do not
restart, the configuration must change; 75: retry later)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from listbot.core.errors import EX_CONFIG, EX_TEMPFAIL
from tests import tomlfile
from tests.conftest import BASE_CONFIG, PG_UNAVAILABLE, merge
from tests.proc import cli

PG = "postgresql+psycopg://{user}@127.0.0.1:{port}/{db}"
needs_pg = pytest.mark.skipif(PG_UNAVAILABLE is not None, reason=str(PG_UNAVAILABLE))


def write(tmp_path: Path, extra: dict[str, Any], drop: tuple[str, str] | None = None) -> Path:
    data = merge(BASE_CONFIG, {"instance": {"state_dir": str(tmp_path / "state")},
                               "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'l.db'}"}})
    data = merge(data, extra)
    if drop is not None:
        del data[drop[0]][drop[1]]
    return tomlfile.write(tmp_path / "listbot.toml", data)


def one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@needs_pg
@pytest.mark.parametrize(("user", "db", "cause"), [
    ("no_such_role", "test", 'role "no_such_role" does not exist'),
    ("postgres", "no_such_database", 'database "no_such_database" does not exist'),
])
async def test_a_database_that_refuses_us_exits_78_with_the_cause(
        tmp_path: Path, user: str, db: str, cause: str) -> None:
    config = write(tmp_path, {"database": {"url": PG.format(user=user, port=5432, db=db)}})
    for command in (("db", "upgrade"), ("serve",)):
        code, _, err = await cli(config, *command)
        assert code == EX_CONFIG, (command, err)
        line = one_line(err)
        assert line.startswith("listbot: database.url: the database refused the connection")
        assert cause in line


@needs_pg
async def test_doctor_tells_a_refusal_from_an_outage(tmp_path: Path) -> None:
    config = write(tmp_path, {"database": {
        "url": PG.format(user="no_such_role", port=5432, db="test")}})
    code, out, _ = await cli(config, "doctor")
    assert code == EX_CONFIG
    assert 'FAIL  database access: database.url: the database refused the connection' in out
    assert 'role "no_such_role" does not exist' in out


async def test_a_database_that_is_down_exits_75_with_the_cause(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = write(tmp_path, {"database": {
        "url": PG.format(user="postgres", port=port, db="test")}})
    code, _, err = await cli(config, "db", "upgrade")
    assert code == EX_TEMPFAIL
    line = one_line(err)
    assert line.startswith("listbot: database unavailable: ")
    assert f"port {port} failed: Connection refused" in line
    code, out, _ = await cli(config, "doctor")
    assert code == EX_TEMPFAIL and "FAIL  database: database unavailable" in out


async def test_a_bad_database_url_is_a_config_error_that_never_shows_the_password(
        tmp_path: Path) -> None:
    config = write(tmp_path, {"database": {
        "url": "postgresql+psycopg://listbot:s3cret@127.0.0.1:fivefourthreetwo/test"}})
    code, _, err = await cli(config, "check-config")
    assert code == EX_CONFIG
    assert "error: database.url: the port is not a number" in err
    assert "s3cret" not in err


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


async def test_a_port_in_use_is_one_line_naming_the_port_and_the_key(
        tmp_path: Path, taken_port: int) -> None:
    config = write(tmp_path, {"listen": {"lmtp": f"127.0.0.1:{taken_port}"}})
    code, _, err = await cli(config, "serve")
    assert code == EX_CONFIG
    line = one_line(err)
    assert line.startswith(f"listbot: listen.lmtp: cannot listen on 127.0.0.1:{taken_port}: ")
    assert "set another address in listen.lmtp" in line


async def test_a_metrics_port_in_use_names_its_key(tmp_path: Path, taken_port: int) -> None:
    config = write(tmp_path, {"metrics": {"enabled": True, "listen": f"127.0.0.1:{taken_port}"}})
    code, _, err = await cli(config, "serve")
    assert code == EX_CONFIG
    assert one_line(err).startswith(f"listbot: metrics.listen: cannot listen on 127.0.0.1:"
                                    f"{taken_port}")


@pytest.mark.parametrize(("table", "key"), [("team", "address"), ("instance", "hostname")])
async def test_a_missing_team_address_or_hostname_is_a_config_error(
        tmp_path: Path, table: str, key: str) -> None:
    # No example.org default: listbot would speak as another project's team.
    config = write(tmp_path, {}, drop=(table, key))
    code, _, err = await cli(config, "check-config")
    assert code == EX_CONFIG
    assert f"error: {table}.{key}: missing" in err
