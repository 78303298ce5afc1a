"""The running daemon with the applications list, as the application tests use it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from listbot.app import App
from listbot.core.clock import FakeClock
from listbot.settings import Settings
from tests import pgp_fixtures
from tests.application_helpers import app_config
from tests.pgp_fixtures import PgpKeys
from tests.sink import Sink

pgp_template = pgp_fixtures.pgp_template
pgp_keys = pgp_fixtures.pgp_keys
pgp_home = pgp_fixtures.pgp_home


@pytest.fixture
async def app(make_config: Callable[..., Settings], sink: Sink, clock: FakeClock,
              pgp_home: Path, pgp_keys: PgpKeys) -> AsyncIterator[App]:
    application = App.create(make_config(app_config(pgp_home, pgp_keys), sink=sink),
                             clock=clock)
    await application.start()
    try:
        yield application
    finally:
        await application.stop()
