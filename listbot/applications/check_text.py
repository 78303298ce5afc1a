"""Text-level helpers for the application check: body, sentences, fields, anchors.

Everything here works on plain strings and knows nothing of the checklist, so
the heuristics can be read (and tested) one at a time.  Mail bodies are
attacker-controlled: every pattern below is linear or tightly bounded, and the
caller caps the length of the text before it gets here.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

QUOTE_LIMIT = 200

# Where a reply quotes the earlier conversation without ">" markers.
_REPLY_CUT_RE = re.compile(
    r"^[ \t]*(?:On [^\n]{0,300}wrote:|-{2,}[ \t]*Original Message[ \t]*-{2,})[ \t]*$"
    r"|^From: [^\n]{1,300}\n(?:Sent|Date): ",
    re.MULTILINE | re.IGNORECASE,
)
_CLOSING_RE = re.compile(
    r"^[ \t]*(?:(?:best|kind|warm|many thanks and|with best|with kind)[ \t]+regards|regards"
    r"|thanks(?:[ \t]+again)?|thank[ \t]+you|cheers|sincerely|yours[ \t]+(?:sincerely|faithfully)"
    r"|best(?:[ \t]+wishes)?|all[ \t]+the[ \t]+best)[ \t]*[,.!]?[ \t]*$",
    re.IGNORECASE,
)
# A signature that starts at a closing line is at most this many lines long;
# anything longer is more likely the body going on after a "Thanks," line.
_MAX_CLOSING_SIGNATURE_LINES = 12

_FIELD_LINE_RE = re.compile(r"^[ \t]{0,3}([A-Za-z0-9(][A-Za-z0-9 ()/'&.-]{0,60}?)[ \t]*:(.*)$")
_PLACEHOLDER_RE = re.compile(r"^\[[^\]\n]*\]$")
# Sentence ends, and the start of each bullet or numbered item.
_SENTENCE_SPLIT_RE = re.compile(
    r"(?<=[.!?])\s+(?=\S)|\n(?=[ \t]{0,8}(?:[-*\u2022]|[0-9]{1,2}[.)])[ \t])"
)
_PARAGRAPH_SPLIT_RE = re.compile(r"\n[ \t]*\n")
_BULLET_RE = re.compile(r"^(?:[-*\u2022]|[0-9]{1,2}[.)])\s+")

# Only scheme-qualified URLs and bare www. hosts; the latter so that a link
# without its scheme is reported as such rather than silently missed.
_URL_RE = re.compile(r"(?<![\w@.-])(?:[A-Za-z][A-Za-z0-9+.-]{0,15}://|www\.)[^\s<>\"'`]+")
_ADDRESS_RE = re.compile(
    r"(?<![\w.+%-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,63}(?![\w-])"
)
_HOST_RE = re.compile(
    r"(?<![\w@.-])(?:\*\.)?((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}"
    r"(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59}))(?![\w-])"
)
_TRAILING_PUNCT = ".,;:!?'\"]}>"


def oneline(text: str, limit: int = QUOTE_LIMIT) -> str:
    """One line of at most `limit` characters: no CR, LF or other control character."""
    cleaned = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)
    cleaned = " ".join(cleaned.split())
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 3].rstrip() + "..."
    return cleaned


@dataclass(frozen=True)
class Body:
    """The applicant's own words, split from the signature and any quoted mail."""

    text: str
    signature: str


def split_body(text: str, max_chars: int) -> Body:
    text = text[:max_chars].replace("\r\n", "\n").replace("\r", "\n")
    cut = _REPLY_CUT_RE.search(text)
    if cut is not None:
        text = text[: cut.start()]
    lines = [line for line in text.split("\n") if not line.lstrip().startswith(">")]
    start = _signature_start(lines)
    return Body(text="\n".join(lines[:start]), signature="\n".join(lines[start:]))


def _signature_start(lines: list[str]) -> int:
    for index, line in enumerate(lines):
        if line.rstrip() == "--" or line == "-- ":
            return index
    last = len(lines)
    while last > 0 and not lines[last - 1].strip():
        last -= 1
    for index in range(last - 1, max(-1, last - 1 - _MAX_CLOSING_SIGNATURE_LINES), -1):
        if _CLOSING_RE.match(lines[index]):
            return index
    return len(lines)


def sentences(text: str) -> list[str]:
    """Sentences, never spanning a paragraph; bullet lists without full stops stay whole."""
    found: list[str] = []
    for paragraph in _PARAGRAPH_SPLIT_RE.split(text):
        for sentence in _SENTENCE_SPLIT_RE.split(paragraph.strip()):
            # Wrapped lines are one sentence: cues must match across the wrap.
            flat = " ".join(sentence.split())
            if flat:
                found.append(flat)
    return found


