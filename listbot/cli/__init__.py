"""The command line: the only place that prints for people and picks exit codes."""

from __future__ import annotations

import sys

import click

from listbot.cli.common import root
from listbot.core.errors import EX_SOFTWARE, EX_USAGE, ListbotError

# Command groups register themselves on `root` when imported.
from listbot.cli import core  # noqa: F401  isort: skip
from listbot.cli import cases  # noqa: F401  isort: skip
from listbot.cli import advisories  # noqa: F401  isort: skip
from listbot.cli import production  # noqa: F401  isort: skip
from listbot.cli import moderation  # noqa: F401  isort: skip
from listbot.cli import applications  # noqa: F401  isort: skip

__all__ = ["main", "root"]


def main(argv: list[str] | None = None) -> None:
    try:
        root.main(args=argv, prog_name="listbot", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(EX_USAGE)
    except click.UsageError as exc:
        exc.show()
        sys.exit(EX_USAGE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EX_USAGE)
    except ListbotError as exc:
        report(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0)


def report(exc: ListbotError) -> None:
    problems = getattr(exc, "problems", None) or [str(exc)]
    for problem in problems:
        click.echo(f"listbot: {problem}", err=True)
    if exc.exit_code == EX_SOFTWARE:
        click.echo("listbot: internal error", err=True)
