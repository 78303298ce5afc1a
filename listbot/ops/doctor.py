"""`listbot doctor`: each check gives OK/WARN/FAIL and, when not OK, what to do."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from listbot.core.clock import Clock
from listbot.core.config import Config, Endpoint
from listbot.core.errors import ConfigError, DatabaseRefused, ListbotError
from listbot.core.mail.keyring import PgpConfig
from listbot.core.mail.pgp import Keyring
from listbot.core.mail.pgp_keys import normalise_fingerprint
from listbot.core.store import Store
from listbot.core.store import cases as case_store
from listbot.discuss.held import load_checked_rules
from listbot.settings import SECTIONS, Report


class Level(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Finding:
    level: Level
    check: str
    detail: str
    action: str = ""


def ok(check: str, detail: str) -> Finding:
    return Finding(Level.OK, check, detail)


def sections(report: Report) -> list[Finding]:
    out = []
    for name in SECTIONS:
        if problems := report.section_problems[name]:
            out.append(Finding(Level.FAIL, f"config [{name}]", "; ".join(problems),
                               "fix these keys in the config file"))
        else:
            out.append(ok(f"config [{name}]", "valid"))
    return out


def rules(report: Report) -> Finding:
    if problems := report.section_problems["rules"]:
        return Finding(Level.FAIL, "rules", "; ".join(problems),
                       "fix the [rules] section of the config file")
    directory = report.settings.rules.directory
    if not directory.is_dir():
        return Finding(Level.WARN, "rules", f"no rule directory {directory}",
                       "create it or set [rules] dir")
    try:
        # The same check the daemon makes before it takes a rule set into service.
        load_checked_rules(directory)
    except ConfigError as exc:
        return Finding(Level.FAIL, "rules", "; ".join(exc.problems[:3]),
                       "fix the rule file (the daemon keeps the old rules meanwhile)")
    return ok("rules", f"{directory} valid")


async def database(store: Store) -> Finding:
    try:
        pending = await store.pending_migrations()
    except DatabaseRefused as exc:
        # Not "database": a refusal is the configuration's to fix, and exits 78.
        return Finding(Level.FAIL, "database access", str(exc),
                       "fix the user, password or database name in [database] url")
    except ListbotError as exc:
        return Finding(Level.FAIL, "database", str(exc),
                       "start the database or fix [database] url (exit 75)")
    if pending:
        return Finding(Level.WARN, "database", f"migrations pending: {', '.join(pending)}",
                       "run `listbot db upgrade` (serve also does it at start)")
    return ok("database", "reachable and migrated")


async def checked_keys(report: Report, store: Store | None, clock: Clock,
                       days: int | None) -> list[Finding]:
    """`keys` with a valid [pgp] section; ConfigError with its problems otherwise."""
    if problems := report.section_problems["pgp"]:
        raise ConfigError(list(problems))
    return await keys(report.settings.core, report.settings.pgp, store, clock, days)


async def keys(cfg: Config, pgp: PgpConfig, store: Store | None, clock: Clock,
               days: int | None) -> list[Finding]:
    window = timedelta(days=pgp.expiry_warning_days if days is None else days)
    ring = Keyring(pgp.home)
    out: list[Finding] = []
    now = clock.now()
    if pgp.team_fingerprint is None:
        out.append(Finding(Level.WARN, "team key", "pgp.team_fingerprint not set",
                           "import the team key into pgp.home and set its fingerprint"))
    else:
        info = await ring.key_info(pgp.team_fingerprint, check_secret=True)
        if info is None or not info.has_secret:
            what = "missing" if info is None else "present without its secret key"
            out.append(Finding(Level.FAIL, "team key", f"{pgp.team_fingerprint} {what}",
                               f"gpg --homedir {pgp.home} --import the team secret key"))
        elif not info.usable_at(now):
            out.append(Finding(Level.FAIL, "team key", "revoked or expired",
                               "extend or replace the team key"))
        else:
            out.append(ok("team key", f"{pgp.team_fingerprint} with secret"))
    holders = [(f"moderator {m.address}", m.fingerprint) for m in cfg.team_members]
    if store is not None:
        holders += [(f"member {m.name}", m.fingerprint) for m in await store.members()]
        async with store.read() as tx:
            holders += [(f"party {p.address} of {p.case_id}", p.fingerprint)
                        for p in await case_store.keyed_parties(tx)]
    infos = await ring.keys_info([f for _, f in holders if f])  # one gpg listing
    for who, fpr in holders:
        if fpr is None:
            continue
        info = infos.get(normalise_fingerprint(fpr))
        if info is None:
            out.append(Finding(Level.FAIL, "key", f"{who}: {fpr} not in the keyring",
                               "import their public key"))
        elif not info.usable_at(now):
            out.append(Finding(Level.FAIL, "key", f"{who}: key revoked or expired",
                               "ask them for a new key"))
        elif info.expires_within(now, window):
            out.append(Finding(Level.WARN, "key", f"{who}: expires {info.expires:%Y-%m-%d}",
                               "ask them to extend the expiry and send the key again"))
    if not any(f.check == "key" for f in out):
        out.append(ok("keys", f"no member, moderator or party key expires within "
                              f"{window.days} days"))
    return out


async def reachable(name: str, endpoint: Endpoint, seconds: float) -> Finding:
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(endpoint.host, endpoint.port), seconds)
    except (OSError, TimeoutError) as exc:
        return Finding(Level.FAIL, name, f"{endpoint}: {type(exc).__name__}",
                       "check the host/port and the firewall; mail waits in the outbox")
    writer.close()
    return ok(name, f"{endpoint} accepts connections")


def bindable(name: str, endpoint: Endpoint) -> Finding:
    family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((endpoint.host, endpoint.port))
        except OSError as exc:
            return Finding(Level.WARN, f"listen {name}", f"{endpoint}: {exc.strerror}",
                           "fine if listbot is running; otherwise free the port")
    return ok(f"listen {name}", f"{endpoint} bindable")


def moderators(cfg: Config) -> list[Finding]:
    """Moderation mail carries the held post and is team mail: the audience gate refuses
    it to a moderator who is not on the team, so such a moderator never sees a post."""
    outside = [(lc.name, m) for lc in cfg.lists.values() for m in lc.moderators
               if m not in cfg.team_addresses]
    if not any(lc.moderators for lc in cfg.lists.values()):
        return []
    if not outside:
        return [ok("moderators", "all on the team")]
    return [Finding(Level.WARN, "moderators",
                    f"{address} moderates {name} but is not on the team: the gate "
                    "refuses them every held post",
                    "add them to [team] members or remove them from the list's moderators")
            for name, address in outside]


def listeners(report: Report) -> list[Finding]:
    cfg = report.settings.core
    out = [bindable(n, e) for n, e in (("lmtp", cfg.lmtp), ("smtp", cfg.smtp)) if e]
    mcfg = report.settings.metrics
    if mcfg is not None and not report.section_problems["metrics"]:
        out.append(bindable("metrics", mcfg.listen))
    return out


def imap_secret(report: Report) -> list[Finding]:
    icfg = report.settings.imap
    if icfg is None or report.section_problems["imap"]:
        return []
    try:
        icfg.password()
    except OSError as exc:
        return [Finding(Level.FAIL, "imap", f"password file: {exc.strerror}",
                        "make imap.password_file readable by the service user")]
    return [ok("imap", f"{icfg.mailbox} configured")]


async def run_checks(report: Report, store_factory: Callable[[], Store], clock: Clock,
                     days: int | None) -> list[Finding]:
    """Every check of one lenient load: a bad section fails its own checks only."""
    cfg = report.settings.core
    findings = [ok("config", f"{cfg.source} valid"), *sections(report), rules(report),
                *moderators(cfg)]
    store = store_factory()
    try:
        db = await database(store)
        findings.append(db)
        usable = store if db.level is Level.OK else None
        findings += await _guarded("keys", checked_keys(report, usable, clock, days))
    finally:
        await store.close()
    if cfg.delivery.transport == "smtp":
        smtp = cfg.delivery.smtp
        findings.append(await reachable("smarthost", Endpoint(smtp.host, smtp.port),
                                        smtp.timeout_seconds))
    findings += listeners(report)
    findings += imap_secret(report)
    return findings


async def _guarded(name: str, work: Awaitable[list[Finding]]) -> list[Finding]:
    try:
        return await work
    except (ConfigError, ListbotError, OSError) as exc:
        return [Finding(Level.FAIL, name, str(exc), "see the [pgp] section")]
