"""Shared plumbing for the command groups."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from listbot.core import config as config_mod
from listbot.core.clock import Clock, SystemClock
from listbot.core.config import Config
from listbot.core.errors import NotFound, Refused
from listbot.core.mail.pgp_keys import KeyInfo
from listbot.core.store import Store
from listbot.moderation.decisions import AlreadyDecided, Decided

T = TypeVar("T")


@dataclass
class Context:
    config_path: str | None
    _cfg: Config | None = None

    @property
    def cfg(self) -> Config:
        if self._cfg is None:
            self._cfg = config_mod.load(config_mod.locate(self.config_path))
        return self._cfg


AS_OPTION = click.option("--as", "actor", default=None, metavar="NAME",
                         help="Who acts (recorded in the audit log); default cli:LOGIN.")


def cli_actor(as_name: str | None) -> str:
    """Who the audit log names for a shell command: --as NAME, else cli:LOGIN."""
    return as_name or f"cli:{_login()}"


async def decide_or_refuse(label: str, decision: Awaitable[Decided | AlreadyDecided]) -> None:
    """A decision from the shell: an unknown item is NotFound; one already decided is
    Refused, saying by whom and when (the first decision wins, as by mail)."""
    try:
        result = await decision
    except LookupError as exc:
        raise NotFound(str(exc)) from exc
    if isinstance(result, AlreadyDecided):
        raise Refused(f"{label} was {result.text()}")


def echo_key(holder: str, info: KeyInfo) -> None:
    """The key just recorded for a member or party, as the operator should check it."""
    expiry = f"expires {info.expires:%Y-%m-%d}" if info.expires else "does not expire"
    click.echo(f"{holder}: key {info.fingerprint} ({expiry})")


def _login() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # a DynamicUser has no passwd entry and maybe no $USER
        return f"uid{os.getuid()}"


@click.group()
@click.option("--config", "config_path", metavar="FILE",
              help="Config file (else $LISTBOT_CONFIG, else /etc/listbot/listbot.toml).")
@click.pass_context
def root(ctx: click.Context, config_path: str | None) -> None:
    """listbot: the mail robot of a security team."""
    ctx.obj = Context(config_path)


pass_ctx = click.make_pass_decorator(Context)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def run_daemon(coro: Coroutine[Any, Any, T]) -> T:
    """The daemon's loop is uvloop's: the same asyncio API, with the event loop and
    socket handling in C (about a tenth less CPU per post, bench/RESULTS.md)."""
    import uvloop  # only the daemon needs it

    return uvloop.run(coro)


async def with_store(cfg: Config, work: Callable[[Store], Awaitable[T]],
                     clock: Clock | None = None, *, migrate: bool = True) -> T:
    """Open the store for one command; migrations are applied first, as at start-up."""
    store = Store.open(cfg.database_url, clock or SystemClock())
    try:
        if migrate:
            await store.upgrade()
        return await work(store)
    finally:
        await store.close()


def emit(rows: list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str, sort_keys=True))
        return
    if not rows:
        click.echo("(none)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    click.echo("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for r in rows:
        click.echo("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns).rstrip())


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
