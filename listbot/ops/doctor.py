"""`listbot doctor`: each check gives OK/WARN/FAIL and, when not OK, what to do."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from listbot.config_check import SECTIONS
from listbot.core.clock import Clock
from listbot.core.config import Config, Endpoint
from listbot.core.errors import ConfigError, ListbotError
from listbot.core.intake.imap import parse_imap
from listbot.core.mail.keyring import parse_pgp
from listbot.core.mail.pgp import Keyring
from listbot.core.mail.pgp_keys import normalise_fingerprint
from listbot.core.metrics import parse_metrics
from listbot.core.store import Store
from listbot.core.store import cases as case_store
from listbot.discuss.held import load_checked_rules
from listbot.moderation.config import parse_rules_config


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


def sections(cfg: Config) -> list[Finding]:
    out = []
    for name, parse in SECTIONS:
        try:
            parse(cfg)
            out.append(ok(f"config [{name}]", "valid"))
        except ConfigError as exc:
            out.append(Finding(Level.FAIL, f"config [{name}]", "; ".join(exc.problems),
                               "fix these keys in the config file"))
    return out


def rules(cfg: Config) -> Finding:
    try:
        directory = parse_rules_config(cfg).directory
    except ConfigError as exc:
        return Finding(Level.FAIL, "rules", "; ".join(exc.problems),
                       "fix the [rules] section of the config file")
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
    except ListbotError as exc:
        return Finding(Level.FAIL, "database", str(exc),
                       "start the database or fix [database] url (exit 75)")
    if pending:
        return Finding(Level.WARN, "database", f"migrations pending: {', '.join(pending)}",
                       "run `listbot db upgrade` (serve also does it at start)")
    return ok("database", "reachable and migrated")


async def keys(cfg: Config, store: Store | None, clock: Clock,
               days: int | None) -> list[Finding]:
    pgp = parse_pgp(cfg)
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


def listeners(cfg: Config) -> list[Finding]:
    out = [bindable(n, e) for n, e in (("lmtp", cfg.lmtp), ("smtp", cfg.smtp)) if e]
    try:
        mcfg = parse_metrics(cfg)
    except ConfigError:
        mcfg = None
    if mcfg is not None:
        out.append(bindable("metrics", mcfg.listen))
    return out


def imap_secret(cfg: Config) -> list[Finding]:
    try:
        icfg = parse_imap(cfg)
    except ConfigError:
        return []
    if icfg is None:
        return []
    try:
        icfg.password()
    except OSError as exc:
        return [Finding(Level.FAIL, "imap", f"password file: {exc.strerror}",
                        "make imap.password_file readable by the service user")]
    return [ok("imap", f"{icfg.mailbox} configured")]


async def run_checks(cfg: Config, store_factory: Callable[[], Store], clock: Clock,
                     days: int | None) -> list[Finding]:
    findings = [ok("config", f"{cfg.source} valid"), *sections(cfg), rules(cfg),
                *moderators(cfg)]
    store = store_factory()
    try:
        db = await database(store)
        findings.append(db)
        usable = store if db.level is Level.OK else None
        findings += await _guarded("keys", keys(cfg, usable, clock, days))
    finally:
        await store.close()
    if cfg.delivery.transport == "smtp":
        smtp = cfg.delivery.smtp
        findings.append(await reachable("smarthost", Endpoint(smtp.host, smtp.port),
                                        smtp.timeout_seconds))
    findings += listeners(cfg)
    findings += imap_secret(cfg)
    return findings


async def _guarded(name: str, work: Awaitable[list[Finding]]) -> list[Finding]:
    try:
        return await work
    except (ConfigError, ListbotError, OSError) as exc:
        return [Finding(Level.FAIL, name, str(exc), "see the [pgp] section")]
