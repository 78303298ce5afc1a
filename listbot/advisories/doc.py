"""An advisory as a value: its fields, its sections, its patches, all validated.

`AdvisoryDoc` refuses to exist with any problem in it, and names every problem
at once: a document that constructs renders.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from types import MappingProxyType

from listbot.core.clock import ensure_utc
from listbot.core.errors import EX_DATAERR, ListbotError

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

NOTE_RE = re.compile(r"NOTE [A-Z0-9][A-Z0-9 ,'()/.-]*")
CVE_RE = re.compile(r"CVE-[0-9]{4}-[0-9]{4,}")
PREFIX_RE = re.compile(r"[A-Z]{2,10}")
_FILENAME_RE = re.compile(r"[A-Za-z0-9._-]+")
DOMAIN_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
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


def text_problems(name: str, value: str) -> list[str]:
    bad = sorted(
        {
            f"U+{ord(c):04X}"
            for c in value
            if c not in "\n\t" and unicodedata.category(c) in _BAD_CATEGORIES
        }
    )
    return [f"{name}: forbidden characters {', '.join(bad)}"] if bad else []


def is_known_heading(name: str) -> bool:
    return name in REQUIRED_SECTIONS or NOTE_RE.fullmatch(name) is not None


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
        if not is_known_heading(name):
            p.append(f"section {name!r}: unknown heading")
        p += text_problems(f"section {name}", text)
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
