"""listbot advisory …: create, amend, predisclose, schedule, confirm, reschedule, cancel,
release-now, show, status, report, pending."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from listbot.advisories import schedule as sched
from listbot.advisories.doc import Patch
from listbot.advisories.index import collect, render
from listbot.advisories.service import Advisories, Change, Draft, build_service
from listbot.cli.common import (
    AS_OPTION,
    Context,
    cli_actor,
    emit,
    json_option,
    pass_ctx,
    root,
    run,
    with_store,
)
from listbot.core.clock import SystemClock
from listbot.core.errors import UsageError
from listbot.core.mail.keyring import open_keyring, parse_pgp
from listbot.core.store import Store


def parse_instant(text: str) -> datetime:
    try:
        when = datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    except ValueError as exc:
        raise UsageError(f"{text!r}: expected 'YYYY-MM-DD HH:MM' (UTC)") from exc
    return when


def patches(specs: tuple[str, ...]) -> tuple[Patch, ...]:
    """FILE=VERSIONS, e.g. xsa465.patch='xen-unstable - Xen 4.18.x'."""
    out = []
    for spec in specs:
        path, sep, applies = spec.partition("=")
        if not sep:
            raise UsageError(f"--patch {spec!r}: expected FILE=VERSIONS")
        out.append(Patch(Path(path).name, Path(path).read_bytes(), applies))
    return tuple(out)


def go(ctx: Context, work: object) -> object:
    cfg = ctx.cfg

    async def body(store: Store) -> object:
        svc = build_service(cfg, store, SystemClock(),
                            keyring=open_keyring(parse_pgp(cfg)))
        return await work(svc)  # type: ignore[operator]
    return run(with_store(cfg, body))


@root.group()
def advisory() -> None:
    """Security advisories: pre-disclosure and public release."""


@advisory.command()
@click.option("--case", "case_id", help="The case it comes from, e.g. SEC-2026-0001.")
@click.option("--number", type=int, help="Advisory number (default: next free).")
@click.option("--title", required=True)
@click.option("--cve", "cves", multiple=True)
@click.option("--sections", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--patch", "patch_specs", multiple=True, help="FILE=VERSIONS (repeatable).")
@click.option("--embargo", required=True, help="Release instant, 'YYYY-MM-DD HH:MM' UTC.")
@click.option("--restrictive", is_flag=True, help="Restrictive deployment-during-embargo text.")
@AS_OPTION
@pass_ctx
def create(ctx: Context, *, case_id: str | None, number: int | None, title: str,
           cves: tuple[str, ...], sections: str, patch_specs: tuple[str, ...], embargo: str,
           restrictive: bool, actor: str | None) -> None:
    """Render, sign and store version 1."""
    d = Draft(number, case_id, title, cves, Path(sections).read_text(encoding="utf-8"),
              patches(patch_specs), parse_instant(embargo), restrictive)
    n = go(ctx, lambda svc: svc.create(d, cli_actor(actor)))
    click.echo(f"advisory {n} version 1 stored")


@advisory.command()
@click.argument("number", type=int)
@click.option("--update", "updates", multiple=True, required=True, help="What changed.")
@click.option("--title")
@click.option("--cve", "cves", multiple=True)
@click.option("--sections", type=click.Path(exists=True, dir_okay=False))
@click.option("--patch", "patch_specs", multiple=True)
@AS_OPTION
@pass_ctx
def amend(ctx: Context, *, number: int, updates: tuple[str, ...], title: str | None,
          cves: tuple[str, ...], sections: str | None, patch_specs: tuple[str, ...],
          actor: str | None) -> None:
    """Make version K+1 (sent to the pre-disclosure list, or public after the release)."""
    change = Change(updates, title, cves or None,
                    Path(sections).read_text(encoding="utf-8") if sections else None,
                    patches(patch_specs) if patch_specs else None)
    v = go(ctx, lambda svc: svc.amend(number, change, cli_actor(actor)))
    click.echo(f"advisory {number} version {v} stored")


@advisory.command()
@click.argument("number", type=int)
@click.option("--version", type=int)
@click.option("--dry-run", is_flag=True, help="Send the exact message to the team only.")
@AS_OPTION
@pass_ctx
def predisclose(ctx: Context, number: int, version: int | None, dry_run: bool,
                actor: str | None) -> None:
    """Send the embargoed version to every member role address and the team."""
    rows = go(ctx, lambda svc: svc.predisclose(number, cli_actor(actor), version=version,
                                               dry_run=dry_run))
    click.echo(f"queued {rows} deliveries" + (" (dry run, team only)" if dry_run else ""))


@advisory.command()
@click.argument("number", type=int)
@click.option("--dry-run", is_flag=True, help="Send the public message to the team only.")
@AS_OPTION
@pass_ctx
def schedule(ctx: Context, number: int, dry_run: bool, actor: str | None) -> None:
    """Arm the public release at the embargo instant."""
    click.echo(go(ctx, lambda svc: sched.schedule(svc, number, cli_actor(actor),
                                                  dry_run=dry_run)))


@advisory.command()
@click.argument("number", type=int)
@AS_OPTION
@pass_ctx
def confirm(ctx: Context, number: int, actor: str | None) -> None:
    """Second team member confirms an armed release (two-person rule)."""
    go(ctx, lambda svc: sched.confirm(svc, number, cli_actor(actor)))
    click.echo("confirmed")


@advisory.command()
@click.argument("number", type=int)
@click.option("--at", "at", required=True, help="New instant, 'YYYY-MM-DD HH:MM' UTC.")
@AS_OPTION
@pass_ctx
def reschedule(ctx: Context, number: int, at: str, actor: str | None) -> None:
    """Move the embargo instant."""
    v = go(ctx, lambda svc: sched.reschedule(svc, number, parse_instant(at), cli_actor(actor)))
    click.echo(f"advisory {number} now version {v}")


@advisory.command()
@click.argument("number", type=int)
@AS_OPTION
@pass_ctx
def cancel(ctx: Context, number: int, actor: str | None) -> None:
    """Disarm a scheduled release (back to draft)."""
    go(ctx, lambda svc: sched.cancel(svc, number, cli_actor(actor)))
    click.echo("cancelled")


@advisory.command("release-now")
@click.argument("number", type=int)
@click.option("--reason", required=True)
@AS_OPTION
@pass_ctx
def release_now(ctx: Context, number: int, reason: str, actor: str | None) -> None:
    """Embargo broken or exploited in the wild: release at once."""
    go(ctx, lambda svc: sched.release_now(svc, number, reason, cli_actor(actor)))
    click.echo("released; the daemon delivers it")


@advisory.command("resolve-held")
@click.argument("number", type=int)
@AS_OPTION
@pass_ctx
def resolve_held(ctx: Context, number: int, actor: str | None) -> None:
    """Send held copies to members whose key is now usable."""
    n = go(ctx, lambda svc: svc.resolve_held(number, cli_actor(actor)))
    click.echo(f"released {n} held copies")


@advisory.command()
@click.argument("number", type=int)
@click.option("--version", type=int)
@click.option("--public", is_flag=True)
@pass_ctx
def show(ctx: Context, number: int, version: int | None, public: bool) -> None:
    """Print exactly the bytes that will be sent."""
    raw = go(ctx, lambda svc: sched.show(svc, number, version=version, public=public))
    assert isinstance(raw, bytes)
    sys.stdout.buffer.write(raw)


@advisory.command()
@click.argument("number", type=int)
@json_option
@pass_ctx
def status(ctx: Context, number: int, as_json: bool) -> None:
    """Per recipient: accepted, deferred (with the reply), failed, held."""
    rows = go(ctx, lambda svc: sched.status(svc, number))
    assert isinstance(rows, list)
    emit(rows, as_json, ["version", "kind", "recipient", "status", "attempts", "reply"])


@advisory.command()
@click.argument("number", type=int)
@json_option
@pass_ctx
def report(ctx: Context, number: int, as_json: bool) -> None:
    """What was decided during the embargo (from the audit log)."""
    entries = go(ctx, lambda svc: sched.report(svc, number))
    assert isinstance(entries, list)
    emit([{"at": e.at.isoformat(), "actor": e.actor, "action": e.action,
           "detail": e.detail} for e in entries], as_json, ["at", "actor", "action", "detail"])


@advisory.command()
@click.option("--format", "fmt", type=click.Choice(["json", "ics", "html"]), default="json")
@pass_ctx
def pending(ctx: Context, fmt: str) -> None:
    """The public pending index (embargoed: number and instant only)."""
    async def work(svc: Advisories) -> str:
        index = await collect(svc.store, svc.adv, svc.r.cfg.project_name)
        return render(index, fmt, adv=svc.adv, project=svc.r.cfg.project_name,
                      domain=svc.r.domain, clock=svc.clock)
    click.echo(go(ctx, work), nl=False)
