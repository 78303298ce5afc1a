"""The public index of advisories: JSON, iCalendar and HTML.

During an embargo the public may learn only that an advisory exists, its
number and its planned release date (docs/design.md "The disclosure calendar").
An embargoed entry cannot hold more, and every renderer writes from an explicit
list of fields per state, so nothing else can slip out even if an entry were forged.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from listbot.advisories.doc import (
    CVE_RE,
    DOMAIN_RE,
    PREFIX_RE,
    AdvisoryDoc,
    AdvisoryFormatError,
    line_problems,
)
from listbot.advisories.format import iso_utc
from listbot.core.clock import ensure_utc

_URL_RE = re.compile(r"https?://[!#-;=?-\[\]-~]+")  # printable ASCII without " < > \ space
_ICS_LIMIT = 75


class IndexState(Enum):
    EMBARGOED = "embargoed"
    PUBLIC = "public"


@dataclass(frozen=True)
class IndexEntry:
    number: int
    public_time: datetime
    state: IndexState
    title: str | None = None
    cves: tuple[str, ...] = ()
    version: int | None = None
    url: str | None = None

    def __post_init__(self) -> None:
        problems = _entry_problems(self)
        if problems:
            raise AdvisoryFormatError(problems)
        object.__setattr__(self, "public_time", ensure_utc(self.public_time))

    @classmethod
    def embargoed(cls, number: int, public_time: datetime) -> IndexEntry:
        return cls(number, public_time, IndexState.EMBARGOED)

    @classmethod
    def released(
        cls,
        number: int,
        public_time: datetime,
        *,
        title: str,
        cves: Sequence[str],
        version: int,
        url: str | None = None,
    ) -> IndexEntry:
        return cls(number, public_time, IndexState.PUBLIC, title, tuple(cves), version, url)


def entry_for(doc: AdvisoryDoc, *, released: bool, url: str | None = None) -> IndexEntry:
    """The index entry of an advisory; before release only number and time go in."""
    if not released:
        return IndexEntry.embargoed(doc.number, doc.embargo_at)
    return IndexEntry.released(
        doc.number, doc.embargo_at, title=doc.title, cves=doc.cves, version=doc.version, url=url
    )


def _entry_problems(e: IndexEntry) -> list[str]:
    where = f"entry {e.number}"
    p: list[str] = []
    if e.number < 1:
        p.append(f"{where}: number must be positive")
    if e.public_time.tzinfo is None:
        p.append(f"{where}: naive public_time")
    if e.state is IndexState.EMBARGOED:
        if e.title is not None or e.cves or e.version is not None or e.url is not None:
            p.append(f"{where}: an embargoed entry carries only number, time and state")
        return p
    if e.title is None or e.version is None:
        p.append(f"{where}: a public entry needs title and version")
    else:
        p += line_problems(f"{where} title", e.title)
        if e.version < 1:
            p.append(f"{where}: version must be positive")
    p += [f"{where}: {c!r} is not CVE-YYYY-NNNN" for c in e.cves if not CVE_RE.fullmatch(c)]
    if e.url is not None and not _URL_RE.fullmatch(e.url):
        p.append(f"{where}: url must be http(s) and printable ASCII")
    return p


def _sorted(entries: Iterable[IndexEntry]) -> list[IndexEntry]:
    out = sorted(entries, key=lambda e: e.number)
    numbers = [e.number for e in out]
    if len(set(numbers)) != len(numbers):
        raise AdvisoryFormatError(["index: an advisory number appears twice"])
    return out


def _check_prefix(prefix: str) -> None:
    if not PREFIX_RE.fullmatch(prefix):
        raise AdvisoryFormatError([f"prefix {prefix!r} is not 2-10 capital letters"])


def _fields(e: IndexEntry, prefix: str) -> dict[str, object]:
    """The whitelist: what the public may see of an entry in its state."""
    out: dict[str, object] = {
        prefix.lower(): e.number,
        "public_time": iso_utc(e.public_time),
        "state": e.state.value,
    }
    if e.state is IndexState.PUBLIC:
        out |= {"title": e.title, "cve": list(e.cves), "version": e.version}
        if e.url is not None:
            out["url"] = e.url
    return out


def index_json(entries: Iterable[IndexEntry], *, prefix: str = "XSA") -> str:
    _check_prefix(prefix)
    rows = [_fields(e, prefix) for e in _sorted(entries)]
    return json.dumps(rows, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


# --- iCalendar (RFC 5545) ---------------------------------------------------


def ics_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def ics_fold(line: str) -> list[str]:
    """Physical lines of at most 75 octets, never splitting a UTF-8 sequence."""
    out: list[str] = []
    current, size = "", 0
    for char in line:
        width = len(char.encode())
        if size + width > _ICS_LIMIT:
            out.append(current)
            current, size = " ", 1  # a continuation line starts with one space
        current += char
        size += width
    out.append(current)
    return out


def _ics_stamp(when: datetime) -> str:
    return ensure_utc(when).strftime("%Y%m%dT%H%M%SZ")


def _event(e: IndexEntry, prefix: str, domain: str, sequence: int, stamp: datetime) -> list[str]:
    ident = f"{prefix}-{e.number}"
    lines = [
        "BEGIN:VEVENT",
        f"UID:{prefix.lower()}{e.number}@{domain}",
        f"DTSTAMP:{_ics_stamp(stamp)}",
        f"DTSTART:{_ics_stamp(e.public_time)}",
        f"SEQUENCE:{sequence}",
    ]
    if e.state is IndexState.EMBARGOED:
        lines += [f"SUMMARY:{ics_escape(f'{ident} public release')}", "STATUS:TENTATIVE"]
    else:
        lines += [f"SUMMARY:{ics_escape(f'{ident} v{e.version}: {e.title}')}", "STATUS:CONFIRMED"]
        if e.cves:
            lines.append(f"DESCRIPTION:{ics_escape(','.join(e.cves))}")
        if e.url is not None:
            lines.append(f"URL:{e.url}")
    return [*lines, "END:VEVENT"]


def index_ics(
    entries: Iterable[IndexEntry],
    *,
    prodid: str,
    domain: str,
    sequences: Mapping[int, int],
    stamp: datetime,
    prefix: str = "XSA",
) -> str:
    """One UTC event per advisory; the caller bumps `sequences[n]` on every reschedule."""
    _check_prefix(prefix)
    problems = line_problems("prodid", prodid)
    if not DOMAIN_RE.fullmatch(domain):
        problems.append(f"domain {domain!r} is not a host name")
    problems += [f"sequence of {n} is negative" for n, s in sequences.items() if s < 0]
    if problems:
        raise AdvisoryFormatError(problems)
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{prodid}", "CALSCALE:GREGORIAN",
             "METHOD:PUBLISH"]  # fmt: skip
    for e in _sorted(entries):
        lines += _event(e, prefix, domain, sequences.get(e.number, 0), stamp)
    lines.append("END:VCALENDAR")
    return "".join(f"{physical}\r\n" for line in lines for physical in ics_fold(line))


# --- HTML -------------------------------------------------------------------


def _row(e: IndexEntry, prefix: str) -> str:
    ident = html.escape(f"{prefix}-{e.number}")
    when = iso_utc(e.public_time)
    cells = [
        ident,
        f'<time datetime="{when}">{html.escape(when[:16].replace("T", " "))}</time>',
        e.state.value,
    ]
    if e.state is IndexState.PUBLIC:
        if e.url is not None:
            cells[0] = f'<a href="{html.escape(e.url, quote=True)}">{ident}</a>'
        cells += [str(e.version), html.escape(", ".join(e.cves)), html.escape(e.title or "")]
    else:
        cells += ["", "", ""]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def index_html(entries: Iterable[IndexEntry], *, project: str = "Xen", prefix: str = "XSA") -> str:
    """A standalone page, newest first; every value escaped."""
    _check_prefix(prefix)
    problems = line_problems("project", project)
    if problems:
        raise AdvisoryFormatError(problems)
    heading = html.escape(f"{project} security advisories")
    head = "".join(
        f"<th>{h}</th>"
        for h in ("Advisory", "Public release (UTC)", "State", "Version", "CVE", "Title")
    )
    rows = [_row(e, prefix) for e in reversed(_sorted(entries))]
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            f'<head><meta charset="utf-8"><title>{heading}</title></head>',
            "<body>",
            f"<h1>{heading}</h1>",
            "<table>",
            f"<thead><tr>{head}</tr></thead>",
            "<tbody>",
            *rows,
            "</tbody>",
            "</table>",
            "</body>",
            "</html>",
            "",
        ]
    )
