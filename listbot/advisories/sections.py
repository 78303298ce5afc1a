"""The section file: the advisory's prose as the team writes it, under its own headings."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from listbot.advisories.doc import (
    REQUIRED_SECTIONS,
    AdvisoryFormatError,
    is_known_heading,
    text_problems,
)


def _heading_problems(
    where: str, heading: str, underline: str, seen: Sequence[tuple[str, int]]
) -> list[str]:
    p: list[str] = []
    if len(underline) != len(heading):
        p.append(f"{where}: underline of {heading!r} is {len(underline)} long, not {len(heading)}")
    if heading.startswith("UPDATES IN VERSION"):
        p.append(f"{where}: {heading!r} is given as the list of updates, not as a section")
    elif not is_known_heading(heading):
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
        problems += text_problems(f"section {name}", body)
    if problems:
        raise AdvisoryFormatError(problems)
    return sections
