"""Store guards of applications, on SQLite and PostgreSQL: tried to be broken."""

from __future__ import annotations

import pytest

from listbot.core.clock import FakeClock
from listbot.core.errors import TemporaryError
from listbot.core.store import Store
from listbot.core.store import applications as app_ops


async def _create(store: Store, org: str, complete: bool) -> int:
    async with store.unit() as tx:
        return await app_ops.create(tx, list_name="applications", org_key=org,
                                    organisation=org, sender=f"a@{org}", fields="{}",
                                    checklist='{"form": false, "items": []}',
                                    complete=complete, now=tx.now)


async def test_one_open_application_per_organisation(db_url: str, clock: FakeClock) -> None:
    store = Store.open(db_url, clock)
    await store.upgrade()
    try:
        first = await _create(store, "vendor.example", False)
        with pytest.raises(TemporaryError):
            await _create(store, "vendor.example", False)
        async with store.unit() as tx:
            assert await app_ops.settle(tx, first, app_ops.REJECTED, by="alice",
                                        reason="incomplete", now=tx.now)
        # Once decided, the organisation may apply again.
        assert await _create(store, "vendor.example", True) != first
    finally:
        await store.close()


async def test_accept_never_settles_an_incomplete_application(db_url: str,
                                                              clock: FakeClock) -> None:
    store = Store.open(db_url, clock)
    await store.upgrade()
    try:
        app_id = await _create(store, "racer.example", True)
        async with store.unit() as tx:
            # A follow-up made it incomplete after the decider looked at it.
            assert await app_ops.update_open(tx, app_id, organisation="racer",
                                             fields="{}", checklist="{}", complete=False,
                                             now=tx.now)
        async with store.unit() as tx:
            assert not await app_ops.settle(tx, app_id, app_ops.ACCEPTED, by="alice",
                                            reason="", now=tx.now)
            row = await app_ops.get(tx, app_id)
        assert row is not None and row.state == app_ops.OPEN
        async with store.unit() as tx:
            assert not await app_ops.update_open(tx, app_id + 99, organisation=None,
                                                 fields="{}", checklist="{}", complete=True,
                                                 now=tx.now)
    finally:
        await store.close()
