"""`listbot case ...`: case facts, the timeline with its derivation, outside parties."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from listbot.cli.common import (
    AS_OPTION,
    Context,
    cli_actor,
    echo_key,
    emit,
    json_option,
    pass_ctx,
    root,
    run,
    with_store,
)
from listbot.core.calendar.derivation import explain
from listbot.core.calendar.embargo import apply_requested_date, exploited_in_the_wild
from listbot.core.case_model import Case, CaseState
from listbot.core.clock import ensure_utc
from listbot.core.errors import NotFound, PGPError, Refused, UsageError
from listbot.core.mail.address import normalize_address
from listbot.core.mail.keyring import open_keyring, parse_pgp
from listbot.core.mail.pgp import Keyring
from listbot.core.mail.pgp_keys import KeyInfo
from listbot.core.mail.sealing import key_problem
from listbot.core.store import Store
from listbot.core.store import cases as case_store
from listbot.security.config import parse_cases
from listbot.security.party_keys import party_key


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
            current = await case_store.parties(tx, c.id)
            return {**row(c),
                    "parties": [p.address for p in current],
                    "party_keys": {p.address: p.fingerprint or "" for p in current},
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


KEY_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def party_address(address: str) -> str:
    try:
        return normalize_address(address)
    except ValueError as exc:
        raise UsageError(f"not a valid address: {address!r}") from exc


async def import_party_key(keyring: Keyring, address: str, key_file: Path,
                           now: datetime) -> KeyInfo:
    """Import the party's key from `key_file`, keeping only its user ids for `address`.

    Every check runs on what gpg reads from the file before anything is imported, so a
    refused key leaves the keyring as it was."""
    armored = await asyncio.to_thread(key_file.read_bytes)
    try:
        found = party_key(address, await keyring.scan_keys(armored))
    except PGPError as exc:  # e.g. secret key material: refused, nothing imported
        raise Refused(f"{key_file}: {exc}") from exc
    if isinstance(found, str):
        raise Refused(f"{key_file}: {found}")
    if (problem := key_problem(found, now)) is not None:
        raise Refused(f"{found.fingerprint}: {problem}")
    imported = await keyring.import_keys(armored, only_address=address)
    if [k.fingerprint for k in imported] != [found.fingerprint]:
        raise Refused(f"{key_file}: gpg imported {len(imported)} keys, not {found.fingerprint}")
    return imported[0]


@case.command("add-party")
@click.argument("case_id")
@click.argument("address")
@click.option("--name", default="", help="Organisation (e.g. the vendor's PSIRT).")
@click.option("--key", "key_file", type=KEY_FILE,
              help="The party's public key (one key, with a user id for ADDRESS).")
@AS_OPTION
@pass_ctx
def add_party(ctx: Context, *, case_id: str, address: str, name: str,
              key_file: Path | None, actor: str | None) -> None:
    """Let an outside security contact receive this case's mail (this case only)."""
    normalized = party_address(address)

    async def work(store: Store) -> KeyInfo | None:
        async with store.unit() as tx:  # a typo in the case id imports no key
            c = await case_store.get_case(tx, case_id)
            if normalized in {p.address for p in await case_store.parties(tx, c.id)}:
                raise Refused(f"{normalized} is already a party of {c.id}")
        info = None
        if key_file is not None:
            info = await import_party_key(open_keyring(parse_pgp(ctx.cfg)), normalized,
                                          key_file, store.clock.now())
        async with store.unit() as tx:
            await case_store.add_party(tx, case_id, normalized, name, cli_actor(actor),
                                       fingerprint=info.fingerprint if info else None)
        return info
    info = run(with_store(ctx.cfg, work))
    click.echo(f"{normalized} added to {case_id.upper()}")
    if info is not None:
        echo_key(normalized, info)


@case.command("set-party-key")
@click.argument("case_id")
@click.argument("address")
@click.option("--file", "key_file", type=KEY_FILE, required=True,
              help="The party's public key (one key, with a user id for ADDRESS).")
@AS_OPTION
@pass_ctx
def set_party_key(ctx: Context, case_id: str, address: str, key_file: Path,
                  actor: str | None) -> None:
    """Import a party's public key; its held pre-disclosure copies can then be resolved
    (advisory resolve-held)."""
    normalized = party_address(address)

    async def work(store: Store) -> KeyInfo:
        async with store.unit() as tx:
            c = await case_store.get_case(tx, case_id)
            if normalized not in {p.address for p in await case_store.parties(tx, c.id)}:
                raise NotFound(f"{normalized} is not a party of {c.id}")
        info = await import_party_key(open_keyring(parse_pgp(ctx.cfg)), normalized,
                                      key_file, store.clock.now())
        async with store.unit() as tx:
            await case_store.set_party_key(tx, case_id, normalized, info.fingerprint,
                                           cli_actor(actor))
        return info
    echo_key(normalized, run(with_store(ctx.cfg, work)))


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
