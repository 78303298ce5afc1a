"""Advisory rows. The release claim is one conditional UPDATE
(docs/design.md "Releases: never early, not lost, once")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, String, cast, insert, select, update

from listbot.core.errors import NotFound, Refused, TemporaryError
from listbot.core.model import OutboxItem, OutboxState
from listbot.core.store.outbox import to_item
from listbot.core.store.schema import bodies, outbox
from listbot.core.store.schema_advisories import advisories, advisory_versions
from listbot.core.store.unit import Unit
from listbot.core.store.upsert import insert_new


class AdvisoryState(StrEnum):
    DRAFT = "draft"
    AWAITING_CONFIRMATION = "awaiting_confirmation"  # two-person rule: not armed yet
    SCHEDULED = "scheduled"  # armed: dispatch releases it at embargo_at
    RELEASED = "released"


@dataclass(frozen=True)
class AdvisoryRow:
    number: int
    case_id: str | None
    state: AdvisoryState
    embargo_at: datetime
    current_version: int
    schedule_sequence: int
    scheduled_by: str | None
    confirmed_by: str | None
    restrictive: bool
    released_at: datetime | None


@dataclass(frozen=True)
class VersionRow:
    number: int
    version: int
    doc: str
    predisclosure_raw: bytes | None
    public_raw: bytes
    rendered_embargo_at: datetime
    predisclosed_at: datetime | None
    created_at: datetime
    created_by: str


def _advisory(r: Row[Any]) -> AdvisoryRow:
    return AdvisoryRow(r.number, r.case_id, AdvisoryState(r.state), r.embargo_at,
                       r.current_version, r.schedule_sequence, r.scheduled_by, r.confirmed_by,
                       bool(r.restrictive), r.released_at)


def _version(r: Row[Any]) -> VersionRow:
    return VersionRow(r.number, r.version, r.doc,
                      bytes(r.predisclosure_raw) if r.predisclosure_raw is not None else None,
                      bytes(r.public_raw), r.rendered_embargo_at, r.predisclosed_at,
                      r.created_at, r.created_by)


async def insert_advisory(tx: Unit, *, number: int, case_id: str | None,
                          embargo_at: datetime, restrictive: bool, actor: str,
                          now: datetime) -> None:
    """Refused when advisory `number` exists (a concurrent create included)."""
    await insert_new(tx, advisories, {
        "number": number, "case_id": case_id, "state": AdvisoryState.DRAFT.value,
        "embargo_at": embargo_at, "current_version": 0, "schedule_sequence": 0,
        "restrictive": int(restrictive), "created_at": now, "created_by": actor},
        keys=("number",), taken=Refused(f"advisory {number} already exists"))


async def get(tx: Unit, number: int, *, lock: bool = False) -> AdvisoryRow:
    query = select(advisories).where(advisories.c.number == number)
    if lock:  # serialises concurrent CLI changes to one advisory on PostgreSQL
        query = query.with_for_update()
    row = (await tx.conn.execute(query)).first()
    if row is None:
        raise NotFound(f"no advisory {number}")
    return _advisory(row)


async def all_advisories(tx: Unit) -> list[AdvisoryRow]:
    rows = await tx.conn.execute(select(advisories).order_by(advisories.c.number))
    return [_advisory(r) for r in rows]


async def set_fields(tx: Unit, number: int, expect: Sequence[AdvisoryState],
                     **values: Any) -> bool:
    """Change an advisory only if it is still in one of the states the caller saw."""
    result = await tx.conn.execute(
        update(advisories)
        .where(advisories.c.number == number,
               advisories.c.state.in_([s.value for s in expect]))
        .values(**values))
    return bool(result.rowcount)


async def claim_due(tx: Unit, now: datetime) -> list[AdvisoryRow]:
    """The release claim: whoever's UPDATE matches a row releases it; everyone else sees 0."""
    result = await tx.conn.execute(
        update(advisories)
        .where(advisories.c.state == AdvisoryState.SCHEDULED.value,
               advisories.c.embargo_at <= now)
        .values(state=AdvisoryState.RELEASED.value, released_at=now)
        .returning(*advisories.c))
    return sorted((_advisory(r) for r in result), key=lambda a: a.number)


async def next_due(tx: Unit) -> datetime | None:
    from sqlalchemy import func
    value: datetime | None = await tx.conn.scalar(
        select(func.min(advisories.c.embargo_at))
        .where(advisories.c.state == AdvisoryState.SCHEDULED.value))
    return value


async def add_version(tx: Unit, row: VersionRow) -> None:
    """The next version, made current. Callers hold the advisory's row lock; a version
    that exists anyway means a concurrent change: TemporaryError, try again."""
    await insert_new(tx, advisory_versions, {
        "number": row.number, "version": row.version, "doc": row.doc,
        "predisclosure_raw": row.predisclosure_raw, "public_raw": row.public_raw,
        "rendered_embargo_at": row.rendered_embargo_at,
        "predisclosed_at": row.predisclosed_at, "created_at": row.created_at,
        "created_by": row.created_by}, keys=("number", "version"),
        taken=TemporaryError(f"advisory {row.number} v{row.version} exists already"))
    await tx.conn.execute(update(advisories).where(advisories.c.number == row.number)
                          .values(current_version=row.version))


