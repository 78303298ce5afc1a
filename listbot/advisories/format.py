"""The advisory e-mail in its fixed layout (golden copies: tests/fixtures/xsa465-v2-*.txt).

Pure: no gpg, no sending. `render_text` gives the text that is clear-signed
elsewhere; `advisories.mail.build_message` wraps the signed text and the
patches in the MIME message. Recipients filter and parse these mails by their fields,
so the layout is an interface: change it only on purpose.
"""

from __future__ import annotations

import hashlib
import json
import re
import textwrap
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from types import MappingProxyType

from listbot.core.clock import ensure_utc
from listbot.core.errors import EX_DATAERR, ListbotError

WIDTH = 70

ISSUE = "ISSUE DESCRIPTION"
IMPACT = "IMPACT"
VULNERABLE = "VULNERABLE SYSTEMS"
MITIGATION = "MITIGATION"
CREDITS = "CREDITS"
RESOLUTION = "RESOLUTION"
DEPLOYMENT = "DEPLOYMENT DURING EMBARGO"

# NOTE sections go between MITIGATION and CREDITS, in the order given.
BEFORE_NOTES = (ISSUE, IMPACT, VULNERABLE, MITIGATION)
AFTER_NOTES = (CREDITS, RESOLUTION, DEPLOYMENT)
REQUIRED_SECTIONS = frozenset(BEFORE_NOTES + AFTER_NOTES)

_NOTE_RE = re.compile(r"NOTE [A-Z0-9][A-Z0-9 ,'()/.-]*")
CVE_RE = re.compile(r"CVE-[0-9]{4}-[0-9]{4,}")
PREFIX_RE = re.compile(r"[A-Z]{2,10}")
_FILENAME_RE = re.compile(r"[A-Za-z0-9._-]+")
DOMAIN_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_LIST_MARKER_RE = re.compile(r"(?:[-*]|[0-9]{1,2}[.)]) ")
# Unicode line and paragraph separators, controls, format characters (bidi
# overrides) and surrogates: none belongs in a header or a centred title.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


class AdvisoryFormatError(ListbotError, ValueError):
    """An advisory that cannot be rendered; carries every problem found at once."""

    exit_code = EX_DATAERR

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class Audience(Enum):
    PREDISCLOSURE = "predisclosure"
    PUBLIC = "public"


@dataclass(frozen=True)
class Patch:
    filename: str
    content: bytes
    applies_to: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class AdvisoryDoc:
    project: str
    prefix: str
    number: int
    version: int
    title: str
    cves: tuple[str, ...]
    sections: Mapping[str, str] = field(hash=False)
    updates: tuple[str, ...]
    patches: tuple[Patch, ...]
    embargo_at: datetime
    # Xen attaches a machine-readable xsa<N>.meta; it is then listed in the
    # sha256sum transcript like every other attachment.
    with_meta: bool = True

    def __post_init__(self) -> None:
        problems = _doc_problems(self)
        if problems:
            raise AdvisoryFormatError(problems)
        object.__setattr__(self, "embargo_at", ensure_utc(self.embargo_at))
        object.__setattr__(self, "sections", MappingProxyType(dict(self.sections)))

    @property
    def stem(self) -> str:
        """What every attachment name starts with, e.g. `xsa465`."""
        return f"{self.prefix.lower()}{self.number}"

    @property
    def meta_filename(self) -> str:
        return f"{self.stem}.meta"


# --- validation -------------------------------------------------------------


def line_problems(name: str, value: str, *, allow_empty: bool = False) -> list[str]:
    if not value and not allow_empty:
        return [f"{name}: empty"]
    bad = sorted({f"U+{ord(c):04X}" for c in value if unicodedata.category(c) in _BAD_CATEGORIES})
    if bad:
        return [f"{name}: forbidden characters {', '.join(bad)} (must be one plain line)"]
    if value != value.strip():
        return [f"{name}: leading or trailing whitespace"]
    return []


