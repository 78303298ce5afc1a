"""Builds and wires the daemon: start in order, stop in reverse; SIGTERM drains."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from listbot.advisories.config import parse_advisories
from listbot.advisories.release import Releaser
from listbot.advisories.service import Advisories, build_service
from listbot.applications.bounces import BounceHandler
from listbot.applications.config import parse_members
from listbot.applications.handler import application_handlers
from listbot.applications.member_watch import MemberWatch
from listbot.core.clock import Clock, SystemClock
from listbot.core.config import Config, ListConfig, ListKind
from listbot.core.errors import ConfigError
from listbot.core.handlers import RecordOnly
from listbot.core.intake.imap import ImapPoller, parse_imap
from listbot.core.intake.server import IntakeHandler, start_server
from listbot.core.mail.keyring import open_keyring, parse_pgp
from listbot.core.mail.pgp import Keyring
from listbot.core.metrics import Metrics, parse_metrics
from listbot.core.model import RecipientRole
from listbot.core.outbox.delivery import Delivery
from listbot.core.outbox.gate import GateFacts
from listbot.core.outbox.transport import MaildirTransport, SMTPTransport, Transport
from listbot.core.routing import Router
from listbot.core.store import Store
from listbot.core.store.advisories import release_instants
from listbot.core.store.cases import case_parties
from listbot.core.timer import SchedulerTimer
from listbot.core.waker import Waker
from listbot.core.worker import Handler, Worker
from listbot.discuss.handler import DiscussHandler, RuleBook
from listbot.discuss.held import Moderation, ModerationHandler, load_checked_rules
from listbot.moderation.config import parse_moderation, parse_rules_config
from listbot.security.cases import SecurityHandler
from listbot.security.config import parse_cases
from listbot.security.reminders import ReminderDispatcher

log = structlog.get_logger("listbot.app")

DRAIN_SECONDS = 30.0  # how long SIGTERM waits for in-flight work before cancelling it
BACKSTOP = timedelta(hours=1)  # longest sleep of the held-post dispatcher


def make_owner(cfg: Config) -> str:
    """Who holds a claim: unique per process so leases never confuse two daemons."""
    return f"{cfg.instance_name}:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def make_transport(cfg: Config) -> Transport:
    if cfg.delivery.transport == "smtp":
        return SMTPTransport(cfg.delivery.smtp, cfg.hostname)
    return MaildirTransport(cfg.delivery.maildir)


def build_handlers(cfg: Config, store: Store, clock: Clock, *,
                   rulebook: RuleBook | None = None, keyring: Keyring | None = None,
                   moderations: dict[str, Moderation] | None = None,
                   ) -> dict[tuple[str, RecipientRole], Handler]:
    handlers: dict[tuple[str, RecipientRole], Handler] = {}
    moderations = moderations if moderations is not None else build_moderations(
        cfg, store, clock, keyring)
    for lc in cfg.lists.values():
        handlers[(lc.name, RecipientRole.REQUEST)] = RecordOnly("subscription_request_ignored")
        handlers[(lc.name, RecipientRole.BOUNCES)] = BounceHandler(cfg, parse_members(cfg))
        if lc.kind is ListKind.DISCUSS:
            handlers[(lc.name, RecipientRole.POST)] = DiscussHandler(
                cfg=cfg, lc=lc, store=store, clock=clock, rulebook=rulebook,
                moderation=moderations.get(lc.name), keyring=keyring)
        if lc.name in moderations:
            handlers[(lc.name, RecipientRole.MODERATION)] = ModerationHandler(
                moderations[lc.name])
        if lc.kind is ListKind.SECURITY:
            handlers[(lc.name, RecipientRole.POST)] = security_handler(cfg, lc, store, clock,
                                                                       keyring)
        if lc.kind is ListKind.APPLICATIONS:
            for role, handler in application_handlers(cfg, lc, store, clock, keyring).items():
                handlers[(lc.name, role)] = handler
    return handlers


def security_handler(cfg: Config, lc: ListConfig, store: Store, clock: Clock,
                     keyring: Keyring | None) -> Handler:
    cases, pgp = parse_cases(cfg), parse_pgp(cfg)
    # Without a team key there is nothing to decrypt or sign with; keep gpg out of it.
    needs_gpg = bool(pgp.team_fingerprint) or cases.encrypt_team_copies
    return SecurityHandler(cfg=cfg, lc=lc, store=store, clock=clock, cases=cases, pgp=pgp,
                           keyring=keyring if needs_gpg else None)


def build_moderations(cfg: Config, store: Store, clock: Clock,
                      keyring: Keyring | None) -> dict[str, Moderation]:
    """Held-post services of the moderated (discuss) lists."""
    mc = parse_moderation(cfg)
    return {lc.name: Moderation(cfg=cfg, lc=lc, mc=mc, store=store, clock=clock,
                                keyring=keyring)
            for lc in cfg.lists.values() if lc.kind is ListKind.DISCUSS}


@dataclass(frozen=True)
class Serving:
    """What a config decides about the mail in hand: built whole, then swapped in whole,
    so a list is never routed without its handler or handled by rules of another config."""

    cfg: Config
    moderations: dict[str, Moderation]
    handlers: dict[tuple[str, RecipientRole], Handler]
    router: Router


def load_rulebook(cfg: Config) -> RuleBook:
    """The rules of `cfg`'s rules directory, fully checked; ConfigError names each problem."""
    directory = parse_rules_config(cfg).directory
    ruleset = load_checked_rules(directory)
    log.info("rules.loaded", directory=str(directory), lists=list(ruleset.names()))
    return RuleBook(ruleset)


