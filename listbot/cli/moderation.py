"""Moderation commands: rules check/explain, held list/show/approve/reject/discard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from listbot.cli.common import (
    AS_OPTION,
    Context,
    cli_actor,
    decide_or_refuse,
    emit,
    json_option,
    pass_ctx,
    root,
    run,
    with_store,
)
from listbot.core.clock import SystemClock
from listbot.core.errors import EX_DATAERR, NotFound, UsageError
from listbot.core.mail.keyring import open_keyring
from listbot.core.store import Store
from listbot.core.store import moderation as held_ops
from listbot.discuss.held import Moderation, load_checked_rules
from listbot.moderation.classify import format_explain
from listbot.moderation.evaluation import SPLITS, evaluate, format_tables
from listbot.moderation.facts import facts_from_message
from listbot.moderation.rulecheck import check_examples, format_report
from listbot.moderation.rules import ListRules, Role

DISCUSS = "discuss"  # the corpus is of posts to the discuss list


@root.group()
def rules() -> None:
    """Moderation rule files."""


@rules.command("check")
@click.option("--corpus", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Measure the discuss rules on a labelled corpus (labels.csv + .eml).")
@click.option("--holdout", is_flag=True, help="With --corpus: the held-out part too.")
@json_option
@pass_ctx
def rules_check(ctx: Context, corpus: Path | None, holdout: bool, as_json: bool) -> None:
    """Validate every rule file and classify every labelled example."""
    rc = ctx.settings.rules
    ruleset = load_checked_rules(rc.directory)  # ConfigError (exit 78) lists every problem
    if corpus is None:
        if holdout or as_json:
            raise UsageError("--holdout and --json need --corpus")
    else:
        _measure_corpus(ruleset.get(DISCUSS), corpus, holdout, as_json)
        return
    report = check_examples(rc.directory, rc.examples)
    click.echo(format_report(report))
    if not report.ok:
        raise SystemExit(EX_DATAERR)


def _measure_corpus(rules: ListRules | None, corpus: Path, holdout: bool,
                    as_json: bool) -> None:
    # A measurement, not a gate: it exits 0 whatever the figures are.
    if rules is None:
        raise NotFound(f"no rules for list {DISCUSS!r}")
    tables = evaluate(corpus, rules, SPLITS if holdout else SPLITS[:1])
    if as_json:
        click.echo(json.dumps([t.as_dict() for t in tables], indent=2, sort_keys=True))
    else:
        click.echo(format_tables(tables))


@rules.command("explain")
@click.argument("message", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--list", "list_name", default="discuss", show_default=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), default="member",
              show_default=True, help="The sender's role to assume.")
@click.option("--signed", is_flag=True, help="Assume a valid signature by the sender's key.")
@pass_ctx
def rules_explain(ctx: Context, message: Path, list_name: str, role: str, signed: bool) -> None:
    """Show which rules match MESSAGE (an .eml file), which do not, and why."""
    ruleset = load_checked_rules(ctx.settings.rules.directory)
    list_rules = ruleset.get(list_name)
    if list_rules is None:
        raise NotFound(f"no rules for list {list_name!r} (have: {list(ruleset.names())})")
    facts = facts_from_message(message.read_bytes(), sender_role=Role(role),
                               signed_by_sender=signed)
    click.echo(format_explain(facts, list_rules))


@root.group()
def held() -> None:
    """Posts held for a moderator."""


@held.command("list")
@click.option("--all", "show_all", is_flag=True, help="Decided posts too.")
@json_option
@pass_ctx
def held_list(ctx: Context, show_all: bool, as_json: bool) -> None:
    """Held posts; expired ones stay listed (state "expired") until decided."""
    async def listing(store: Store) -> list[dict[str, Any]]:
        async with store.unit() as tx:
            posts = await held_ops.listing(tx, None if show_all else [held_ops.HELD])
            return [p.summary(tx.now) for p in posts]

    emit(run(with_store(ctx.cfg, listing)), as_json,
         ["id", "list", "state", "sender", "subject", "rule", "expires_at"])


@held.command("show")
@click.argument("post_id", type=int)
@click.option("--raw", is_flag=True, help="Print the held message itself.")
@json_option
@pass_ctx
def held_show(ctx: Context, post_id: int, raw: bool, as_json: bool) -> None:
    async def show(store: Store) -> tuple[dict[str, Any], bytes]:
        async with store.unit() as tx:
            post = await held_ops.get(tx, post_id)
            if post is None:
                raise NotFound(f"no held post {post_id}")
            return post.summary(tx.now), await held_ops.get_raw(tx, post_id) or b""

    summary, data = run(with_store(ctx.cfg, show))
    if raw:
        click.echo(data.decode("utf-8", "replace"))
        return
    emit([summary], as_json, list(summary))


def _decide(ctx: Context, post_id: int, verb: str, reason: str, actor: str | None) -> None:
    settings = ctx.settings
    cfg, pgp = settings.core, settings.pgp
    decider = cli_actor(actor)
    # An approval is sealed for the members when encryption is required.
    keyring = open_keyring(pgp) if pgp.require_encryption else None

    async def decide(store: Store) -> str:
        async with store.unit() as tx:
            post = await held_ops.get(tx, post_id)
            if post is None:
                raise NotFound(f"no held post {post_id}")
            moderation = Moderation(cfg=cfg, lc=cfg.lists[post.list_name],
                                    mc=settings.moderation, pgp=pgp, store=store,
                                    clock=SystemClock(), keyring=keyring)
            await decide_or_refuse(f"held post {post_id}", moderation.decide_now(
                tx, post_id, decider=decider, verb=verb, reason=reason, via="cli"))
            return f"held post {post_id}: {verb} by {decider}"

    click.echo(run(with_store(cfg, decide)))


@held.command("approve")
@click.argument("post_id", type=int)
@AS_OPTION
@pass_ctx
def held_approve(ctx: Context, post_id: int, actor: str | None) -> None:
    """Distribute a held post to the list."""
    _decide(ctx, post_id, "approve", "", actor)


@held.command("reject")
@click.argument("post_id", type=int)
@click.option("--reason", default="moderator", show_default=True,
              help="Reason text for the poster, or a notice name: policy, off-topic.")
@AS_OPTION
@pass_ctx
def held_reject(ctx: Context, post_id: int, reason: str, actor: str | None) -> None:
    """Reject a held post; the poster gets a notice with the reason."""
    _decide(ctx, post_id, "reject", reason, actor)


@held.command("discard")
@click.argument("post_id", type=int)
@AS_OPTION
@pass_ctx
def held_discard(ctx: Context, post_id: int, actor: str | None) -> None:
    """Drop a held post without telling the poster."""
    _decide(ctx, post_id, "discard", "", actor)