def _text_problems(name: str, value: str) -> list[str]:
    bad = sorted(
        {
            f"U+{ord(c):04X}"
            for c in value
            if c not in "\n\t" and unicodedata.category(c) in _BAD_CATEGORIES
        }
    )
    return [f"{name}: forbidden characters {', '.join(bad)}"] if bad else []


def _is_known_heading(name: str) -> bool:
    return name in REQUIRED_SECTIONS or _NOTE_RE.fullmatch(name) is not None


def _doc_problems(doc: AdvisoryDoc) -> list[str]:
    p: list[str] = []
    p += line_problems("project", doc.project)
    if not PREFIX_RE.fullmatch(doc.prefix):
        p.append(f"prefix: {doc.prefix!r} is not 2-10 capital letters")
    if doc.number < 1:
        p.append("number: must be positive")
    if doc.version < 1:
        p.append("version: must be positive")
    p += line_problems("title", doc.title)
    for cve in doc.cves:
        if not CVE_RE.fullmatch(cve):
            p.append(f"cves: {cve!r} is not CVE-YYYY-NNNN")
    if len(set(doc.cves)) != len(doc.cves):
        p.append("cves: duplicates")
    p += _section_problems(doc.sections)
    if doc.version > 1 and not doc.updates:
        p.append(f"updates: version {doc.version} must say what changed")
    for i, update in enumerate(doc.updates):
        p += line_problems(f"updates[{i}]", update)
    p += _patch_problems(doc)
    if doc.embargo_at.tzinfo is None:
        p.append("embargo_at: naive datetime")
    elif doc.embargo_at.second or doc.embargo_at.microsecond:
        p.append("embargo_at: must be a whole minute (it is shown as HH:MM)")
    return p


def _section_problems(sections: Mapping[str, str]) -> list[str]:
    p: list[str] = []
    for name, text in sections.items():
        if not _is_known_heading(name):
            p.append(f"section {name!r}: unknown heading")
        p += _text_problems(f"section {name}", text)
    for name in sorted(REQUIRED_SECTIONS):
        if not sections.get(name, "").strip():
            p.append(f"section {name}: missing or empty")
    return p


def _patch_problems(doc: AdvisoryDoc) -> list[str]:
    p: list[str] = []
    names = [patch.filename for patch in doc.patches]
    for patch in doc.patches:
        name = patch.filename
        # The signed transcript globs `xsa<N>*`: a name outside it would be
        # attached yet unlisted, and `xsa4650` would sneak into `xsa465*`.
        stem_ok = name.startswith(doc.stem) and not name[len(doc.stem) :][:1].isdigit()
        if not _FILENAME_RE.fullmatch(name) or not stem_ok:
            p.append(f"patch {name!r}: name must match {doc.stem}[._-]… with [A-Za-z0-9._-] only")
        if doc.with_meta and name == doc.meta_filename:
            p.append(f"patch {name!r}: clashes with the .meta attachment")
        p += line_problems(f"patch {name!r} applies_to", patch.applies_to)
    if len(set(names)) != len(names):
        p.append("patches: duplicate file names")
    return p


# --- the section file -------------------------------------------------------


def _heading_problems(
    where: str, heading: str, underline: str, seen: Sequence[tuple[str, int]]
) -> list[str]:
    p: list[str] = []
    if len(underline) != len(heading):
        p.append(f"{where}: underline of {heading!r} is {len(underline)} long, not {len(heading)}")
    if heading.startswith("UPDATES IN VERSION"):
        p.append(f"{where}: {heading!r} is given as the list of updates, not as a section")
    elif not _is_known_heading(heading):
        p.append(f"{where}: unknown heading {heading!r}")
    if any(h == heading for h, _ in seen):
        p.append(f"{where}: {heading!r} appears twice")
    return p


