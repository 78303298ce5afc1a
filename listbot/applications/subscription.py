"""Requests to subscribe by other means: they change nothing and get no reply."""

from __future__ import annotations

import re

from listbot.applications import check_text as tx

_COMMAND_SUFFIXES = ("-request", "-join", "-subscribe", "-leave", "-unsubscribe")
_COMMAND_SUBJECT_RE = re.compile(
    r"(?:re:\s*)?(?:(?:un)?subscribe(?:\s+\S+){0,2}|join|leave)\s*", re.IGNORECASE
)
_SUBSCRIBE_WORDS_RE = re.compile(
    r"\b(?:un)?subscri(?:be|ption)\b|\bjoin\b|\badd (?:me|us)\b|\bsign (?:me|us) up\b",
    re.IGNORECASE,
)
# A "please subscribe me" note is short; anything longer is treated as an
# (incomplete) application so that the sender learns what is required.
_MAX_SUBSCRIBE_WORDS = 30


def is_subscription_request(subject: str, body: str, recipient_local: str) -> bool:
    """A request to subscribe by other means: it changes nothing and gets no reply."""
    if recipient_local.lower().endswith(_COMMAND_SUFFIXES):
        return True
    text = tx.split_body(body, 20_000).text
    if tx.urls(text) or tx.word_count(text) > _MAX_SUBSCRIBE_WORDS:
        return False
    command = _COMMAND_SUBJECT_RE.fullmatch(tx.oneline(subject)) is not None
    return command or _SUBSCRIBE_WORDS_RE.search(text) is not None
