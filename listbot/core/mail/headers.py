"""Header values and header lines listbot writes: no CR or LF from received data.

Pure functions only. The interpreter here predates the fix for CVE-2024-6923 (an
encoded newline in a parsed header becomes a real header line when written out),
so every value is cleaned and every written line is verified to be one header.
"""

from __future__ import annotations

import re
import unicodedata
from email import policy
from email.parser import BytesHeaderParser

MAX_HEADER_VALUE = 998
# encode_header accepts longer values (References) and folds them.
MAX_ENCODED_VALUE = 16000
FOLD_WIDTH = 78
# An unbreakable ASCII word longer than this is carried as encoded-words so no
# line passes the 998-octet limit of RFC 5322.
MAX_PLAIN_WORD = 900

_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _clean(value: str, limit: int) -> str:
    chars = []
    for c in value:
        category = unicodedata.category(c)
        if category in ("Cc", "Zl", "Zp") or c in _BIDI:
            chars.append(" ")
        elif category == "Cs":
            chars.append("\ufffd")
        else:
            chars.append(c)
    return " ".join("".join(chars).split())[:limit].rstrip()


def safe_header_value(value: str, *, max_length: int = MAX_HEADER_VALUE) -> str:
    """A value fit for any header listbot writes; never contains CR or LF.

    Encoded-words are decoded first, because that is where a received header
    hides its newlines (CVE-2024-6923); the decoded text is then cleaned.
    """
    text = _clean(str(value), MAX_ENCODED_VALUE)
    return _clean(_decode_words(text) if "=?" in text else text, max_length)


def _decode_words(text: str) -> str:
    try:
        return str(policy.default.header_factory("Subject", text))
    except Exception:  # keep the undecoded text: the caller cleans it anyway
        return text


_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,75}")
_Q_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_EW_ROOM = 75 - len("=?utf-8?b?") - len("?=")


def _q_char(c: str) -> str:
    if c == " ":
        return "_"
    if c in _Q_SAFE:
        return c
    return "".join(f"={b:02X}" for b in c.encode("utf-8"))


def _b_len(n_bytes: int) -> int:
    return 4 * ((n_bytes + 2) // 3)


def _encoded_words(text: str) -> list[str]:
    """Encoded-words for text; never splits a character across two words."""
    import base64

    raw = text.encode("utf-8")
    use_q = sum(len(_q_char(c)) for c in text) <= _b_len(len(raw))
    words: list[str] = []
    chunk = ""
    for c in text:
        candidate = chunk + c
        size = (len("".join(map(_q_char, candidate))) if use_q
                else _b_len(len(candidate.encode("utf-8"))))
        if size > _EW_ROOM and chunk:
            words.append(chunk)
            chunk = c
        else:
            chunk = candidate
    words.append(chunk)
    if use_q:
        return ["=?utf-8?q?" + "".join(map(_q_char, w)) + "?=" for w in words]
    return ["=?utf-8?b?" + base64.b64encode(w.encode("utf-8")).decode("ascii") + "?="
            for w in words]


def _needs_encoding(word: str) -> bool:
    return not word.isascii() or "=?" in word or len(word) > MAX_PLAIN_WORD


def _tokens(text: str) -> list[str]:
    """Words to write, separated on output by one space or a fold.

    A run of words needing encoding is encoded as a whole, its inner spaces
    inside the encoded-words, since a decoder drops the whitespace between two
    adjacent encoded-words.
    """
    out: list[str] = []
    run: list[str] = []
    for word in [*text.split(" "), None]:
        if word is not None and _needs_encoding(word):
            run.append(word)
            continue
        if run:
            out.extend(_encoded_words(" ".join(run)))
            run = []
        if word is not None:
            out.append(word)
    return out


def _verify_one_header(name: str, data: bytes) -> None:
    if not data.endswith(b"\r\n") or not data.isascii():
        raise ValueError("header failed verification: ending or non-ASCII")
    lines = data[:-2].split(b"\r\n")
    if not lines[0].startswith(name.encode("ascii") + b":"):
        raise ValueError("header failed verification: name")
    for i, line in enumerate(lines):
        if b"\r" in line or b"\n" in line or len(line) > 998:
            raise ValueError("header failed verification: line")
        if i and (not line.startswith(b" ") or not line.strip()):
            raise ValueError("header failed verification: continuation")


def encode_header(name: str, value: str) -> bytes:
    """One header line ``Name: value`` with CRLF, folded, verified to be one header.

    The value is written as text: ASCII words as they are, non-ASCII words (and
    anything that would decode as an encoded-word) as UTF-8 encoded-words, so a
    reader decodes exactly the cleaned text. Address headers need their value
    already formatted by the caller.
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError("invalid header name")
    text = _clean(str(value), MAX_ENCODED_VALUE)
    line = name + ":"
    lines: list[str] = []
    first = True
    for token in _tokens(text) if text else []:
        if first or len(line) + 1 + len(token) <= FOLD_WIDTH:
            line += " " + token
        else:
            lines.append(line)
            line = " " + token
        first = False
    lines.append(line)
    data = ("\r\n".join(lines) + "\r\n").encode("ascii")
    _verify_one_header(name, data)
    parsed = BytesHeaderParser(policy=policy.default).parsebytes(data + b"\r\n")
    if [k.lower() for k in parsed] != [name.lower()]:
        raise ValueError("header failed verification: reparse")
    return data