def parse_sections(text: str, *, required: Iterable[str] = REQUIRED_SECTIONS) -> dict[str, str]:
    """Sections of a text file written with the advisory's own headings.

    A heading is a line in capitals underlined with `=` of the same length.
    `required` lets the caller supply e.g. the standard DEPLOYMENT text itself.
    """
    problems: list[str] = []
    if "\r" in text.replace("\r\n", "\n"):
        problems.append("bare CR in text")
    lines = text.replace("\r\n", "\n").split("\n")
    starts: list[tuple[str, int]] = []  # (heading, index of first body line)
    for i in range(1, len(lines)):
        underline, heading = lines[i].rstrip(), lines[i - 1].rstrip()
        if not re.fullmatch(r"={3,}", underline) or not heading or heading[0].isspace():
            continue
        problems += _heading_problems(f"line {i}", heading, underline, starts)
        starts.append((heading, i + 1))
    first = starts[0][1] - 2 if starts else len(lines)
    if any(line.strip() for line in lines[:first]):
        problems.append("text before the first heading")
    sections: dict[str, str] = {}
    for n, (heading, begin) in enumerate(starts):
        end = starts[n + 1][1] - 2 if n + 1 < len(starts) else len(lines)
        sections.setdefault(heading, "\n".join(x.rstrip() for x in lines[begin:end]).strip("\n"))
    for name in sorted(set(required)):
        if not sections.get(name, "").strip():
            problems.append(f"section {name}: missing or empty")
    for name, body in sections.items():
        problems += _text_problems(f"section {name}", body)
    if problems:
        raise AdvisoryFormatError(problems)
    return sections


# --- the signed text --------------------------------------------------------


def _stamp(when: datetime) -> str:
    return ensure_utc(when).strftime("%Y-%m-%d %H:%M")


def iso_utc(when: datetime) -> str:
    return ensure_utc(when).strftime("%Y-%m-%dT%H:%M:%SZ")


def subject(doc: AdvisoryDoc, audience: Audience) -> str:
    cves = f" ({','.join(doc.cves)})" if doc.cves else ""
    text = f"{doc.project} Security Advisory {doc.number} v{doc.version}{cves} - {doc.title}"
    if audience is Audience.PREDISCLOSURE:
        text = f"[EMBARGOED until {_stamp(doc.embargo_at)} UTC] {text}"
    problems = line_problems("subject", text)
    if problems:  # unreachable for a validated doc; the header must never fold a newline
        raise AdvisoryFormatError(problems)
    return text


def banner(doc: AdvisoryDoc) -> str:
    return f"***** EMBARGOED UNTIL {_stamp(doc.embargo_at)} UTC *****"


