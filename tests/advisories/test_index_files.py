"""The public index on disk: readable by a web server, and current after every change."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from listbot.advisories import schedule as sched
from listbot.app import App
from listbot.core.clock import FakeClock
from listbot.core.errors import ConfigError
from listbot.settings import Settings
from tests import pgp_fixtures
from tests.advisories.test_release import cfg_for
from tests.advisory_helpers import advisory_daemon
from tests.pgp_fixtures import PgpKeys
from tests.sink import Sink

pgp_template = pgp_fixtures.pgp_template
pgp_keys = pgp_fixtures.pgp_keys
pgp_home = pgp_fixtures.pgp_home

FILES = ("pending.json", "pending.ics", "pending.html")


def index_dir(app: App) -> Path:
    return app.cfg.state_dir / "public"


def modes(app: App) -> set[int]:
    return {stat.S_IMODE((index_dir(app) / name).stat().st_mode) for name in FILES}


def listed(app: App) -> dict[str, bool]:
    """Per index file: whether advisory 465 is in it."""
    found = {name: "465" in (index_dir(app) / name).read_text() for name in FILES}
    rows = json.loads((index_dir(app) / "pending.json").read_text())
    assert found["pending.json"] == any(r["xsa"] == 465 for r in rows)
    return found


async def test_index_files_are_world_readable_after_every_write(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    cfg = cfg_for(make_config, sink, pgp_home, pgp_keys)
    assert cfg.advisories.index_file_mode == 0o644  # the default
    async with advisory_daemon(cfg, clock, pgp_keys, arm=True) as (app, svc):
        assert modes(app) == {0o644}
        for name in FILES:  # a hand-made chmod is put right by the next write
            (index_dir(app) / name).chmod(0o600)
        await sched.cancel(svc, 465, "cli:alice")
        assert modes(app) == {0o644}


async def test_index_file_mode_is_configurable(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    cfg = cfg_for(make_config, sink, pgp_home, pgp_keys,
                  advisories={"index_file_mode": "0640"})
    async with advisory_daemon(cfg, clock, pgp_keys, arm=True) as (app, _):
        assert modes(app) == {0o640}


@pytest.mark.parametrize("value", [644, "644x", "0666", "0200", "1777", ""])
def test_a_bad_index_file_mode_is_refused(
        make_config: Callable[..., Settings], sink: Sink, pgp_home: Path, pgp_keys: PgpKeys,
        value: object) -> None:
    with pytest.raises(ConfigError, match=r"advisories\.index_file_mode"):
        cfg_for(make_config, sink, pgp_home, pgp_keys, advisories={"index_file_mode": value})


async def test_cancel_removes_the_advisory_from_the_pending_files(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    cfg = cfg_for(make_config, sink, pgp_home, pgp_keys)
    async with advisory_daemon(cfg, clock, pgp_keys, arm=True) as (app, svc):
        assert listed(app) == dict.fromkeys(FILES, True)
        await sched.cancel(svc, 465, "cli:alice")
        assert listed(app) == dict.fromkeys(FILES, False)
        await sched.schedule(svc, 465, "cli:alice")  # armed again: listed again
        assert listed(app) == dict.fromkeys(FILES, True)
