"""`listbot case ...`: case facts, the timeline with its derivation, outside parties."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from listbot.calendar import apply_requested_date, explain, exploited_in_the_wild
from listbot.case_model import Case, CaseState
from listbot.cases_config import parse_cases
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
from listbot.clock import ensure_utc
from listbot.errors import UsageError
from listbot.mailsafe import normalize_address
from listbot.store import Store
from listbot.store import cases as case_store


def row(case: Case) -> dict[str, Any]:
    return {"id": case.id, "state": case.state.value, "reporter": case.reporter,
            "opened": case.opened_at.isoformat(), "embargo": case.embargo_at.isoformat()
            if case.embargo_at else "", "predisclosure": case.timeline.predisclosure_at
            .isoformat(), "cves": ",".join(case.cve_ids), "advisory": case.advisory or "",
            "credits": case.credits, "notes": case.notes, "patch": case.patch_attached,
            "subject": case.subject}


def utc_instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return ensure_utc(value)
    except ValueError as exc:
        raise UsageError(f"not an ISO instant with offset: {text!r} ({exc})") from exc


@root.group()
def case() -> None:
    """Security cases opened from reports to security@."""


@case.command("list")
@click.option("--state", "states", multiple=True, type=click.Choice([s.value for s in CaseState]))
@json_option
@pass_ctx
def list_cmd(ctx: Context, states: tuple[str, ...], as_json: bool) -> None:
    """List cases (optionally by state)."""
    async def work(store: Store) -> list[Case]:
        async with store.unit() as tx:
            return await case_store.list_cases(tx, [CaseState(s) for s in states])
    cases = run(with_store(ctx.cfg, work))
    emit([row(c) for c in cases], as_json, ["id", "state", "reporter", "embargo", "subject"])


@case.command()
@click.argument("case_id")
@json_option
@pass_ctx
def show(ctx: Context, case_id: str, as_json: bool) -> None:
    """Facts, parties, messages and reminders sent of one case."""
    async def work(store: Store) -> dict[str, Any]:
        async with store.unit() as tx:
            c = await case_store.get_case(tx, case_id)
            return {**row(c),
                    "parties": [p.address for p in await case_store.parties(tx, c.id)],
                    "messages": await case_store.messages(tx, c.id),
                    "reminders_sent": [k for k, _ in await case_store.sent_reminders(tx, c.id)]}
    facts = run(with_store(ctx.cfg, work))
    if as_json:
        emit([facts], True, [])
        return
    for key, value in facts.items():
        if key == "messages":
            click.echo("messages:")
            for m in value:
                click.echo(f"  {m['at']:%Y-%m-%d %H:%M} {m['kind']:<11} {m['sender']} "
                           f"{'(encrypted) ' if m['encrypted'] else ''}{m['subject']}")
        else:
            click.echo(f"{key}: {value}")


@case.command("set")
@click.argument("case_id")
@click.option("--state", type=click.Choice([s.value for s in CaseState]))
@click.option("--cve", "cves", multiple=True, help="CVE id (repeat); replaces the list.")
@click.option("--embargo", help="Embargo instant, ISO 8601 with offset.")
@click.option("--advisory", help="Advisory number.")
@click.option("--credits")
@click.option("--notes")
@click.option("--patch-attached/--no-patch-attached", default=None)
@click.option("--requested-date", help="A date the discoverer asked for (ISO instant).")
@click.option("--team-accepts-later", is_flag=True,
              help="With --requested-date: accept a date later than the planned one.")
@click.option("--exploited", is_flag=True, help="Exploited in the wild: release now.")
@AS_OPTION
@pass_ctx
def set_cmd(ctx: Context, *, case_id: str, state: str | None, cves: tuple[str, ...],
            embargo: str | None, advisory: str | None, credits: str | None,
            notes: str | None, patch_attached: bool | None, requested_date: str | None,
            team_accepts_later: bool, exploited: bool, actor: str | None) -> None:
    """Change case facts; every change is audited with its old and new value."""
    changes: dict[str, Any] = {}
    if state:
        changes["state"] = CaseState(state)
    if cves:
        changes["cve_ids"] = tuple(c.upper() for c in cves)
    if embargo:
        changes["embargo_at"] = utc_instant(embargo)
    for key, value in (("advisory", advisory), ("credits", credits), ("notes", notes),
                       ("patch_attached", patch_attached)):
        if value is not None:
            changes[key] = value
    cases_cfg = parse_cases(ctx.cfg)

    async def work(store: Store) -> Case:
        async with store.unit() as tx:
            c = await case_store.get_case(tx, case_id)
            timeline = None
            if requested_date:
                policy = cases_cfg.policy_for(c.timeline.arrival.year)
                try:
                    timeline = apply_requested_date(c.timeline, utc_instant(requested_date),
                                                    team_accepts_later, policy)
                except ValueError as exc:
                    raise UsageError(str(exc)) from exc
            if exploited:
                timeline = exploited_in_the_wild(timeline or c.timeline, tx.now)
            return await case_store.update_case(tx, c.id, cli_actor(actor), changes,
                                                timeline=timeline)
    updated = run(with_store(ctx.cfg, work))
    emit([row(updated)], False, ["id", "state", "embargo", "predisclosure", "cves"])


@case.command()
@click.argument("case_id")
@click.option("--explain", "with_explanation", is_flag=True,
              help="Show how every date was derived.")
@json_option
@pass_ctx
def timeline(ctx: Context, case_id: str, with_explanation: bool, as_json: bool) -> None:
    """The case's disclosure timeline (UTC)."""
    async def work(store: Store) -> Case:
        async with store.unit() as tx:
            return await case_store.get_case(tx, case_id)
    c = run(with_store(ctx.cfg, work))
    if as_json:
        emit([c.timeline.to_dict()], True, [])
        return
    lines = explain(c.timeline)
    click.echo("\n".join(lines if with_explanation else lines[-2:]))


@case.command("add-party")
@click.argument("case_id")
@click.argument("address")
@click.option("--name", default="", help="Organisation (e.g. the vendor's PSIRT).")
@AS_OPTION
@pass_ctx
def add_party(ctx: Context, case_id: str, address: str, name: str,
              actor: str | None) -> None:
    """Let an outside security contact receive this case's mail (this case only)."""
    try:
        normalized = normalize_address(address)
    except ValueError as exc:
        raise UsageError(f"not a valid address: {address!r}") from exc

    async def work(store: Store) -> None:
        async with store.unit() as tx:
            await case_store.add_party(tx, case_id, normalized, name, cli_actor(actor))
    run(with_store(ctx.cfg, work))
    click.echo(f"{normalized} added to {case_id.upper()}")


@case.command("remove-party")
@click.argument("case_id")
@click.argument("address")
@AS_OPTION
@pass_ctx
def remove_party(ctx: Context, case_id: str, address: str, actor: str | None) -> None:
    """Stop sending this case's mail to an outside party."""
    async def work(store: Store) -> None:
        async with store.unit() as tx:
            await case_store.remove_party(tx, case_id, normalize_address(address),
                                          cli_actor(actor))
    run(with_store(ctx.cfg, work))
    click.echo(f"{address} removed from {case_id.upper()}")
