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
from datetime import datetime

from listbot.advisories.doc import (
    AFTER_NOTES,
    BEFORE_NOTES,
    NOTE_RE,
    RESOLUTION,
    AdvisoryDoc,
    AdvisoryFormatError,
    Audience,
    line_problems,
)
from listbot.core.clock import ensure_utc

WIDTH = 70
_LIST_MARKER_RE = re.compile(r"(?:[-*]|[0-9]{1,2}[.)]) ")


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
    notes = [name for name in doc.sections if NOTE_RE.fullmatch(name)]
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
