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

from listbot.advisories.release import Releaser
from listbot.advisories.service import Advisories, build_service
from listbot.applications.bounces import BounceHandler
from listbot.applications.handler import application_handlers
from listbot.applications.member_watch import MemberWatch
from listbot.core.clock import Clock, SystemClock
from listbot.core.config import Config, ListConfig, ListKind
from listbot.core.errors import ConfigError
from listbot.core.handlers import RecordOnly
from listbot.core.intake.imap import ImapPoller
from listbot.core.intake.server import IntakeHandler, binding, start_server
from listbot.core.mail.keyring import open_keyring
from listbot.core.mail.pgp import Keyring
from listbot.core.metrics import Metrics
from listbot.core.model import RecipientRole
from listbot.core.outbox.delivery import Delivery
from listbot.core.outbox.gate import GateFactsReader
from listbot.core.outbox.transport import MaildirTransport, SMTPTransport, Transport
from listbot.core.routing import Router
from listbot.core.store import Store
from listbot.core.timer import SchedulerTimer
from listbot.core.waker import Waker
from listbot.core.worker import Handler, Wakeups, Worker
from listbot.discuss.handler import DiscussHandler, RuleBook
from listbot.discuss.held import Moderation, dispatch_held, load_checked_rules
from listbot.moderation.replies import DecisionReplies
from listbot.security.cases import SecurityHandler
from listbot.security.reminders import ReminderDispatcher
from listbot.settings import Settings

log = structlog.get_logger("listbot.app")

DRAIN_SECONDS = 30.0  # how long SIGTERM waits for in-flight work before cancelling it
BACKSTOP = timedelta(hours=1)  # longest sleep of the held-post dispatcher


def make_owner(cfg: Config) -> str:
    """Who holds a claim: unique per process so leases never confuse two daemons. The
    instance name comes first: a restart takes back its own (listbot.core.store.claims)."""
    return f"{cfg.instance_name}:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def make_transport(cfg: Config) -> Transport:
    if cfg.delivery.transport == "smtp":
        return SMTPTransport(cfg.delivery.smtp, cfg.hostname)
    return MaildirTransport(cfg.delivery.maildir)


def build_handlers(settings: Settings, store: Store, clock: Clock, *,
                   rulebook: RuleBook | None = None, keyring: Keyring | None = None,
                   moderations: dict[str, Moderation] | None = None,
                   ) -> dict[tuple[str, RecipientRole], Handler]:
    cfg = settings.core
    handlers: dict[tuple[str, RecipientRole], Handler] = {}
    moderations = moderations if moderations is not None else build_moderations(
        settings, store, clock, keyring)
    for lc in cfg.lists.values():
        handlers[(lc.name, RecipientRole.REQUEST)] = RecordOnly("subscription_request_ignored")
        handlers[(lc.name, RecipientRole.BOUNCES)] = BounceHandler(cfg, settings.members)
        if lc.kind is ListKind.DISCUSS:
            handlers[(lc.name, RecipientRole.POST)] = DiscussHandler(
                cfg=cfg, lc=lc, pgp=settings.pgp, store=store, clock=clock, rulebook=rulebook,
                moderation=moderations.get(lc.name), keyring=keyring)
        if lc.name in moderations:
            handlers[(lc.name, RecipientRole.MODERATION)] = DecisionReplies(
                moderations[lc.name])
        if lc.kind is ListKind.SECURITY:
            handlers[(lc.name, RecipientRole.POST)] = security_handler(settings, lc, store,
                                                                       clock, keyring)
        if lc.kind is ListKind.APPLICATIONS:
            for role, handler in application_handlers(
                    cfg, lc, ac=settings.applications, store=store, clock=clock,
                    keyring=keyring).items():
                handlers[(lc.name, role)] = handler
    return handlers


def security_handler(settings: Settings, lc: ListConfig, store: Store, clock: Clock,
                     keyring: Keyring | None) -> Handler:
    cases, pgp = settings.cases, settings.pgp
    # Without a team key there is nothing to decrypt or sign with; keep gpg out of it.
    needs_gpg = bool(pgp.team_fingerprint) or cases.encrypt_team_copies
    return SecurityHandler(cfg=settings.core, lc=lc, store=store, clock=clock, cases=cases,
                           pgp=pgp, keyring=keyring if needs_gpg else None)


def build_moderations(settings: Settings, store: Store, clock: Clock,
                      keyring: Keyring | None) -> dict[str, Moderation]:
    """Held-post services of the moderated (discuss) lists."""
    cfg = settings.core
    return {lc.name: Moderation(cfg=cfg, lc=lc, mc=settings.moderation, pgp=settings.pgp,
                                store=store, clock=clock, keyring=keyring)
            for lc in cfg.lists.values() if lc.kind is ListKind.DISCUSS}


def build_reminders(settings: Settings, store: Store, clock: Clock, timer: SchedulerTimer,
                    outbox: Waker) -> ReminderDispatcher | None:
    """Case reminders, when there is a security list."""
    cfg = settings.core
    if cfg.list_by_kind(ListKind.SECURITY) is None:
        return None
    return ReminderDispatcher(cfg=cfg, cases_cfg=settings.cases, store=store, clock=clock,
                              timer=timer, on_sent=outbox.wake)


