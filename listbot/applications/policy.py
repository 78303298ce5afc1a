"""What the application check accepts: the list's policy, its patterns and lists of names.

Patterns are RE2 (linear time): they come from the configuration.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import re2

from listbot.core.errors import ConfigError

# Local parts that name a function, not a person.  Substrings for words that
# hardly occur inside names; whole tokens for short ones.
_DEFAULT_ROLE_ALLOW = (
    r"(?i)(secur|psirt|csirt|sirt|cert|vuln|disclos|embargo|advisor|incident|infosec)",
    r"(?i)(^|[._+-])(sec|soc|noc|ops|team|admin|sysadmin|response|alerts?|lists?|announce)"
    r"([._+-]|$)",
)
_DEFAULT_ROLE_DENY = (r"(?i)^(no-?reply|do-?not-?reply|mailer-daemon|bounces?|postmaster)$",)
_DEFAULT_PERSONAL = (
    r"(?i)^[a-z]+([._-][a-z]+){1,2}$",  # first.last, first_last, f.last, first.m.last
)
_DEFAULT_FIRST_NAMES = (
    "adam", "alex", "alice", "andrea", "andrew", "anna", "anne", "ben", "bob", "carlos",
    "chris", "claire", "daniel", "david", "emma", "eric", "eva", "frank", "george", "hans",
    "ian", "jack", "james", "jan", "jane", "jean", "jens", "john", "jose", "juan", "julia",
    "karl", "kate", "laura", "lisa", "maria", "mark", "martin", "mary", "michael", "mike",
    "nick", "olga", "paul", "peter", "robert", "sam", "sarah", "stefan", "steve", "susan",
    "thomas", "tom", "wei", "yuki",
)  # fmt: skip
_DEFAULT_FREEMAIL = (
    "gmail.com", "googlemail.com", "yahoo.com", "hotmail.com", "outlook.com", "live.com",
    "msn.com", "aol.com", "icloud.com", "me.com", "gmx.de", "gmx.net", "web.de",
    "proton.me", "protonmail.com", "mail.ru", "yandex.ru", "qq.com", "163.com",
    "zoho.com", "fastmail.com", "tutanota.com",
)  # fmt: skip
_DEFAULT_LINK_DENY_DOMAINS = (
    ("youtube.com", "a video"), ("youtu.be", "a video"), ("vimeo.com", "a video"),
    ("dailymotion.com", "a video"), ("twitter.com", "a social media post"),
    ("x.com", "a social media post"), ("facebook.com", "a social media post"),
    ("linkedin.com", "a social media post"), ("instagram.com", "a social media post"),
    ("tiktok.com", "a social media post"), ("mastodon.social", "a social media post"),
    ("reddit.com", "a social media post"), ("bsky.app", "a social media post"),
    ("medium.com", "a blog post"), ("substack.com", "a blog post"),
    ("blogspot.com", "a blog post"), ("wordpress.com", "a blog post"),
    ("tumblr.com", "a blog post"),
)  # fmt: skip
_DEFAULT_SHORTENERS = (
    "bit.ly", "t.co", "tinyurl.com", "goo.gl", "ow.ly", "is.gd", "buff.ly", "lnkd.in",
    "t.ly", "rebrand.ly", "cutt.ly", "s.id",
)  # fmt: skip
# Applied to "host/path" in lower case.
_DEFAULT_LINK_DENY_PATTERNS = (
    (r"\.pdf$", "a PDF document, not a web page"),
    (r"\.(docx?|odt|pptx?|xlsx?|zip)$", "a document file, not a web page"),
    (r"\.(mp4|webm|mov|avi|mkv)$", "a video"),
    (r"^blog\.|/blogs?(/|$)", "a blog post, not an ordinary web page"),
    (r"/(login|log-in|signin|sign-in|sign_in|sso|auth)(/|$|\.)", "a login page, not public"),
)


@dataclass(frozen=True)
class AppPolicy:
    project_name: str = "Xen"
    role_allow_patterns: tuple[str, ...] = _DEFAULT_ROLE_ALLOW
    role_deny_patterns: tuple[str, ...] = _DEFAULT_ROLE_DENY
    personal_localpart_patterns: tuple[str, ...] = _DEFAULT_PERSONAL
    common_first_names: tuple[str, ...] = _DEFAULT_FIRST_NAMES
    freemail_domains: tuple[str, ...] = _DEFAULT_FREEMAIL
    own_domains: tuple[str, ...] = ()  # the project's own addresses are never an alias
    link_deny_domains: tuple[tuple[str, str], ...] = _DEFAULT_LINK_DENY_DOMAINS
    link_shortener_domains: tuple[str, ...] = _DEFAULT_SHORTENERS
    link_deny_patterns: tuple[tuple[str, str], ...] = _DEFAULT_LINK_DENY_PATTERNS
    policy_url: str | None = None
    max_body_chars: int = 100_000

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not self.project_name.strip():
            problems.append("project_name: must not be empty")
        named = [
            *(("role_allow_patterns", p) for p in self.role_allow_patterns),
            *(("role_deny_patterns", p) for p in self.role_deny_patterns),
            *(("personal_localpart_patterns", p) for p in self.personal_localpart_patterns),
            *(("link_deny_patterns", p) for p, _ in self.link_deny_patterns),
        ]
        for name, pattern in named:
            try:
                _re2(pattern)
            except Exception as exc:  # re2 raises its own error type
                problems.append(f"{name}: bad pattern {pattern!r}: {exc}")
        if problems:
            raise ConfigError(problems)


@functools.lru_cache(maxsize=512)
def _re2(pattern: str) -> Any:
    return re2.compile(pattern)


def re2_search(pattern: str, text: str) -> bool:
    return _re2(pattern).search(text) is not None
