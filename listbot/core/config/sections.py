"""The core sections of the document: [instance], [database], [listen], [project],
[team], [lists], [delivery] and [worker]."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from listbot.core.config.addresses import address_problems, unkeyed_deciders
from listbot.core.config.model import (
    Config,
    DeliveryConfig,
    Endpoint,
    ListConfig,
    ListKind,
    SmtpConfig,
    StartTLS,
    TeamMember,
)
from listbot.core.config.reader import Document, Reader, parse_endpoint
from listbot.core.mail.address import normalize_address


def _endpoint(r: Reader, key: str, default: str) -> Endpoint | None:
    text = r.get(key, str, default)
    if text == "":
        return None
    try:
        return parse_endpoint(text)
    except ValueError as exc:
        r.check(key, False, str(exc))
        return None


def _path(base: Path, text: str) -> Path:
    p = Path(text)
    return (p if p.is_absolute() else base / p).resolve()


def _team(r: Reader) -> tuple[str, str, tuple[TeamMember, ...]]:
    t = r.table("team")
    # No example.org default: mail would silently go out as someone else's team.
    t.check("address", "address" in t.data, "missing: the security team's public address")
    address = t.address("address", "security@example.org")
    name = t.get("name", str, "security team")
    members: list[TeamMember] = []
    for i, raw in enumerate(t.get("members", list, [])):
        if not isinstance(raw, dict):
            t.check(f"members[{i}]", False, "expected a table")
            continue
        m = Reader(raw, r.problems, f"team.members[{i}]")
        fpr = m.get("fingerprint", str, "").replace(" ", "").upper() or None
        if fpr is not None:
            m.check("fingerprint", len(fpr) == 40 and _is_hex(fpr), "expected 40 hex digits")
        member_address = m.address("address", address)
        m.check("address", member_address != address,
                "a team member needs a personal address, not the team alias")
        members.append(TeamMember(m.get("name", str, ""), member_address, fpr))
        m.finish()
    t.check("members", bool(members), "at least one team member is needed to receive team mail")
    t.finish()
    return address, name, tuple(members)


def _port_ok(url: str) -> bool:
    try:
        port = urlsplit(url).port  # ValueError when it is not a number
    except ValueError:
        return False
    return port is None or port > 0


def _is_hex(text: str) -> bool:
    return all(c in "0123456789ABCDEF" for c in text)


_LOCAL_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _decisions_local_part(lr: Reader) -> str:
    text = lr.get("decisions_local_part", str, "")
    lr.check("decisions_local_part", text == "" or bool(_LOCAL_PART.fullmatch(text)),
             "expected letters, digits, '.', '_' or '-' (no '+' or '@')")
    return text if _LOCAL_PART.fullmatch(text) else ""


def _check_replies(lists_table: Reader, result: dict[str, ListConfig],
                   members: tuple[TeamMember, ...]) -> None:
    """Every reply address can be received, and every decider can sign when they must."""
    for lc in result.values():
        for problem in address_problems(f"lists.{lc.name}", lc):
            lists_table.problems.append(problem)
        for key, who in unkeyed_deciders(lc, members):
            lists_table.problems.append(
                f"{key}: {who} has no key, but lists.{lc.name}.require_signed_decisions "
                "is true: set their fingerprint in [[team.members]] (and import the key) "
                "or set require_signed_decisions = false")
    taken = [f"{lc.local_part}@{lc.domain}".lower() for lc in result.values()]
    decisions = [f"{lc.decisions_local}@{lc.domain}".lower() for lc in result.values()]
    lists_table.check("*", len(set(taken + decisions)) == 2 * len(result),
                      "a decisions_local_part is another list's address or decisions address")


def _lists(r: Reader, hostname: str, members: tuple[TeamMember, ...]) -> dict[str, ListConfig]:
    lists_table = r.table("lists")
    result: dict[str, ListConfig] = {}
    for name in lists_table.data:
        lr = lists_table.table(name)
        kind_text = lr.get("kind", str, "")
        try:
            kind = ListKind(kind_text)
        except ValueError:
            lr.check("kind", False, f"expected one of {[k.value for k in ListKind]}")
            continue
        address = lr.address("address", f"{name}@{hostname}")
        moderators = []
        for i, mod in enumerate(lr.get("moderators", list, [])):
            try:
                moderators.append(normalize_address(str(mod)))
            except ValueError:
                lr.check(f"moderators[{i}]", False, f"not a valid address {mod!r}")
        result[name] = ListConfig(
            name=name,
            kind=kind,
            address=address,
            display_name=lr.get("display_name", str, name),
            list_id=lr.get("list_id", str, address.replace("@", ".")),
            moderators=tuple(moderators),
            require_signed_decisions=lr.get("require_signed_decisions", bool, True),
            help_url=lr.get("help_url", str, ""),
            decisions_local_part=_decisions_local_part(lr),
        )
        lr.finish()
    kinds = [lc.kind for lc in result.values()]
    for kind in ListKind:
        lists_table.check(str(kind), kinds.count(kind) <= 1, f"more than one list of kind {kind}")
    addresses = [lc.address for lc in result.values()]
    lists_table.check("*", len(set(addresses)) == len(addresses), "two lists share an address")
    _check_replies(lists_table, result, members)
    return result


def _delivery(r: Reader, state_dir: Path) -> DeliveryConfig:
    d = r.table("delivery")
    transport = d.get("transport", str, "maildir")
    d.check("transport", transport in ("smtp", "maildir"), "expected 'smtp' or 'maildir'")
    s = d.table("smtp")
    starttls_text = s.get("starttls", str, "optional")
    try:
        starttls = StartTLS(starttls_text)
    except ValueError:
        s.check("starttls", False, "expected 'required', 'optional' or 'none'")
        starttls = StartTLS.OPTIONAL
    password_file = s.get("password_file", str, "")
    smtp = SmtpConfig(
        host=s.get("host", str, "127.0.0.1"),
        port=s.get("port", int, 25),
        starttls=starttls,
        username=s.get("username", str, "") or None,
        password_file=Path(password_file) if password_file else None,
        timeout_seconds=s.get("timeout_seconds", float, 30.0),
        pool_size=s.get("pool_size", int, 4),
        max_recipients_per_transaction=s.get("max_recipients_per_transaction", int, 50),
    )
    s.check("pool_size", smtp.pool_size >= 1, "must be at least 1")
    s.check("max_recipients_per_transaction", smtp.max_recipients_per_transaction >= 1,
            "must be at least 1")
    s.finish()
    cfg = DeliveryConfig(
        transport=transport,
        maildir=_path(state_dir, d.get("maildir", str, "outgoing")),
        smtp=smtp,
        retry_period_seconds=d.get("retry_period_seconds", int, 5 * 24 * 3600),
        backoff_initial_seconds=d.get("backoff_initial_seconds", float, 30.0),
        backoff_max_seconds=d.get("backoff_max_seconds", float, 3600.0),
    )
    d.check("backoff_initial_seconds", cfg.backoff_initial_seconds > 0, "must be positive")
    d.finish()
    return cfg


# Sections each owned by the module that uses them; listbot.settings parses every one
# in the same pass as the core sections.
EXTENSION_SECTIONS = ("pgp", "cases", "advisories", "applications", "imap",
                      "metrics", "rules", "moderation", "members")


def parse_core(doc: Document, base_dir: Path, source: Path | None,
               problems: list[str]) -> Config:
    """The core sections with defaults in place of bad values, each problem added to
    `problems`, so the other sections are checked in the same pass even when a core
    key is wrong."""
    r = Reader(doc, problems)
    inst = r.table("instance")
    inst.check("hostname", "hostname" in inst.data,
               "missing: the host name listbot greets with and puts in Message-IDs")
    hostname = inst.get("hostname", str, "lists.example.org")
    state_dir = _path(base_dir, inst.get("state_dir", str, "state"))
    log_format = inst.get("log_format", str, "auto")
    inst.check("log_format", log_format in ("auto", "json", "console"),
               "expected 'auto', 'json' or 'console'")
    instance_name = inst.get("name", str, "listbot")
    inst.finish()
    db = r.table("database")
    url = db.get("url", str, "") or f"sqlite+aiosqlite:///{state_dir / 'listbot.db'}"
    db.check("url", url.startswith(("sqlite+aiosqlite://", "postgresql+psycopg://")),
             "expected sqlite+aiosqlite:// or postgresql+psycopg://")
    db.check("url", _port_ok(url), "the port is not a number from 1 to 65535")
    db.finish()
    listen = r.table("listen")
    lmtp = _endpoint(listen, "lmtp", "127.0.0.1:8024")
    smtp = _endpoint(listen, "smtp", "127.0.0.1:8025")
    max_bytes = listen.get("max_message_bytes", int, 25 * 1024 * 1024)
    listen.check("max_message_bytes", max_bytes > 0, "must be positive")
    listen.finish()
    proj = r.table("project")
    project_name = proj.get("name", str, "Example")
    proj.finish(known_extra=("advisory_prefix", "case_prefix", "security_contact",
                             "public_lists", "public_url"))
    team_address, team_name, team_members = _team(r)
    lists = _lists(r, hostname, team_members)
    delivery = _delivery(r, state_dir)
    work = r.table("worker")
    cfg = Config(
        source=source,
        instance_name=instance_name,
        hostname=hostname,
        state_dir=state_dir,
        database_url=url,
        lmtp=lmtp,
        smtp=smtp,
        max_message_bytes=max_bytes,
        project_name=project_name,
        team_address=team_address,
        team_name=team_name,
        team_members=team_members,
        lists=lists,
        delivery=delivery,
        reply_rate_per_hour=work.get("reply_rate_per_hour", int, 10),
        worker_batch=work.get("batch", int, 64),
        lease_seconds=work.get("lease_seconds", int, 300),
        poll_interval_seconds=work.get("poll_interval_seconds", float, 5.0),
        log_format=log_format,
    )
    work.finish()
    r.finish(known_extra=EXTENSION_SECTIONS)
    return cfg
