"""Reading the configuration document while it is loaded: every problem is collected
with its key path, so an admin fixes a file in one round instead of one error per restart.

The document (the TOML file as read) is only ever seen by the section parsers, which
listbot.settings runs once at load; after that only typed values exist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from listbot.core.config.model import Endpoint
from listbot.core.mail.address import normalize_address

T = TypeVar("T")

# The configuration file as tomllib read it: top-level tables by name.
Document = Mapping[str, Any]


class Reader:
    """Walks a TOML table and records every problem with its key path."""

    def __init__(self, data: Mapping[str, Any], problems: list[str], path: str = "") -> None:
        self.data = data
        self.problems = problems
        self.path = path
        self.used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, kind: type[T], default: T) -> T:
        self.used.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.problems.append(
                f"{self._key(key)}: expected {kind.__name__}, got {type(value).__name__}"
            )
            return default
        return value

    def check(self, key: str, ok: bool, message: str) -> None:
        if not ok:
            self.problems.append(f"{self._key(key)}: {message}")

    def table(self, key: str) -> Reader:
        self.used.add(key)
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            self.problems.append(f"{self._key(key)}: expected a table")
            value = {}
        return Reader(value, self.problems, self._key(key))

    def address(self, key: str, default: str) -> str:
        raw = self.get(key, str, default)
        try:
            return normalize_address(raw)
        except ValueError as exc:
            self.problems.append(f"{self._key(key)}: not a valid address {raw!r} ({exc})")
            return default

    def finish(self, known_extra: tuple[str, ...] = ()) -> None:
        for key in self.data:
            if key not in self.used and key not in known_extra:
                self.problems.append(f"{self._key(key)}: unknown key")


def parse_endpoint(text: str) -> Endpoint:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, got {text!r}")
    return Endpoint(host.strip("[]"), int(port))


def raw_table(doc: Document, name: str) -> Mapping[str, Any]:
    """A top-level table of the document; {} when absent or not a table (the section's own
    parser reports that), so one bad section never stops the others being read."""
    value = doc.get(name, {})
    return value if isinstance(value, dict) else {}


def section(doc: Document, name: str, parse: Callable[[Mapping[str, Any], list[str]], T],
            problems: list[str]) -> T:
    """Parse one top-level table, adding its problems to `problems`. A value that is not
    a table is that one problem: its defaults are returned, not a list of missing keys."""
    if not isinstance(doc.get(name, {}), dict):
        problems.append(f"{name}: expected a table")
        return parse({}, [])
    return parse(raw_table(doc, name), problems)
