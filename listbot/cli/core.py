"""Core commands: serve, check-config, inject, db, members, queue, audit."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Any

import click

from listbot.app import App
from listbot.cli.common import (
    Context,
    cli_actor,
    emit,
    json_option,
    pass_ctx,
    root,
    run,
    run_daemon,
    with_store,
)
from listbot.config_check import load_checked
from listbot.core import config as config_mod
from listbot.core import log as log_setup
from listbot.core.errors import (
    EX_CONFIG,
    EX_DATAERR,
    EX_NOUSER,
    ConfigError,
    MessageRejected,
    TemporaryError,
)
from listbot.core.intake.server import envelope_sender
from listbot.core.mail.address import normalize_address
from listbot.core.mail.line_endings import check_line_endings
from listbot.core.model import INJECT_NO_ENVELOPE, InboundState, OutboxState
from listbot.core.routing import Router
from listbot.core.store import Arrival, Store
from listbot.core.store import roster as roster_ops
from listbot.ops.lifecycle import serve as serve_app


@root.command()
@pass_ctx
def serve(ctx: Context) -> None:
    """Run the daemon until SIGTERM."""
    # Every section's problems now, core and extensions together, not one per restart.
    cfg = load_checked(config_mod.locate(ctx.config_path))
    log_setup.setup(cfg.log_format)
    run_daemon(serve_app(App.create(cfg)))


@root.command("check-config")
@pass_ctx
def check_config(ctx: Context) -> None:
    """Validate the configuration; every error is listed with its key path."""
    try:
        cfg = load_checked(config_mod.locate(ctx.config_path))
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        raise SystemExit(EX_CONFIG) from None
    click.echo(f"ok: {cfg.source} ({len(cfg.lists)} lists, database {cfg.database_url})")


def canonical_crlf(data: bytes) -> bytes:
    """Pipes hand us LF line endings; the store keeps CRLF like SMTP does."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@root.command()
@click.option("--to", "recipient", required=True, help="The list address it was sent to.")
@click.option("--from", "sender", default=None,
              help='The envelope sender ("" or "<>": the null sender). Without it the '
                   "message has no envelope, and its headers alone decide whether it may "
                   "be answered.")
@pass_ctx
def inject(ctx: Context, recipient: str, sender: str | None) -> None:
    """Store a message from standard input as if it arrived over LMTP (exit 75: retry)."""
    cfg = ctx.cfg
    route = Router(cfg.lists.values()).route(recipient)
    if route is None:
        click.echo(f"listbot: unknown recipient {recipient}", err=True)
        raise SystemExit(EX_NOUSER)
    data = canonical_crlf(sys.stdin.buffer.read())
    try:
        check_line_endings(data)
        if len(data) > cfg.max_message_bytes:
            raise MessageRejected(f"message exceeds the size limit of {cfg.max_message_bytes}")
    except MessageRejected as exc:
        click.echo(f"listbot: refused: {exc}", err=True)
        raise SystemExit(EX_DATAERR) from None
    # Parsed as MAIL FROM is: "<a@b>" is stored as "a@b", "<>" as the null sender "".
    # No --from is not the null sender: that would make every such message a bounce.
    source, envelope = (INJECT_NO_ENVELOPE, "") if sender is None else (
        "inject", envelope_sender(sender))
    arrival = Arrival(source, envelope, normalize_address(recipient), route, data)

    async def store_it(store: Store) -> list[int]:
        return await store.store_arrivals([arrival])

    try:
        ids = run(with_store(cfg, store_it))
    except Exception as exc:
        raise TemporaryError(f"could not store the message: {type(exc).__name__}") from exc
    click.echo(f"stored as inbound {ids[0]}")


@root.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(ctx: Context) -> None:
    """Apply pending migrations."""

    async def upgrade(store: Store) -> list[str]:
        pending = await store.pending_migrations()
        await store.upgrade()
        return pending

    pending = run(with_store(ctx.cfg, upgrade, migrate=False))
    click.echo(f"applied: {', '.join(pending)}" if pending else "database is up to date")


@root.group()
def members() -> None:
    """Member organisations (one role address each)."""


