"""One error tree. CLI maps these to exit codes (sysexits)."""

from __future__ import annotations

EX_USAGE = 64
EX_DATAERR = 65
EX_NOUSER = 67
EX_SOFTWARE = 70
EX_TEMPFAIL = 75
EX_CONFIG = 78


class ListbotError(Exception):
    """Base of every error listbot raises on purpose."""

    exit_code = EX_SOFTWARE


class ConfigError(ListbotError):
    """Configuration is invalid; carries every problem found, each with its key path."""

    exit_code = EX_CONFIG

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class UsageError(ListbotError):
    exit_code = EX_USAGE


class TemporaryError(ListbotError):
    """Retry later: database unreachable, relay down, lock busy."""

    exit_code = EX_TEMPFAIL


class DatabaseRefused(TemporaryError):
    """The database server answered and refused us for a reason a restart cannot cure:
    a wrong password, an unknown role or database. A command or start-up exits 78 with
    the cause, so systemd does not restart it in a loop; inside a running daemon it is
    retried like any outage, since the operator may fix it underneath."""

    exit_code = EX_CONFIG


class NotFound(ListbotError):
    exit_code = EX_DATAERR


class Refused(ListbotError):
    """A request that policy forbids (e.g. accepting an incomplete application)."""

    exit_code = EX_DATAERR


class MessageRejected(ListbotError):
    """Received data that listbot will not store (smuggling, bare LF, over size)."""

    exit_code = EX_DATAERR


class PGPError(ListbotError):
    exit_code = EX_SOFTWARE