async def replace_rendering(tx: Unit, number: int, version: int, *,
                            predisclosure_raw: bytes | None, public_raw: bytes,
                            embargo_at: datetime, doc: str) -> None:
    await tx.conn.execute(
        update(advisory_versions)
        .where(advisory_versions.c.number == number, advisory_versions.c.version == version)
        .values(predisclosure_raw=predisclosure_raw, public_raw=public_raw,
                rendered_embargo_at=embargo_at, doc=doc))


async def mark_predisclosed(tx: Unit, number: int, version: int,
                            now: datetime) -> None:
    await tx.conn.execute(
        update(advisory_versions)
        .where(advisory_versions.c.number == number, advisory_versions.c.version == version,
               advisory_versions.c.predisclosed_at.is_(None))
        .values(predisclosed_at=now))


async def get_version(tx: Unit, number: int, version: int) -> VersionRow:
    row = (await tx.conn.execute(
        select(advisory_versions).where(advisory_versions.c.number == number,
                                        advisory_versions.c.version == version))).first()
    if row is None:
        raise NotFound(f"advisory {number} has no version {version}")
    return _version(row)


async def versions(tx: Unit, number: int) -> list[VersionRow]:
    rows = await tx.conn.execute(select(advisory_versions)
                                 .where(advisory_versions.c.number == number)
                                 .order_by(advisory_versions.c.version))
    return [_version(r) for r in rows]


async def deliveries(tx: Unit, key_prefix: str) -> list[tuple[str, OutboxItem]]:
    """(dedupe_key, row) of every outbox row this advisory made."""
    rows = await tx.conn.execute(select(outbox).where(outbox.c.dedupe_key.startswith(key_prefix))
                                 .order_by(outbox.c.id))
    return [(r.dedupe_key, to_item(r)) for r in rows]


async def held_rows(tx: Unit, key_prefix: str) -> list[tuple[str, OutboxItem]]:
    rows = await tx.conn.execute(select(outbox).where(
        outbox.c.dedupe_key.startswith(key_prefix), outbox.c.state == OutboxState.HELD.value))
    return [(r.dedupe_key, to_item(r)) for r in rows]


async def rebody_held(tx: Unit, outbox_id: int, raw: bytes, now: datetime) -> bool:
    """Give a held row its (now encrypted) bytes and let it go; only if still held."""
    body_id = await tx.conn.scalar(
        insert(bodies).values(raw=raw, created_at=now).returning(bodies.c.id))
    result = await tx.conn.execute(
        update(outbox).where(outbox.c.id == outbox_id, outbox.c.state == OutboxState.HELD.value)
        .values(body_id=body_id, state=OutboxState.PENDING.value, next_attempt_at=now))
    return bool(result.rowcount)


async def release_instants(tx: Unit) -> dict[int, datetime | None]:
    """Advisory number -> its embargo instant if released, else None (for the gate)."""
    rows = await tx.conn.execute(select(advisories.c.number, advisories.c.state,
                                        advisories.c.embargo_at))
    return {r.number: r.embargo_at if r.state == AdvisoryState.RELEASED.value else None
            for r in rows}


async def stage(tx: Unit, ids: Sequence[int]) -> None:
    """Rows built ahead of the instant: invisible to delivery until the release claim."""
    if ids:
        await tx.conn.execute(update(outbox).where(outbox.c.id.in_(ids))
                              .values(state=OutboxState.STAGED.value))


async def staged_recipients(tx: Unit, dedupe_key: str) -> set[str]:
    rows = await tx.conn.execute(select(outbox.c.recipient).where(
        outbox.c.dedupe_key == dedupe_key, outbox.c.state == OutboxState.STAGED.value))
    return {r.recipient for r in rows}


async def cancel_staged(tx: Unit, key_prefix: str, *, keep: str | None,
                        reason: str) -> int:
    """Staged rows of this advisory built for another (version, instant): never to be sent."""
    query = update(outbox).where(outbox.c.dedupe_key.startswith(key_prefix),
                                 outbox.c.state == OutboxState.STAGED.value)
    if keep is not None:
        query = query.where(outbox.c.dedupe_key != keep)
    # The key is renamed so the (key, recipient) slot is free again: a release
    # cancelled and re-armed at the same instant must get fresh rows, not a no-op.
    renamed = outbox.c.dedupe_key.concat("~c").concat(cast(outbox.c.id, String))
    result = await tx.conn.execute(query.values(state=OutboxState.CANCELLED.value,
                                                dedupe_key=renamed,
                                                last_reply=reason).returning(outbox.c.id))
    return len(result.all())


async def release_staged(tx: Unit, dedupe_key: str, now: datetime) -> set[str]:
    """At the claim: the staged rows for exactly this (version, instant) become sendable.

    created_at restarts too: the retry period counts from the release, not from the
    arming days earlier (else a 451 at the instant would fail the row at once)."""
    result = await tx.conn.execute(
        update(outbox).where(outbox.c.dedupe_key == dedupe_key,
                             outbox.c.state == OutboxState.STAGED.value)
        .values(state=OutboxState.PENDING.value, next_attempt_at=now, created_at=now)
        .returning(outbox.c.recipient))
    return {r.recipient for r in result}