def _centre(line: str) -> str:
    return " " * max(0, (WIDTH - len(line)) // 2) + line


def _wrap(text: str, indent: int = 0) -> list[str]:
    wrapper = textwrap.TextWrapper(
        width=WIDTH,
        subsequent_indent=" " * indent,
        break_long_words=False,  # URLs and hashes stay whole
        break_on_hyphens=False,  # never split CVE-2024-12345 or xen-unstable
    )
    return wrapper.wrap(text) or [""]


def reflow(text: str) -> list[str]:
    """Prose paragraphs wrapped at 70 columns; lines starting with whitespace kept as they are.

    A line starting with a list marker (`- `, `* `, `1. `, `2) `) starts a new
    paragraph with a hanging indent, so lists are not run together.
    """
    out: list[str] = []
    para: list[str] = []
    indent = 0

    def flush() -> None:
        if para:
            out.extend(_wrap(" ".join(para), indent))
            para.clear()

    for raw in text.split("\n"):
        line = raw.rstrip()
        marker = _LIST_MARKER_RE.match(line)
        if not line or line[0].isspace():
            flush()
            if line or (out and out[-1]):
                out.append(line)
            continue
        if marker:
            flush()
            indent = len(marker.group(0))
        elif not para:
            indent = 0
        para.append(line)
    flush()
    while out and not out[-1]:
        out.pop()
    while out and not out[0]:
        out.pop(0)
    return out


def _id_lines(doc: AdvisoryDoc) -> list[str]:
    ident = f"{doc.prefix}-{doc.number}"
    head = f"{doc.project} Security Advisory"
    if not doc.cves:
        return [f"{head} {ident}"]
    single = f"{head} {','.join(doc.cves)} / {ident}"
    if len(single) <= WIDTH:
        return [single]
    # Many CVEs: the comma-joined list continues on further centred lines,
    # broken only after a comma, the advisory id closing the last one.
    lines, current = [head], ""
    tokens = [f"{c}," for c in doc.cves[:-1]] + [f"{doc.cves[-1]} / {ident}"]
    for token in tokens:
        if current and len(current) + len(token) > WIDTH:
            lines.append(current)
            current = ""
        current += token
    return [*lines, current]


def attachments(doc: AdvisoryDoc) -> tuple[tuple[str, bytes], ...]:
    """(filename, content) of every attachment, in the order they are attached."""
    files = [(p.filename, p.content) for p in doc.patches]
    if doc.with_meta:
        files.append((doc.meta_filename, meta_json(doc)))
    return tuple(files)


def sha256_lines(doc: AdvisoryDoc) -> list[str]:
    """The transcript `sha256sum xsa<N>*` would print: C-locale glob order."""
    files = sorted(attachments(doc), key=lambda f: f[0].encode())
    return [f"{hashlib.sha256(content).hexdigest()}  {name}" for name, content in files]


def _resolution(doc: AdvisoryDoc) -> list[str]:
    lines = reflow(doc.sections[RESOLUTION])
    if doc.patches:
        column = max(len(p.filename) for p in doc.patches) + 2
        lines += [""] + [f"{p.filename:<{column}}{p.applies_to}" for p in doc.patches]
    if attachments(doc):
        lines += ["", f"$ sha256sum {doc.stem}*", *sha256_lines(doc), "$"]
    return lines


def _section(heading: str, body: list[str]) -> list[str]:
    return [heading, "=" * len(heading), "", *body, ""]


def render_text(doc: AdvisoryDoc, audience: Audience, *, recipients_line: str | None = None) -> str:
    """The exact text to clear-sign: LF line ends, no trailing whitespace, final newline."""
    lines: list[str] = []
    if audience is Audience.PREDISCLOSURE:
        who = recipients_line or f"For members of the {doc.project} pre-disclosure list only."
        problems = line_problems("recipients_line", who)
        if problems:
            raise AdvisoryFormatError(problems)
        lines.append(_centre(banner(doc)))
        lines += [_centre(line) for line in _wrap(who)]
        lines.append("")
    lines += [_centre(line) for line in _id_lines(doc)]
    lines += [_centre(f"version {doc.version}"), ""]
    lines += [_centre(line) for line in _wrap(doc.title)]
    lines.append("")
    if doc.updates:
        updates = [line for update in doc.updates for line in _wrap(update)]
        lines += _section(f"UPDATES IN VERSION {doc.version}", updates)
    notes = [name for name in doc.sections if _NOTE_RE.fullmatch(name)]
    for name in (*BEFORE_NOTES, *notes, *AFTER_NOTES):
        body = _resolution(doc) if name == RESOLUTION else reflow(doc.sections.get(name, ""))
        if body:
            lines += _section(name, body)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(line.rstrip() for line in lines) + "\n"


def meta_json(doc: AdvisoryDoc) -> bytes:
    """Deterministic: its hash is part of the signed text."""
    meta = {
        "prefix": doc.prefix,
        "number": doc.number,
        "version": doc.version,
        "title": doc.title,
        "cves": list(doc.cves),
        "public_time": iso_utc(doc.embargo_at),
        "patches": [
            {"file": p.filename, "applies_to": p.applies_to, "sha256": p.sha256}
            for p in doc.patches
        ],
    }
    return (json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode()
