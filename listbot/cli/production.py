"""Commands for running listbot behind an MTA: aliases (Postfix maps) and doctor."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import asdict
from pathlib import Path

import click

from listbot.cli.common import Context, emit, json_option, pass_ctx, root, run
from listbot.core.clock import SystemClock
from listbot.core.errors import EX_CONFIG, EX_TEMPFAIL, ConfigError, TemporaryError
from listbot.core.store import Store
from listbot.ops.doctor import Level, run_checks
from listbot.ops.mta import DOMAINS_FILE, TRANSPORT_FILE, main_cf_lines, postfix_maps


def _write_atomically(path: Path, text: str) -> None:
    # Postfix may read the map while we write: replace it in one rename.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _postmap(path: Path) -> None:
    binary = shutil.which("postmap")
    if binary is None:
        raise TemporaryError("postmap not found: install Postfix or pass --no-postmap")
    done = subprocess.run([binary, f"hash:{path}"], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise TemporaryError(f"postmap {path} failed: {done.stderr.strip()}")


@root.command()
@click.option("--directory", type=click.Path(file_okay=False), default=None,
              help="Where to write the maps (default: the state directory).")
@click.option("--postmap/--no-postmap", default=True, show_default=True,
              help="Run postmap on the written maps (MAIL_CONFIG selects Postfix's config).")
@click.option("--stdout", "to_stdout", is_flag=True, help="Print the maps, write nothing.")
@pass_ctx
def aliases(ctx: Context, directory: str | None, postmap: bool, to_stdout: bool) -> None:
    """Write the Postfix transport and relay-domain maps for every list address."""
    cfg = ctx.cfg
    try:
        maps = postfix_maps(cfg)
    except ValueError as exc:
        raise ConfigError([f"listen.lmtp: {exc}"]) from exc
    if to_stdout:
        click.echo(f"# {TRANSPORT_FILE}")
        click.echo(maps.transport_text(), nl=False)
        click.echo(f"# {DOMAINS_FILE}")
        click.echo(maps.domains_text(), nl=False)
        return
    target = Path(directory) if directory else cfg.state_dir
    target.mkdir(parents=True, exist_ok=True)
    for name, text in ((TRANSPORT_FILE, maps.transport_text()),
                       (DOMAINS_FILE, maps.domains_text())):
        _write_atomically(target / name, text)
        if postmap:
            _postmap(target / name)
    click.echo(f"wrote {len(maps.addresses)} addresses in {len(maps.domains)} domains "
               f"to {target} (next hop {maps.nexthop})")
    click.echo("main.cf needs:")
    for line in main_cf_lines(str(target.resolve())):
        click.echo(f"  {line}")


@root.command()
@click.option("--days", type=int, default=None,
              help="Key expiry warning window in days (default pgp.expiry_warning_days).")
@json_option
@pass_ctx
def doctor(ctx: Context, days: int | None, as_json: bool) -> None:
    """Check config, rules, database, keys, smarthost and listeners (exit 78/75 on FAIL)."""
    try:
        report = ctx.report()
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"FAIL  config  {problem}", err=True)
        raise SystemExit(EX_CONFIG) from None
    clock = SystemClock()
    url = report.settings.core.database_url
    findings = run(run_checks(report, lambda: Store.open(url, clock), clock, days))
    if as_json:
        emit([asdict(f) for f in findings], True, [])
    else:
        for f in findings:
            tail = f" -> {f.action}" if f.action and f.level is not Level.OK else ""
            click.echo(f"{f.level.value:<4}  {f.check}: {f.detail}{tail}")
    failed = [f for f in findings if f.level is Level.FAIL]
    if any(f.check == "database" for f in failed):
        raise SystemExit(EX_TEMPFAIL)
    if failed:
        raise SystemExit(EX_CONFIG)
