"""The public roster of the pre-disclosure list: organisation names and the dated
change history ("Added NixOS"), never addresses or keys. Pure rendering, plus an
atomic writer for the copy the daemon keeps current ([members] roster_dir)."""

from __future__ import annotations

import html
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

FORMATS = ("md", "json", "html")


@dataclass(frozen=True)
class PublicMember:
    name: str
    since: datetime


@dataclass(frozen=True)
class PublicChange:
    at: datetime
    text: str


@dataclass(frozen=True)
class Roster:
    project: str
    members: tuple[PublicMember, ...]
    changes: tuple[PublicChange, ...]  # oldest first


def _day(at: datetime) -> str:
    return at.strftime("%Y-%m-%d")


def render(roster: Roster, fmt: str) -> str:
    if fmt == "json":
        return json.dumps({
            "project": roster.project,
            "members": [{"name": m.name, "since": _day(m.since)} for m in roster.members],
            "changes": [{"date": _day(c.at), "change": c.text} for c in roster.changes],
        }, indent=2, ensure_ascii=False) + "\n"
    if fmt == "md":
        return _markdown(roster)
    if fmt == "html":
        return _html(roster)
    raise ValueError(f"unknown roster format {fmt!r} (one of {', '.join(FORMATS)})")


def _md_text(text: str) -> str:
    """A name cannot start a heading, a list or a link in the rendered page."""
    return "".join("\\" + c if c in "\\`*_[]<>#|!" else c for c in " ".join(text.split()))


def _markdown(roster: Roster) -> str:
    lines = [f"# {_md_text(roster.project)} pre-disclosure list members", ""]
    lines += [f"- {_md_text(m.name)}" for m in roster.members] or ["(none)"]
    lines += ["", "## Changes", ""]
    lines += [f"- {_day(c.at)}: {_md_text(c.text)}" for c in reversed(roster.changes)]
    if not roster.changes:
        lines.append("(none)")
    return "\n".join(lines) + "\n"


def _html(roster: Roster) -> str:
    esc = html.escape
    title = f"{esc(roster.project)} pre-disclosure list members"
    members = "".join(f"<li>{esc(m.name)}</li>" for m in roster.members)
    changes = "".join(f"<li><time>{_day(c.at)}</time> {esc(c.text)}</li>"
                      for c in reversed(roster.changes))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{title}</title></head><body>\n<h1>{title}</h1>\n"
            f"<ul>{members}</ul>\n<h2>Changes</h2>\n<ul>{changes}</ul>\n</body></html>\n")


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)  # readers see the old file or the new one, never half


def write_all(roster: Roster, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in FORMATS:
        path = directory / f"roster.{fmt}"
        _atomic_write(path, render(roster, fmt))
        written.append(path)
    return written


def history_text(action: str, name: str) -> str:
    return f"{'Added' if action == 'added' else 'Removed'} {name}"


def public_roster(project: str, members: Sequence[tuple[str, datetime]],
                  changes: Sequence[tuple[datetime, str]]) -> Roster:
    return Roster(project, tuple(PublicMember(n, s) for n, s in members),
                  tuple(PublicChange(a, t) for a, t in changes))
