"""Whether a link or an address given in an application is acceptable, and why not."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from listbot.applications.policy import AppPolicy, re2_search


def classify_link(url: str, policy: AppPolicy) -> str | None:
    """None for an ordinary public web page; otherwise why the link is not acceptable."""
    if "://" not in url:
        return "not a full link: give the address starting with https://"
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return "not a valid web address"
    if parts.scheme.lower() not in ("http", "https"):
        return f"not an http(s) link ({parts.scheme} scheme)"
    if parts.username is not None or parts.password is not None:
        return "carries a user name or password"
    host = (parts.hostname or "").lower().rstrip(".")
    return _host_problem(host) or _site_problem(host, parts.path or "/", policy)


def _host_problem(host: str) -> str | None:
    if not host:
        return "has no host name"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return "an IP address, not a public web page under your domain"
    if "." not in host or host.endswith((".local", ".internal", ".localhost")):
        return "not a public host name"
    return None


def _site_problem(host: str, path: str, policy: AppPolicy) -> str | None:
    if under(host, tuple(d.lower() for d in policy.link_shortener_domains)):
        return "a URL shortener hides the page: give the page's own address"
    for domain, what in policy.link_deny_domains:
        if under(host, (domain.lower(),)):
            return f"{what} ({domain}), not an ordinary web page"
    target = host + path.lower()
    for pattern, what in policy.link_deny_patterns:
        if re2_search(pattern, target):
            return what
    return None


def classify_alias(address: str, policy: AppPolicy) -> str | None:
    """None for a role address; otherwise why it cannot be the list alias."""
    match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._%+-]{0,63})@([A-Za-z0-9.-]{1,253})", address)
    if match is None or "." not in match.group(2):
        return "not an e-mail address"
    local = match.group(1).split("+", 1)[0].lower()
    domain = match.group(2).lower()
    if under(domain, tuple(d.lower() for d in policy.own_domains)):
        return "one of the project's own addresses"
    if under(domain, tuple(d.lower() for d in policy.freemail_domains)):
        return "a free-mail address, not an address of your organisation"
    return _local_part_problem(local, policy)


def _local_part_problem(local: str, policy: AppPolicy) -> str | None:
    if any(re2_search(p, local) for p in policy.role_deny_patterns):
        return "a system address (no-reply, bounces), not a role alias that people read"
    project_token = rf"(?i)(^|[._+-]){re.escape(policy.project_name.lower())}([._+-]|$)"
    if (any(re2_search(p, local) for p in policy.role_allow_patterns)
            or re2_search(project_token, local)):
        return None
    if any(re2_search(p, local) for p in policy.personal_localpart_patterns):
        return "looks like a person's address (name.surname); give a role alias"
    names = {n.lower() for n in policy.common_first_names}
    if local in names or (local[:-1] in names and len(local) > 3):
        return "looks like a person's address (a first name); give a role alias"
    return None


def under(host: str, domains: tuple[str, ...]) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)
