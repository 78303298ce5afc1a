"""The daemon owns one keyring for its GnuPG home and hands that instance to
everything that runs gpg, so its lock keeps gpg runs one at a time
(docs/design.md "PGP is checked, not trusted")."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from listbot.app import App
from listbot.applications.handler import ApplicationsHandler
from listbot.core.clock import FakeClock
from listbot.core.mail.pgp import Keyring
from listbot.core.mail.sealing import encryption_problems
from listbot.core.model import RecipientRole
from listbot.discuss.handler import DiscussHandler
from listbot.moderation.replies import DecisionReplies
from listbot.security.cases import SecurityHandler
from listbot.settings import Settings
from tests import pgp_fixtures
from tests.daemon import running
from tests.pgp_fixtures import PgpKeys, revoke
from tests.sink import Sink

pgp_template = pgp_fixtures.pgp_template
pgp_keys = pgp_fixtures.pgp_keys
pgp_home = pgp_fixtures.pgp_home

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def keyrings(app: App) -> dict[str, Keyring | None]:
    """Every keyring reachable from what the started daemon built."""
    found: dict[str, Keyring | None] = {}
    assert app.worker is not None
    for (name, role), handler in app.worker.handlers.items():
        where = f"{name}/{role.value}"
        if isinstance(handler, SecurityHandler):
            found[where] = handler.keyring
            found[f"{where}/reader"] = handler.reader.keyring
        elif isinstance(handler, DiscussHandler):
            found[where] = handler.keyring
            sealer = handler.sealer
            found[f"{where}/sealer"] = sealer.keyring if sealer else None
        elif isinstance(handler, DecisionReplies):
            found[where] = handler.items.keyring
        elif isinstance(handler, ApplicationsHandler):
            found[where] = handler.s.keyring
    assert app.advisories is not None
    found["advisories"] = app.advisories.r.keyring
    return found


async def test_everything_the_daemon_builds_shares_one_keyring(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    extra: dict[str, Any] = {
        "pgp": {"home": str(pgp_home), "team_fingerprint": pgp_keys.team,
                "require_encryption": True},
        "cases": {"encrypt_team_copies": True},
        "team": {"members": [
            {"name": "Alice", "address": "alice@example.org", "fingerprint": pgp_keys.moderator},
            {"name": "Bob", "address": "bob@example.org", "fingerprint": pgp_keys.member}]},
    }
    async with running(make_config(extra, sink=sink), clock, members=()) as app:
        found = keyrings(app)
        for part in ("security/post", "security/post/reader", "discuss/post",
                     "discuss/post/sealer", "discuss/moderation", "advisories"):
            assert part in found, sorted(found)
        assert all(ring is app.keyring for ring in found.values()), found
        # A gpg run through one part holds the lock every other part waits on.
        assert app.worker is not None
        security = app.worker.handlers[("security", RecipientRole.POST)]
        assert isinstance(security, SecurityHandler)
        assert security.reader.keyring is not None
        listing = asyncio.ensure_future(security.reader.keyring.list_keys())
        await asyncio.sleep(0)  # one turn of the loop: the listing has taken the lock
        assert app.advisories is not None and app.advisories.r.keyring._lock.locked()
        await listing


async def test_member_keys_are_checked_in_one_listing(pgp_home: Path, pgp_keys: PgpKeys) -> None:
    ring = Keyring(pgp_home)
    revoke(pgp_home, pgp_keys.member)
    absent = "0" * 40
    fprs = [pgp_keys.moderator, pgp_keys.expired, None, absent, pgp_keys.member,
            pgp_keys.moderator.lower()]
    assert await encryption_problems(ring, fprs, NOW) == [
        None, "key expired", "no key configured", "key not in the keyring", "key revoked", None]
    found = await ring.keys_info([pgp_keys.moderator, absent, pgp_keys.team])
    assert sorted(found) == sorted([pgp_keys.moderator, pgp_keys.team])
    for fpr, info in found.items():
        assert info == await ring.key_info(fpr)
