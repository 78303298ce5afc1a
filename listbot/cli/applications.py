"""Applications and member roster commands: applications list/show/accept/reject,
members export/set-key/failures."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from listbot.applications.config import parse_applications
from listbot.applications.handler import Applications
from listbot.applications.roster import FORMATS, public_roster, render
from listbot.applications.state import checklist_from_json
from listbot.cli.common import (
    AS_OPTION,
    Context,
    cli_actor,
    decide_or_refuse,
    echo_key,
    emit,
    json_option,
    pass_ctx,
    root,
    run,
    with_store,
)
from listbot.cli.core import members
from listbot.core.clock import SystemClock
from listbot.core.config import Config, ListKind
from listbot.core.errors import NotFound, PGPError, Refused, UsageError
from listbot.core.mail.keyring import open_keyring, parse_pgp
from listbot.core.mail.pgp_keys import KeyInfo
from listbot.core.mail.sealing import key_problem
from listbot.core.store import Store
from listbot.core.store import applications as app_ops
from listbot.core.store import roster as roster_ops


@root.group("applications")
def applications_group() -> None:
    """Applications to the pre-disclosure list."""


def _service(cfg: Config, store: Store) -> Applications:
    lc = cfg.list_by_kind(ListKind.APPLICATIONS)
    if lc is None:
        raise UsageError("no list of kind 'applications' is configured")
    return Applications(cfg=cfg, lc=lc, ac=parse_applications(cfg), store=store,
                        clock=SystemClock(), keyring=None)


def _summary(row: app_ops.ApplicationRow) -> dict[str, Any]:
    checklist = checklist_from_json(row.checklist)
    return {"id": row.id, "state": row.state, "organisation": row.organisation or "",
            "sender": row.sender, "complete": row.complete,
            "missing": ",".join(checklist.missing + checklist.unacceptable),
            "messages": row.messages, "updated_at": row.updated_at,
            "decided_by": row.decided_by or ""}


@applications_group.command("list")
@click.option("--state", type=click.Choice(["open", "accepted", "rejected", "all"]),
              default="open", show_default=True)
@json_option
@pass_ctx
def applications_list(ctx: Context, state: str, as_json: bool) -> None:
    async def listing(store: Store) -> list[app_ops.ApplicationRow]:
        async with store.unit() as tx:
            return await app_ops.listing(tx, None if state == "all" else [state])

    rows = [_summary(r) for r in run(with_store(ctx.cfg, listing))]
    emit(rows, as_json, ["id", "state", "organisation", "sender", "complete", "missing",
                         "messages", "updated_at"])


@applications_group.command("show")
@click.argument("app_id", type=int)
@json_option
@pass_ctx
def applications_show(ctx: Context, app_id: int, as_json: bool) -> None:
    """The application with its checklist and the messages it came in."""
    async def show(store: Store) -> tuple[app_ops.ApplicationRow, list[app_ops.MessageRow]]:
        async with store.unit() as tx:
            row = await app_ops.get(tx, app_id)
            if row is None:
                raise NotFound(f"no application {app_id}")
            return row, await app_ops.messages(tx, app_id)

    row, msgs = run(with_store(ctx.cfg, show))
    checklist = checklist_from_json(row.checklist)
    items = [{"key": i.key, "status": i.status.value, "found": i.found, "problem": i.problem}
             for i in checklist.items]
    if as_json:
        emit([{**_summary(row), "checklist": items,
               "messages": [m.__dict__ for m in msgs]}], True, [])
        return
    emit([_summary(row)], False, list(_summary(row)))
    click.echo("")
    emit(items, False, ["key", "status", "found", "problem"])
    click.echo("")
    emit([m.__dict__ for m in msgs], False, ["inbound_id", "received_at", "sender",
                                            "duplicate", "subject"])


def _decide(ctx: Context, app_id: int, verb: str, reason: str, actor: str | None) -> None:
    cfg = ctx.cfg
    decider = cli_actor(actor)

    async def decide(store: Store) -> str:
        service = _service(cfg, store)
        async with store.unit() as tx:
            await decide_or_refuse(f"application {app_id}", service.decide_now(
                tx, app_id, decider=decider, verb=verb, reason=reason, via="cli"))
            return f"application {app_id}: {verb} by {decider}; the decision is posted"

    click.echo(run(with_store(cfg, decide)))


@applications_group.command("accept")
@click.argument("app_id", type=int)
@AS_OPTION
@pass_ctx
def applications_accept(ctx: Context, app_id: int, actor: str | None) -> None:
    """Accept (refused while any required item is missing); adds the member."""
    _decide(ctx, app_id, "accept", "", actor)


@applications_group.command("reject")
@click.argument("app_id", type=int)
@click.argument("reason", nargs=-1, required=True)
@AS_OPTION
@pass_ctx
def applications_reject(ctx: Context, app_id: int, reason: tuple[str, ...],
                        actor: str | None) -> None:
    """Reject with a REASON, which is posted to the list."""
    _decide(ctx, app_id, "reject", " ".join(reason), actor)


@members.command("export")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="md", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of standard output.")
@pass_ctx
def members_export(ctx: Context, fmt: str, output: Path | None) -> None:
    """The public roster: organisation names and the change history, never addresses."""
    async def load(store: Store) -> str:
        async with store.unit() as tx:
            current, changes = await roster_ops.load_public(tx)
        return render(public_roster(ctx.cfg.project_name, current, changes), fmt)

    text = run(with_store(ctx.cfg, load))
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}")


@members.command("set-key")
@click.argument("name")
@click.option("--file", "key_file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctx
def members_set_key(ctx: Context, name: str, key_file: Path) -> None:
    """Import the member's public key (one key per file) and record its fingerprint."""
    cfg = ctx.cfg
    keyring = open_keyring(parse_pgp(cfg))
    armored = key_file.read_bytes()

    async def set_key(store: Store) -> KeyInfo:
        # Checked on what gpg reads from the file: a refused key is never imported.
        try:
            scanned = await keyring.scan_keys(armored)
        except PGPError as exc:  # e.g. secret key material
            raise Refused(f"{key_file}: {exc}") from exc
        if len(scanned) != 1:
            raise Refused(f"{key_file} holds {len(scanned)} public keys, not exactly one")
        if (problem := key_problem(scanned[0], datetime.now(UTC))) is not None:
            raise Refused(f"{scanned[0].fingerprint}: {problem}")
        info = next(k for k in await keyring.import_keys(armored)
                    if k.fingerprint == scanned[0].fingerprint)
        async with store.unit() as tx:
            member = await tx.set_member_key(name, info.fingerprint)
            await tx.audit(cli_actor(None), "member.key_set",
                           f"member:{member.name}",
                           {"fingerprint": info.fingerprint,
                            "expires": info.expires.isoformat() if info.expires else None})
        return info

    echo_key(name, run(with_store(cfg, set_key)))


@members.command("failures")
@json_option
@pass_ctx
def members_failures(ctx: Context, as_json: bool) -> None:
    """Delivery failures recorded per member role address (bounces, refused deliveries)."""
    async def load(store: Store) -> list[dict[str, object]]:
        async with store.unit() as tx:
            return await roster_ops.failure_summary(tx)

    emit(run(with_store(ctx.cfg, load)), as_json,
         ["address", "member_name", "permanent", "count", "last_at"])
