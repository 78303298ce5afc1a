"""SIGHUP reload in the running daemon: the whole new state or none of it.

A reload rereads the config file, loads the rules from the NEW config's rules
directory, builds a handler for every list, and swaps all of it in together; a bad
config or rule file keeps everything old and says why (docs/design.md "Rules are data").
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from listbot import settings
from listbot.app import App
from listbot.core.clock import FakeClock
from listbot.core.model import InboundState
from listbot.ops.lifecycle import reload_app
from tests import tomlfile
from tests.conftest import BASE_CONFIG, merge
from tests.daemon import MEMBERS, lmtp_send, post, running, settle
from tests.moderation_helpers import DISCUSS, MEMBER, RULES
from tests.sink import Sink

APPLICATIONS = "applications@lists.example.org"
APPLICANT = "psirt@newvendor.example"


def copy_rules(target: Path, drop_all: bool = False) -> Path:
    shutil.copytree(RULES, target)
    if drop_all:
        # A rule ahead of all others that discards every post: easy to tell apart.
        path = target / "discuss.toml"
        path.write_text(path.read_text().replace(
            '[[rule]]\nname = "nonmember"',
            '[[rule]]\nname = "drop-all"\naction = "discard"\n'
            'when = { size = { min = 1 } }\n\n[[rule]]\nname = "nonmember"', 1))
    return target


def config_data(tmp_path: Path, sink: Sink, rules: Path) -> dict[str, Any]:
    data = merge(BASE_CONFIG, {
        "instance": {"state_dir": str(tmp_path / "state")},
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'listbot.db'}"},
        "delivery": {"smtp": {"port": sink.port}},
        "rules": {"dir": str(rules)},
    })
    del data["lists"]["applications"]
    return data


@pytest.fixture
def config_file(tmp_path: Path, sink: Sink) -> Path:
    rules = copy_rules(tmp_path / "rules")
    return tomlfile.write(tmp_path / "listbot.toml", config_data(tmp_path, sink, rules))


@pytest.fixture
async def app(config_file: Path, clock: FakeClock) -> AsyncIterator[App]:
    async with running(settings.load(config_file), clock) as application:
        yield application


def with_applications(data: dict[str, Any]) -> dict[str, Any]:
    return merge(data, {"lists": {"applications": BASE_CONFIG["lists"]["applications"]}})


async def inbound_states(app: App) -> dict[str, int]:
    return dict((await app.store.queue_counts())["inbound"])


async def test_a_list_added_by_reload_has_its_mail_handled(
        app: App, config_file: Path, tmp_path: Path, sink: Sink) -> None:
    data = config_data(tmp_path, sink, tmp_path / "rules")
    tomlfile.write(config_file, with_applications(data))
    result = await reload_app(app)
    assert result.ok, result.status
    application = post(APPLICANT, subject="Application", body="Please add us.\r\n",
                       to=APPLICATIONS)
    assert await lmtp_send(app, APPLICANT, [APPLICATIONS], application) == {}
    await settle(app)
    states = await inbound_states(app)
    assert states.get(InboundState.DONE.value) == 1, states
    assert not states.get(InboundState.QUARANTINED.value), states


async def test_a_bad_rule_file_keeps_the_old_config_and_rules_and_says_why(
        app: App, config_file: Path, tmp_path: Path, sink: Sink) -> None:
    rules = tmp_path / "rules"
    good = (rules / "discuss.toml").read_text()
    (rules / "discuss.toml").write_text(
        good.replace('notice = "policy"', 'notice = "no-such-notice"', 1))
    # The config also adds a list: none of it may take effect with the bad rules.
    tomlfile.write(config_file, with_applications(config_data(tmp_path, sink, rules)))
    result = await reload_app(app)
    assert not result.ok
    assert "old config and rules kept" in result.status
    assert str(rules / "discuss.toml") in result.status and "no-such-notice" in result.status
    assert APPLICATIONS not in {lc.address for lc in app.cfg.lists.values()}
    refused = await lmtp_send(app, MEMBER, [APPLICATIONS, DISCUSS],
                              post(MEMBER, to=DISCUSS))
    assert refused[APPLICATIONS][0] == 550  # type: ignore[index]
    await sink.wait_deliveries(len(MEMBERS))
    assert sink.received[0].message["X-Listbot-Rule-Hits"] == "technical-discussion"


async def test_reload_uses_the_rules_dir_of_the_new_config(
        app: App, config_file: Path, tmp_path: Path, sink: Sink) -> None:
    other = copy_rules(tmp_path / "other-rules", drop_all=True)
    tomlfile.write(config_file, config_data(tmp_path, sink, other))
    result = await reload_app(app)
    assert result.ok, result.status
    await lmtp_send(app, MEMBER, [DISCUSS], post(MEMBER, to=DISCUSS))
    await settle(app)
    assert not sink.deliveries()
    discarded = await app.store.audit_listing(action_prefix="discuss.discard")
    assert discarded and discarded[0].detail["rule"] == "drop-all"


async def test_a_bad_extension_section_refuses_the_reload(
        app: App, config_file: Path, tmp_path: Path, sink: Sink) -> None:
    data = config_data(tmp_path, sink, tmp_path / "rules")
    tomlfile.write(config_file, merge(with_applications(data),
                                      {"metrics": {"refresh_seconds": 0}}))
    result = await reload_app(app)
    assert not result.ok
    assert "metrics.refresh_seconds" in result.status
    assert APPLICATIONS not in {lc.address for lc in app.cfg.lists.values()}


async def test_reload_says_which_changes_wait_for_a_restart(
        app: App, config_file: Path, tmp_path: Path, sink: Sink) -> None:
    data = config_data(tmp_path, sink, tmp_path / "rules")
    tomlfile.write(config_file, merge(data, {"metrics": {"listen": "127.0.0.1:0"},
                                             "delivery": {"retry_period_seconds": 60},
                                             "cases": {"reminder_poll_seconds": 60}}))
    result = await reload_app(app)
    assert result.ok, result.status
    assert "restart needed for delivery, metrics, cases" in result.status


async def test_a_failed_reload_keeps_the_old_settings_and_handlers(
        app: App, config_file: Path, tmp_path: Path, sink: Sink) -> None:
    before, handlers = app.settings, app.worker.handlers if app.worker else None
    data = config_data(tmp_path, sink, tmp_path / "rules")
    # A good change beside bad keys in two sections: none of it may come into force.
    tomlfile.write(config_file, merge(with_applications(data), {
        "moderation": {"hold_expiry_days": 2}, "cases": {"release_time": "noon"},
        "members": {"bounce_threshold": 0}}))
    result = await reload_app(app)
    assert not result.ok
    assert "cases.release_time" in result.status and "members.bounce_threshold" in result.status
    assert app.settings is before
    assert app.worker is not None and app.worker.handlers is handlers
    assert app.moderations["discuss"].mc.hold_expiry == timedelta(days=7)

    tomlfile.write(config_file, merge(data, {"moderation": {"hold_expiry_days": 2}}))
    result = await reload_app(app)
    assert result.ok, result.status
    assert app.settings is not before
    # The services of the new serving state got the section parsed by the new load.
    assert app.settings.moderation.hold_expiry == timedelta(days=2)
    assert app.moderations["discuss"].mc is app.settings.moderation