def build_imap(settings: Settings, store: Store, clock: Clock, inbound: Waker,
               metrics: Metrics | None) -> ImapPoller | None:
    """The IMAP intake, when [imap] is on."""
    icfg = settings.imap
    if icfg is None:
        return None
    return ImapPoller(icfg, settings.core, store, clock, on_stored=inbound.wake,
                      metrics=metrics)


@dataclass(frozen=True)
class Serving:
    """What a config decides about the mail in hand: built whole, then swapped in whole,
    so a list is never routed without its handler or handled by rules of another config."""

    settings: Settings
    moderations: dict[str, Moderation]
    handlers: dict[tuple[str, RecipientRole], Handler]
    router: Router


def load_rulebook(settings: Settings) -> RuleBook:
    """The rules of the settings' rules directory, fully checked; ConfigError names each
    problem."""
    directory = settings.rules.directory
    ruleset = load_checked_rules(directory)
    log.info("rules.loaded", directory=str(directory), lists=list(ruleset.names()))
    return RuleBook(ruleset)


def build_serving(settings: Settings, store: Store, clock: Clock,
                  keyring: Keyring | None) -> Serving:
    """Everything mail handling needs from `settings`; raises ConfigError and changes
    nothing."""
    rulebook = load_rulebook(settings)
    moderations = build_moderations(settings, store, clock, keyring)
    handlers = build_handlers(settings, store, clock, rulebook=rulebook, keyring=keyring,
                              moderations=moderations)
    return Serving(settings=settings, moderations=moderations, handlers=handlers,
                   router=Router(settings.core.lists.values()))


