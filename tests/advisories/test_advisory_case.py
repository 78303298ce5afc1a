"""An advisory's case: `create --case` needs a real case; its reporter and parties get
the embargoed copies, with the case id on every row, and nobody from another case."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from listbot.advisories import schedule as sched
from listbot.advisories.service import Change
from listbot.app import App
from listbot.cli import common, root
from listbot.core.calendar.embargo import default_timeline
from listbot.core.clock import FakeClock
from listbot.core.errors import NotFound
from listbot.core.store import cases as case_store
from listbot.core.store.schema import outbox
from listbot.settings import Settings
from tests import pgp_fixtures
from tests.advisories.test_release import cfg_for
from tests.advisory_helpers import KEYED, PLAIN, TEAM, add_members, draft, service
from tests.daemon import running
from tests.pgp_fixtures import PgpKeys
from tests.sink import Sink

pgp_template = pgp_fixtures.pgp_template
pgp_keys = pgp_fixtures.pgp_keys
pgp_home = pgp_fixtures.pgp_home

CASE, OTHER = "SEC-2026-0001", "SEC-2026-0002"
REPORTER, PARTY, STRANGER = "finder@research.example", "psirt@cloud.example", "x@other.example"
ARMOR = re.compile(rb"-----BEGIN PGP MESSAGE-----.*?-----END PGP MESSAGE-----", re.S)


@pytest.fixture
def party_key() -> Iterator[tuple[Path, str]]:
    """The party's own GnuPG home (its secret key) and that key's fingerprint."""
    home = pgp_fixtures.new_home()
    try:
        yield home, pgp_fixtures.make_key(home, f"Cloud PSIRT <{PARTY}>")
    finally:
        pgp_fixtures.remove_home(home)


def key_file(tmp_path: Path, home: Path, fpr: str) -> Path:
    path = tmp_path / "party.asc"
    path.write_bytes(pgp_fixtures.export_public(home, fpr))
    return path


async def cli(cfg: Settings, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    """`listbot ARGS` beside the running daemon (the command runs its own event loop)."""
    monkeypatch.setattr(common.settings_mod, "load", lambda _path: cfg)
    return await asyncio.to_thread(CliRunner().invoke, root, ["--config", "x.toml", *args],
                                   catch_exceptions=False)


def opened_by(home: Path, delivered: bytes) -> bytes:
    """What the party reads: the ciphertext of the copy, decrypted with its own key."""
    armored = ARMOR.search(delivered)
    assert armored is not None
    return pgp_fixtures.gpg(home, "--decrypt", data=armored.group(0)).stdout


async def open_case(app: App, reporter_key: str | None, *, case_id: str = CASE,
                    reporter: str = REPORTER, party: bool = False) -> None:
    timeline = default_timeline(app.clock.now(), app.settings.cases.policy_for(2026))
    async with app.store.unit() as tx:
        await case_store.open_case(tx, case_id=case_id, reporter=reporter, subject="Bug",
                                   timeline=timeline, reporter_fingerprint=reporter_key)
        if party:
            await case_store.add_party(tx, case_id, PARTY, "Cloud PSIRT", "cli:alice")


async def open_cases(app: App, keys: PgpKeys) -> None:
    await open_case(app, keys.reporter, party=True)
    await open_case(app, None, case_id=OTHER, reporter=STRANGER)


async def test_case_must_exist_and_its_parties_get_the_predisclosure(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys) -> None:
    async with running(cfg_for(make_config, sink, pgp_home, pgp_keys), clock, members=()) as app:
        await add_members(app, pgp_keys)
        await open_cases(app, pgp_keys)
        svc = service(app, app.settings)
        with pytest.raises(NotFound):
            await svc.create(draft(case_id="SEC-2026-0999"), "cli:alice")  # well formed, absent
        await svc.create(draft(case_id=CASE), "cli:alice")
        await svc.predisclose(465, "cli:alice")
        app.outbound_waker.wake()
        everyone = sorted([KEYED, *PLAIN, *TEAM, REPORTER, PARTY])
        await sink.wait_deliveries(len(everyone))
        assert sorted(sink.recipients()) == everyone  # nobody of the other case
        got = {r: rec.data for r, rec in sink.deliveries()}
        assert b"multipart/encrypted" in got[REPORTER]  # the reporter's key is used
        assert b"EMBARGOED" in got[PARTY]
        async with app.store.unit() as tx:
            cases = set((await tx.conn.execute(select(outbox.c.case_id)
                                               .where(outbox.c.dedupe_key.like("adv:%"))))
                        .scalars())
            await case_store.remove_party(tx, CASE, PARTY, "cli:alice")
        assert cases == {CASE}  # the gate lets parties through only with the case id
        sink.received.clear()
        await svc.amend(465, Change(updates=("Mitigation corrected.",)), "cli:alice")
        app.outbound_waker.wake()
        await sink.wait_deliveries(len(everyone) - 1)
        assert PARTY not in sink.recipients()  # removed: no version 2


async def test_a_party_with_a_key_gets_a_copy_only_its_key_opens(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys, party_key: tuple[Path, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    party_home, party_fpr = party_key
    cfg = cfg_for(make_config, sink, pgp_home, pgp_keys, encrypting=True)
    async with running(cfg, clock, members=()) as app:
        await add_members(app, pgp_keys)
        await open_case(app, pgp_keys.reporter)
        added = await cli(cfg, monkeypatch, "case", "add-party", CASE, PARTY, "--name",
                          "Cloud PSIRT", "--key", str(key_file(tmp_path, party_home, party_fpr)))
        assert added.exit_code == 0 and party_fpr in added.output
        svc = service(app, cfg)
        await svc.create(draft(case_id=CASE), "cli:alice")
        await svc.predisclose(465, "cli:alice")
        held = sorted(r["recipient"] for r in await sched.status(svc, 465)
                      if r["status"] == "held")
        assert held == sorted(PLAIN)  # the party is not held: it has its key
        app.outbound_waker.wake()
        await sink.wait_deliveries(1 + len(TEAM) + 2 + len(PLAIN) * len(TEAM))  # + alerts
        copy = [rec.data for r, rec in sink.deliveries() if r == PARTY]
        assert len(copy) == 1 and b"multipart/encrypted" in copy[0]
        assert b"ISSUE DESCRIPTION" not in copy[0]
        assert b"ISSUE DESCRIPTION" in opened_by(party_home, copy[0])
        entries = await app.store.audit_listing(subject=f"case:{CASE}")
        assert any(e.action == "case.party_added" and e.detail.get("fingerprint") == party_fpr
                   for e in entries)


async def test_held_copy_of_the_reporter_goes_once_the_case_has_its_key(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock, pgp_home: Path,
        pgp_keys: PgpKeys, party_key: tuple[Path, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = cfg_for(make_config, sink, pgp_home, pgp_keys, encrypting=True)
    async with running(cfg, clock, members=()) as app:
        await add_members(app, pgp_keys)
        await open_case(app, None, party=True)
        svc = service(app, cfg)
        await svc.create(draft(case_id=CASE), "cli:alice")
        await svc.predisclose(465, "cli:alice")
        held = sorted(r["recipient"] for r in await sched.status(svc, 465)
                      if r["status"] == "held")
        assert held == sorted([*PLAIN, REPORTER, PARTY])
        assert await svc.resolve_held(465, "cli:alice") == 0  # nobody has a key yet
        async with app.store.unit() as tx:
            await case_store.update_case(tx, CASE, "cli:alice",
                                         {"reporter_fingerprint": pgp_keys.reporter})
        assert await svc.resolve_held(465, "cli:alice") == 1
        assert await svc.resolve_held(465, "cli:alice") == 0
        app.outbound_waker.wake()
        await sink.wait_deliveries(1 + len(TEAM) + 1 + 4 * len(TEAM))  # + four held alerts
        copy = [rec.data for r, rec in sink.deliveries() if r == REPORTER]
        assert len(copy) == 1 and b"multipart/encrypted" in copy[0]
        assert b"ISSUE DESCRIPTION" not in copy[0]
        assert PARTY not in sink.recipients()  # no key for the party: still held
        party_home, party_fpr = party_key
        sink.received.clear()
        assert await svc.resolve_held(465, "cli:alice") == 0
        set_key = await cli(cfg, monkeypatch, "case", "set-party-key", CASE, PARTY, "--file",
                            str(key_file(tmp_path, party_home, party_fpr)))
        assert set_key.exit_code == 0 and party_fpr in set_key.output
        assert await svc.resolve_held(465, "cli:alice") == 1
        assert await svc.resolve_held(465, "cli:alice") == 0
        app.outbound_waker.wake()
        await sink.wait_deliveries(1)
        assert sink.recipients() == [PARTY]
        copy = sink.deliveries()[0][1].data
        assert b"multipart/encrypted" in copy and b"ISSUE DESCRIPTION" not in copy
        assert b"ISSUE DESCRIPTION" in opened_by(party_home, copy)