def build_serving(cfg: Config, store: Store, clock: Clock,
                  keyring: Keyring | None) -> Serving:
    """Everything mail handling needs from `cfg`; raises ConfigError and changes nothing."""
    rulebook = load_rulebook(cfg)
    moderations = build_moderations(cfg, store, clock, keyring)
    handlers = build_handlers(cfg, store, clock, rulebook=rulebook, keyring=keyring,
                              moderations=moderations)
    return Serving(cfg=cfg, moderations=moderations, handlers=handlers,
                   router=Router(cfg.lists.values()))


@dataclass
class App:
    cfg: Config
    clock: Clock
    store: Store
    transport: Transport
    owner: str
    # The one keyring on the GnuPG home: everything the daemon builds gets this
    # instance, so its lock keeps gpg runs one at a time
    # (docs/design.md "PGP is checked, not trusted").
    keyring: Keyring
    inbound_waker: Waker = field(default_factory=Waker)
    outbound_waker: Waker = field(default_factory=Waker)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    servers: list[asyncio.Server] = field(default_factory=list)
    intake: list[IntakeHandler] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    bound: dict[str, tuple[str, int]] = field(default_factory=dict)
    timer: SchedulerTimer | None = None
    reminders: ReminderDispatcher | None = None
    timer_task: asyncio.Task[None] | None = None
    imap: ImapPoller | None = None
    metrics: Metrics | None = None
    moderations: dict[str, Moderation] = field(default_factory=dict)
    advisories: Advisories | None = None
    members_waker: Waker = field(default_factory=Waker)
    member_watch: MemberWatch | None = None
    worker: Worker | None = None

    @classmethod
    def create(cls, cfg: Config, *, clock: Clock | None = None,
               transport: Transport | None = None) -> App:
        clock = clock or SystemClock()
        return cls(cfg=cfg, clock=clock, store=Store.open(cfg.database_url, clock),
                   transport=transport or make_transport(cfg), owner=make_owner(cfg),
                   keyring=open_keyring(parse_pgp(cfg)))

    async def gate_facts(self) -> GateFacts:
        # A read: every delivery batch loads these, and must not queue behind writers.
        async with self.store.read() as tx:
            members = frozenset(m.address for m in await tx.members())
            parties = await case_parties(tx)
            released = await release_instants(tx)
        prefix = parse_advisories(self.cfg).prefix
        return GateFacts(members=members, team=self.cfg.team_addresses, case_parties=parties,
                         releases={f"{prefix}-{n}": at for n, at in released.items()})

    def reload_rules(self) -> bool:
        """Rebuild the serving state of the running config, as SIGHUP does: only a fully
        good rule set replaces the running one (docs/design.md "Rules are data").
        Whether it did."""
        try:
            serving = self.prepare(self.cfg)
        except ConfigError as exc:
            log.error("rules.reload_refused", problems=list(exc.problems))
            return False
        self.install(serving)
        return True

    def prepare(self, cfg: Config) -> Serving:
        """The serving state of `cfg`, built beside the running one (ConfigError if bad)."""
        return build_serving(cfg, self.store, self.clock, self.keyring)

    def install(self, serving: Serving) -> None:
        """Swap in a prepared state. No await in here: no message sees half of it."""
        self.cfg = serving.cfg
        self.moderations = serving.moderations
        if self.worker is not None:
            self.worker.handlers = serving.handlers
        for handler in self.intake:
            handler.router = serving.router

    async def dispatch_moderation(self) -> None:
        """Reminders and expiries of held posts; re-arms the wake-up for the next one.

        The wake-up is armed at least hourly, so holds made since the last pass are
        seen without another trigger. Its delay is measured on the injected clock and
        applied to the scheduler's real time, so a faked clock never makes it spin.
        """
        now = self.clock.now()
        upcoming = [await m.dispatch(now) for m in self.moderations.values()]
        due = min((t for t in upcoming if t is not None), default=now + BACKSTOP)
        delay = min(max(due - now, timedelta(seconds=1)), BACKSTOP)
        if self.timer is not None and not self.stopping.is_set():
            self.timer.wake_at("moderation", datetime.now(UTC) + delay,
                               self.dispatch_moderation)
        self.outbound_waker.wake()

    async def start(self) -> None:
        try:
            serving = self.prepare(self.cfg)
        except ConfigError as exc:
            log.error("rules.refused", problems=list(exc.problems))
            raise
        self.store.claim_single_instance()
        await self.store.upgrade()
        self._start_metrics()
        self.advisories = build_service(self.cfg, self.store, self.clock, keyring=self.keyring)
        self.worker = Worker(store=self.store, handlers=serving.handlers,
                             owner=self.owner, lease_seconds=self.cfg.lease_seconds,
                             batch=self.cfg.worker_batch,
                             poll_interval=self.cfg.poll_interval_seconds,
                             waker=self.inbound_waker, on_committed=self._committed,
                             metrics=self.metrics)
        self.install(serving)
        delivery = Delivery(store=self.store, transport=self.transport, cfg=self.cfg,
                            clock=self.clock, owner=self.owner, facts=self.gate_facts,
                            waker=self.outbound_waker, metrics=self.metrics)
        self._spawn("worker", self.worker.run)
        self._spawn("delivery", delivery.run)
        self._spawn("members", self._watch_members)
        listener = self.store.listener(inbound=self.inbound_waker.wake,
                                       outbox=self.outbound_waker.wake)
        if listener is not None:
            self._spawn("notify", listener.run)
        # One in-memory wake-up timer for reminders and releases; the database decides.
        self.timer = SchedulerTimer()
        self.timer.start()
        await self._start_reminders(self.timer)
        await self.dispatch_moderation()
        self._spawn("release", self._release_loop)
        self._start_imap()
        await self._listen(serving.router)
        log.info("daemon.started", owner=self.owner, listening=self.bound)

    async def _start_reminders(self, timer: SchedulerTimer) -> None:
        """Reminders due while we were down go out now; then the timer wakes us."""
        if self.cfg.list_by_kind(ListKind.SECURITY) is None:
            return
        self.reminders = ReminderDispatcher(
            cfg=self.cfg, cases_cfg=parse_cases(self.cfg), store=self.store, clock=self.clock,
            timer=timer, on_sent=self.outbound_waker.wake)
        await self.reminders.dispatch(self.clock.now())

    def _committed(self, lists: frozenset[str]) -> None:
        """The worker committed messages of these lists."""
        self.outbound_waker.wake()
        self.members_waker.wake()
        security = self.cfg.list_by_kind(ListKind.SECURITY)
        if self.reminders is not None and security is not None and security.name in lists:
            # A new or changed case may bring a reminder closer: re-arm from the database.
            # Only then: a dispatch is a write transaction over every open case.
            self.timer_task = asyncio.get_running_loop().create_task(self.reminders.wake())

    async def _watch_members(self, stopping: asyncio.Event) -> None:
        """Public roster files, delivery record, member key expiry (applications.member_watch)."""
        self.member_watch = MemberWatch(
            cfg=self.cfg, mc=parse_members(self.cfg), store=self.store, clock=self.clock,
            keyring=self.keyring,
            warning_window=timedelta(days=parse_pgp(self.cfg).expiry_warning_days))
        await self.member_watch.run(stopping, self.members_waker)

    async def _release_loop(self, stopping: asyncio.Event) -> None:
        """Advisory releases: start-up pass, then timer wake-ups (advisories.release)."""
        assert self.timer is not None and self.advisories is not None
        await Releaser(dispatcher=self.advisories.dispatcher, clock=self.clock, timer=self.timer,
                       poll_seconds=self.cfg.poll_interval_seconds,
                       on_released=self.outbound_waker.wake).run(stopping)

    def _spawn(self, name: str,
               run: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(run(self.stopping), name=name))

    def _start_metrics(self) -> None:
        mcfg = parse_metrics(self.cfg)
        if mcfg is None:
            return
        self.metrics = Metrics()
        self.bound["metrics"] = self.metrics.serve(mcfg.listen)
        metrics = self.metrics

        async def refresh(stopping: asyncio.Event) -> None:
            await metrics.run(self.store, self.clock, mcfg.refresh_seconds, stopping)

        self._spawn("metrics", refresh)

    def _start_imap(self) -> None:
        icfg = parse_imap(self.cfg)
        if icfg is not None:
            self.imap = ImapPoller(icfg, self.cfg, self.store, self.clock,
                                   on_stored=self.inbound_waker.wake, metrics=self.metrics)
            self._spawn("imap", self.imap.run)

    async def _listen(self, router: Router) -> None:
        """Intake servers routing with the serving state's router (install() swaps it)."""
        for name, endpoint, lmtp in (("lmtp", self.cfg.lmtp, True),
                                     ("smtp", self.cfg.smtp, False)):
            if endpoint is None:
                continue
            handler = IntakeHandler(router=router, store=self.store, source=name,
                                    per_recipient=lmtp, on_stored=self.inbound_waker.wake,
                                    metrics=self.metrics)
            server = await start_server(lmtp=lmtp, handler=handler, host=endpoint.host,
                                        port=endpoint.port, hostname=self.cfg.hostname,
                                        max_bytes=self.cfg.max_message_bytes)
            self.intake.append(handler)
            self.servers.append(server)
            self.bound[name] = server.sockets[0].getsockname()[:2]

    async def stop(self) -> None:
        """Stop accepting, let in-flight work finish, then close in reverse order."""
        log.info("daemon.stopping")
        for handler in self.intake:
            handler.accepting = False
        for server in self.servers:
            server.close()
        self.stopping.set()
        self.inbound_waker.wake()
        self.outbound_waker.wake()
        await self._drain()
        if self.timer is not None:
            self.timer.shutdown()
        if self.timer_task is not None:
            await asyncio.gather(self.timer_task, return_exceptions=True)
        if self.metrics is not None:
            self.metrics.close()
        await self.transport.close()
        await self.store.close()
        log.info("daemon.stopped")

    async def _drain(self) -> None:
        """Give running work DRAIN_SECONDS to finish; then cancel what is left and say so.
        Whatever is cancelled is still claimed in the store and is retried after its
        lease, so a stuck task can delay mail but never lose it."""
        if not self.tasks:
            return
        _, pending = await asyncio.wait(self.tasks, timeout=DRAIN_SECONDS)
        if pending:
            log.error("daemon.drain_timeout", tasks=sorted(t.get_name() for t in pending))
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=5)