def unbulleted(sentence: str) -> str:
    return _BULLET_RE.sub("", sentence, count=1)


def is_placeholder(value: str) -> bool:
    return _PLACEHOLDER_RE.match(value.strip()) is not None


def parse_fields(lines: list[str], label_key: dict[str, str], project: str) -> dict[str, str]:
    """`Label: value` lines whose label is known, by canonical key.

    A value goes on over the following lines (mail clients wrap long lines)
    until a blank line or the next known label; after a blank line it goes on
    only with indented lines.  A repeated label adds to its value, so two
    "Role alias:" lines give two aliases, not the last one.  Template
    placeholders ("[...]") count as empty.
    """
    values: dict[str, list[str]] = {}
    current: str | None = None
    after_blank = False
    for line in lines:
        match = _FIELD_LINE_RE.match(line)
        key = label_key.get(normalise_label(match.group(1), project)) if match else None
        if match is not None and key is not None:
            current = key
            values.setdefault(key, []).append(match.group(2).strip())
            after_blank = False
        elif current is None:
            continue
        elif not line.strip():
            after_blank = True
        elif after_blank and line[:1] not in (" ", "\t"):
            current = None
        else:
            after_blank = False
            values[current].append(line.strip())
    return {
        key: "\n".join(part for part in parts if part and not is_placeholder(part)).strip()
        for key, parts in values.items()
    }


def normalise_label(label: str, project: str) -> str:
    norm = label.lower().replace("(s)", "").replace("(es)", "")
    norm = re.sub(r"^(?:\([a-z0-9]\)|[0-9]{1,2}[.)])\s*", "", norm)
    if project:
        norm = norm.replace(project.lower(), "project")
    norm = " ".join(norm.split())
    return re.sub(r" (?:urls?|links?|pages?)$", "", norm)


@dataclass(frozen=True)
class Anchor:
    """A URL or e-mail address inside a sentence, with the words around it."""

    value: str
    is_url: bool
    before: str
    after: str


def anchors(sentence: str) -> list[Anchor]:
    """URLs and addresses in order; `before`/`after` stop at the neighbouring anchor."""
    spans: list[tuple[int, int, str, bool]] = []
    blanked = sentence
    for match in _URL_RE.finditer(sentence):
        url = _trim_url(match.group(0))
        spans.append((match.start(), match.start() + len(url), url, True))
        blanked = blanked[: match.start()] + " " * len(url) + blanked[match.start() + len(url) :]
    for match in _ADDRESS_RE.finditer(blanked):
        spans.append((match.start(), match.end(), match.group(0), False))
    spans.sort()
    result: list[Anchor] = []
    for index, (start, end, value, is_url) in enumerate(spans):
        prev_end = spans[index - 1][1] if index else 0
        next_start = spans[index + 1][0] if index + 1 < len(spans) else len(sentence)
        result.append(
            Anchor(
                value=value,
                is_url=is_url,
                before=sentence[prev_end:start],
                after=sentence[end:next_start],
            )
        )
    return result


def _trim_url(url: str) -> str:
    while url and url[-1] in _TRAILING_PUNCT:
        url = url[:-1]
    # A closing parenthesis belongs to the URL only if it opened one.
    while url.endswith(")") and url.count("(") < url.count(")"):
        url = url[:-1]
    return url


def urls(text: str) -> list[str]:
    return [a.value for a in anchors(text) if a.is_url]


def addresses(text: str) -> list[str]:
    """Addresses, domain lowercased, first occurrence order, without duplicates."""
    seen: dict[str, None] = {}
    for anchor in anchors(text):
        if not anchor.is_url:
            local, _, domain = anchor.value.rpartition("@")
            seen.setdefault(f"{local}@{domain.lower()}", None)
    return list(seen)


def hostnames(text: str) -> list[str]:
    """Host names written in the text or as hosts of its URLs; not those of addresses."""
    seen: dict[str, None] = {}
    blanked = text
    for anchor in anchors(text):
        if anchor.is_url:
            host = _url_host(anchor.value)
            if host:
                seen.setdefault(host, None)
        blanked = blanked.replace(anchor.value, " ")
    for match in _HOST_RE.finditer(blanked):
        seen.setdefault(match.group(1).lower(), None)
    return list(seen)


def _url_host(url: str) -> str:
    rest = url.split("://", 1)[1] if "://" in url else url
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rpartition("@")[2]
    host = host.split(":", 1)[0].lower()
    return host if _HOST_RE.fullmatch(host) else ""


def word_count(text: str) -> int:
    return len(re.findall(r"\w+", text))