@dataclass
class App:
    """The daemon, built whole by `create`; `start` only opens and spawns what it holds."""

    settings: Settings
    clock: Clock
    store: Store
    transport: Transport
    owner: str
    # The one keyring on the GnuPG home: everything the daemon builds gets this
    # instance, so its lock keeps gpg runs one at a time
    # (docs/design.md "PGP is checked, not trusted").
    keyring: Keyring
    serving: Serving
    gate: GateFactsReader
    inbound_waker: Waker
    outbound_waker: Waker
    members_waker: Waker
    metrics: Metrics | None  # None: [metrics] is off
    timer: SchedulerTimer  # one in-memory wake-up timer; the database decides
    worker: Worker
    delivery: Delivery
    advisories: Advisories
    member_watch: MemberWatch
    reminders: ReminderDispatcher | None  # None: no security list
    imap: ImapPoller | None  # None: no [imap]
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    servers: list[asyncio.Server] = field(default_factory=list)
    intake: list[IntakeHandler] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    bound: dict[str, tuple[str, int]] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: Settings, *, clock: Clock | None = None,
               transport: Transport | None = None) -> App:
        """Everything the daemon runs, from `settings`; ConfigError (logged) if its rules
        are bad. Nothing is opened or spawned here."""
        cfg = settings.core
        clock = clock or SystemClock()
        store = Store.open(cfg.database_url, clock)
        keyring = open_keyring(settings.pgp)
        try:
            serving = build_serving(settings, store, clock, keyring)
        except ConfigError as exc:
            log.error("rules.refused", problems=list(exc.problems))
            raise
        owner = make_owner(cfg)
        transport = transport or make_transport(cfg)
        inbound, outbound, members = Waker(), Waker(), Waker()
        metrics = Metrics() if settings.metrics is not None else None
        timer = SchedulerTimer()
        reminders = build_reminders(settings, store, clock, timer, outbound)
        security = cfg.list_by_kind(ListKind.SECURITY)
        wakeups = Wakeups(every=(members.wake,), by_list={
            security.name: reminders.rearm} if reminders and security else {})
        worker = Worker(store=store, handlers=serving.handlers, owner=owner,
                        lease_seconds=cfg.lease_seconds, batch=cfg.worker_batch,
                        poll_interval=cfg.poll_interval_seconds, waker=inbound,
                        outbox=outbound, wakeups=wakeups, metrics=metrics)
        gate = GateFactsReader(store, team=cfg.team_addresses,
                               advisory_prefix=settings.advisories.prefix)
        return cls(
            settings=settings, clock=clock, store=store, transport=transport, owner=owner,
            keyring=keyring, serving=serving, gate=gate, inbound_waker=inbound,
            outbound_waker=outbound, members_waker=members, metrics=metrics, timer=timer,
            worker=worker,
            delivery=Delivery(store=store, transport=transport, cfg=cfg, clock=clock,
                              owner=owner, facts=gate.read, waker=outbound, metrics=metrics),
            advisories=build_service(cfg, settings.advisories, settings.pgp, store, clock,
                                     keyring=keyring),
            member_watch=MemberWatch(
                cfg=cfg, mc=settings.members, store=store, clock=clock, keyring=keyring,
                warning_window=timedelta(days=settings.pgp.expiry_warning_days)),
            reminders=reminders, imap=build_imap(settings, store, clock, inbound, metrics))

    @property
    def cfg(self) -> Config:
        """The core settings in force (a reload replaces them with the rest)."""
        return self.settings.core

    @property
    def moderations(self) -> dict[str, Moderation]:
        return self.serving.moderations

    def reload_rules(self) -> bool:
        """Rebuild the serving state of the running config, as SIGHUP does: only a fully
        good rule set replaces the running one (docs/design.md "Rules are data").
        Whether it did."""
        try:
            serving = self.prepare(self.settings)
        except ConfigError as exc:
            log.error("rules.reload_refused", problems=list(exc.problems))
            return False
        self.install(serving)
        return True

    def prepare(self, settings: Settings) -> Serving:
        """The serving state of `settings`, built beside the running one (ConfigError if
        bad)."""
        return build_serving(settings, self.store, self.clock, self.keyring)

    def install(self, serving: Serving) -> None:
        """Swap in a prepared state. No await in here: no message sees half of it."""
        self.settings = serving.settings
        self.serving = serving
        self.gate.use(team=serving.settings.core.team_addresses,
                      advisory_prefix=serving.settings.advisories.prefix)
        self.worker.handlers = serving.handlers
        for handler in self.intake:
            handler.router = serving.router

    async def dispatch_moderation(self) -> None:
        """Reminders and expiries of held posts; re-arms the wake-up for the next one.

        The delay is measured on the injected clock and applied to the scheduler's
        real time, so a faked clock never makes it spin."""
        delay = await dispatch_held(self.moderations.values(), self.clock.now(), BACKSTOP)
        if not self.stopping.is_set():
            self.timer.wake_at("moderation", datetime.now(UTC) + delay,
                               self.dispatch_moderation)
        self.outbound_waker.wake()

    async def start(self) -> None:
        self.store.claim_single_instance()
        await self.store.upgrade()
        await self._take_back_claims()
        self._serve_metrics()
        self._spawn("worker", self.worker.run)
        self._spawn("delivery", self.delivery.run)
        self._spawn("members", self._watch_members)
        listener = self.store.listener(inbound=self.inbound_waker.wake,
                                       outbox=self.outbound_waker.wake)
        if listener is not None:
            self._spawn("notify", listener.run)
        self.timer.start()
        if self.reminders is not None:
            # Reminders due while we were down go out now; then the timer wakes us.
            await self.reminders.dispatch(self.clock.now())
        await self.dispatch_moderation()
        self._spawn("release", self._release_loop)
        if self.imap is not None:
            self._spawn("imap", self.imap.run)
        await self._listen(self.serving.router)
        log.info("daemon.started", owner=self.owner, listening=self.bound)

    async def _take_back_claims(self) -> None:
        """What an earlier run of this instance held when it died moves on now, not
        after a lease (docs/design.md "Storage and several daemons")."""
        taken = await self.store.take_back_claims(self.cfg.instance_name)
        if taken is None:
            log.warning("daemon.instance_name_in_use", instance=self.cfg.instance_name)
        elif taken.inbound or taken.outbox:
            log.info("daemon.claims_taken_back", inbound=taken.inbound, outbox=taken.outbox)

    async def _watch_members(self, stopping: asyncio.Event) -> None:
        """Public roster files, delivery record, member key expiry (listbot.member_watch)."""
        await self.member_watch.run(stopping, self.members_waker)

    async def _release_loop(self, stopping: asyncio.Event) -> None:
        """Advisory releases: start-up pass, then timer wake-ups (listbot.release)."""
        await Releaser(dispatcher=self.advisories.dispatcher, clock=self.clock, timer=self.timer,
                       poll_seconds=self.cfg.poll_interval_seconds,
                       on_released=self.outbound_waker.wake).run(stopping)

    def _spawn(self, name: str,
               run: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(run(self.stopping), name=name))

    def _serve_metrics(self) -> None:
        mcfg = self.settings.metrics
        if self.metrics is None or mcfg is None:
            return
        with binding("metrics.listen", mcfg.listen):
            self.bound["metrics"] = self.metrics.serve(mcfg.listen)
        metrics = self.metrics

        async def refresh(stopping: asyncio.Event) -> None:
            await metrics.run(self.store, self.clock, mcfg.refresh_seconds, stopping)

        self._spawn("metrics", refresh)

    async def _listen(self, router: Router) -> None:
        """Intake servers routing with the serving state's router (install() swaps it)."""
        for name, endpoint, lmtp in (("lmtp", self.cfg.lmtp, True),
                                     ("smtp", self.cfg.smtp, False)):
            if endpoint is None:
                continue
            handler = IntakeHandler(router=router, store=self.store, source=name,
                                    per_recipient=lmtp, on_stored=self.inbound_waker.wake,
                                    metrics=self.metrics)
            with binding(f"listen.{name}", endpoint):
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
        self.timer.shutdown()
        if self.reminders is not None and self.reminders.rearming is not None:
            await asyncio.gather(self.reminders.rearming, return_exceptions=True)
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