@members.command("add")
@click.argument("name")
@click.argument("address")
@click.option("--fingerprint", default=None, help="OpenPGP fingerprint of the member's key.")
@pass_ctx
def members_add(ctx: Context, name: str, address: str, fingerprint: str | None) -> None:
    try:
        addr = normalize_address(address)
    except ValueError as exc:
        raise click.UsageError(f"not a valid address: {address}") from exc
    fpr = fingerprint.replace(" ", "").upper() if fingerprint else None
    if fpr is not None and (len(fpr) != 40 or any(c not in "0123456789ABCDEF" for c in fpr)):
        raise click.UsageError("--fingerprint must be 40 hex digits")

    async def add(store: Store) -> None:
        async with store.unit() as tx:
            member = await tx.add_member(name, addr, fpr)
            await roster_ops.record_change(tx, member_name=member.name, action="added",
                                           text=f"Added {member.name}", actor=cli_actor(None),
                                           now=tx.now)
            await tx.audit(cli_actor(None), "member.added", f"member:{member.name}",
                           {"address": addr, "fingerprint": fpr})

    run(with_store(ctx.cfg, add))
    click.echo(f"added {name} <{addr}>")


@members.command("remove")
@click.argument("name_or_address")
@click.option("--reason", required=True)
@pass_ctx
def members_remove(ctx: Context, name_or_address: str, reason: str) -> None:
    async def remove(store: Store) -> str:
        async with store.unit() as tx:
            member = await tx.remove_member(name_or_address, reason)
            # The public history says who left and when; the reason stays in the audit.
            await roster_ops.record_change(tx, member_name=member.name, action="removed",
                                           text=f"Removed {member.name}", actor=cli_actor(None),
                                           now=tx.now)
            await tx.audit(cli_actor(None), "member.removed", f"member:{member.name}",
                           {"address": member.address, "reason": reason})
            return member.name

    click.echo(f"removed {run(with_store(ctx.cfg, remove))}")


@members.command("list")
@json_option
@pass_ctx
def members_list(ctx: Context, as_json: bool) -> None:
    rows = [asdict(m) for m in run(with_store(ctx.cfg, lambda s: s.members()))]
    emit(rows, as_json, ["name", "address", "fingerprint", "added_at"])


@root.group()
def queue() -> None:
    """Inbound and outbound queues."""


@queue.command("list")
@click.option("--outbound", is_flag=True, help="Show the outbox instead of inbound messages.")
@click.option("--all", "show_all", is_flag=True, help="Include finished entries.")
@json_option
@pass_ctx
def queue_list(ctx: Context, outbound: bool, show_all: bool, as_json: bool) -> None:
    """Pending and quarantined inbound messages, or pending/failed outbound ones."""
    if outbound:
        states = list(OutboxState) if show_all else [
            OutboxState.PENDING, OutboxState.SENDING, OutboxState.FAILED, OutboxState.REFUSED,
            OutboxState.HELD]
        items = run(with_store(ctx.cfg, lambda s: s.outbox_listing(states)))
        rows: list[dict[str, Any]] = [asdict(i) for i in items]
        emit(rows, as_json, ["id", "state", "audience", "recipient", "attempts",
                             "next_attempt_at", "last_reply"])
        return
    in_states = list(InboundState) if show_all else [
        InboundState.NEW, InboundState.CLAIMED, InboundState.QUARANTINED]
    rows = run(with_store(ctx.cfg, lambda s: s.inbound_listing(in_states)))
    emit(rows, as_json, ["id", "state", "list_name", "role", "envelope_from", "received_at",
                         "error"])


@queue.command("retry")
@click.argument("msg_id", type=int)
@pass_ctx
def queue_retry(ctx: Context, msg_id: int) -> None:
    """Put a quarantined message back into the queue."""
    async def retry(store: Store) -> str | None:
        raw = await store.inbound_raw(msg_id)
        if raw is not None:
            try:  # what intake refused (IMAP keeps it quarantined) stays out of the worker
                check_line_endings(raw)
            except MessageRejected as exc:
                return f"inbound {msg_id} cannot be retried: {exc}"
        if not await store.retry_inbound(msg_id, cli_actor(None)):
            return f"inbound {msg_id} is not quarantined"
        return None

    problem = run(with_store(ctx.cfg, retry))
    if problem is not None:
        click.echo(f"listbot: {problem}", err=True)
        raise SystemExit(EX_DATAERR)
    click.echo(f"inbound {msg_id} queued again")


@root.group()
def audit() -> None:
    """The append-only audit log."""


@audit.command("list")
@click.option("--subject", default=None)
@click.option("--action", "action_prefix", default=None, help="Action prefix, e.g. discuss.")
@click.option("--limit", default=200, show_default=True)
@json_option
@pass_ctx
def audit_list(ctx: Context, subject: str | None, action_prefix: str | None, limit: int,
               as_json: bool) -> None:
    entries = run(with_store(ctx.cfg, lambda s: s.audit_listing(
        subject=subject, action_prefix=action_prefix, limit=limit)))
    emit([asdict(e) for e in entries], as_json, ["id", "at", "actor", "action", "subject",
                                                 "detail"])




