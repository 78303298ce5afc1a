"""The advisory service: create, amend, pre-disclose, schedule, release, report.

Slow work (rendering, gpg) happens before the transaction; the transaction
re-reads the advisory under a lock and refuses if it changed meanwhile, so a
CLI change can never race the release claim into an inconsistent state.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime

from listbot.advisories import fanout
from listbot.advisories import stage as staging
from listbot.advisories.case_link import case_audience, case_exists
from listbot.advisories.config import AdvisoriesConfig
from listbot.advisories.doc import DEPLOYMENT, REQUIRED_SECTIONS, AdvisoryDoc, Audience, Patch
from listbot.advisories.index import IndexWriter
from listbot.advisories.release import Dispatcher
from listbot.advisories.render import Renderer, doc_from_json, doc_to_json, public_doc
from listbot.advisories.sections import parse_sections as parse_section_text
from listbot.core.clock import Clock, ensure_utc
from listbot.core.config import Config
from listbot.core.errors import NotFound, Refused, TemporaryError, UsageError
from listbot.core.mail.keyring import PgpConfig
from listbot.core.mail.pgp import Keyring
from listbot.core.mail.sealing import copy_tag, encryption_problems, inner_entity, wrap_encrypted
from listbot.core.model import Member, OutboxState
from listbot.core.store import Store, Tx
from listbot.core.store import advisories as ops
from listbot.core.store.advisories import AdvisoryRow, AdvisoryState, VersionRow

CaseCheck = Callable[[Tx, str], Awaitable[bool]]
CASE_ID_RE = re.compile(r"[A-Z]{2,10}-[0-9]{4}-[0-9]{4,}")
EARLY_NOTE = "NOTE REGARDING EARLY RELEASE"
OPEN = (AdvisoryState.DRAFT, AdvisoryState.AWAITING_CONFIRMATION, AdvisoryState.SCHEDULED)


async def case_id_well_formed(tx: Tx, case_id: str) -> bool:
    """Default case check: the reference is well formed (a cases service may replace it)."""
    return CASE_ID_RE.fullmatch(case_id) is not None


@dataclass(frozen=True)
class Draft:
    number: int | None
    case_id: str | None
    title: str
    cves: tuple[str, ...]
    sections_text: str
    patches: tuple[Patch, ...]
    embargo_at: datetime
    restrictive: bool = False


@dataclass(frozen=True)
class Change:
    """An amendment: what changed and what it says about it."""

    updates: tuple[str, ...]
    title: str | None = None
    cves: tuple[str, ...] | None = None
    sections_text: str | None = None
    patches: tuple[Patch, ...] | None = None


def whole_minute(when: datetime) -> datetime:
    return ensure_utc(when).replace(second=0, microsecond=0)


def subject_of(prefix: str, number: int) -> str:
    return f"advisory:{prefix}-{number}"


def status_label(state: OutboxState, attempts: int) -> str:
    if state is OutboxState.SENT:
        return "accepted"
    if state is OutboxState.PENDING:
        return "deferred" if attempts else "queued"
    return state.value


class Advisories:
    def __init__(self, *, renderer: Renderer, store: Store, clock: Clock,
                 dispatcher: Dispatcher, index: IndexWriter,
                 case_check: CaseCheck = case_id_well_formed) -> None:
        self.r = renderer
        self.adv: AdvisoriesConfig = renderer.adv
        self.store = store
        self.clock = clock
        self.dispatcher = dispatcher
        self.index = index
        self.case_check = case_check

    async def embargo_audience(self, case_id: str | None) -> list[Member]:
        """Who gets pre-disclosure copies: members, plus the case's reporter and parties."""
        return await case_audience(self.store, case_id, await self.store.members())

    # --- content --------------------------------------------------------------------
    def _sections(self, text: str, restrictive: bool) -> dict[str, str]:
        sections = parse_section_text(text, required=REQUIRED_SECTIONS - {DEPLOYMENT})
        if not sections.get(DEPLOYMENT, "").strip():
            sections[DEPLOYMENT] = (self.adv.deployment_restrictive if restrictive
                                    else self.adv.deployment_standard)
        return sections

    def doc(self, adv: AdvisoryRow, v: VersionRow) -> AdvisoryDoc:
        return doc_from_json(v.doc, project=self.r.cfg.project_name, prefix=self.adv.prefix,
                             number=adv.number, version=v.version, embargo_at=adv.embargo_at)

    async def render(self, doc: AdvisoryDoc, *, released: bool, embargoed_copy: bool,
                      now: datetime) -> tuple[bytes | None, bytes]:
        pre = (await self.r.render(doc, Audience.PREDISCLOSURE, now)
               if embargoed_copy and not released else None)
        # The public text of an unreleased advisory goes at its instant and is dated so,
        # which keeps `advisory show --public` byte for byte what is sent.
        pub = await self.r.render(public_doc(doc, first_public=not released), Audience.PUBLIC,
                                  now if released else doc.embargo_at)
        return pre, pub

    async def load(self, number: int) -> tuple[AdvisoryRow, VersionRow]:
        async with self.store.unit() as tx:
            adv = await ops.get(tx, number)
            return adv, await ops.get_version(tx, number, adv.current_version)

    async def locked(self, tx: Tx, seen: AdvisoryRow) -> AdvisoryRow:
        """The advisory as it is now; refuse if it moved since the caller rendered."""
        adv = await ops.get(tx, seen.number, lock=True)
        if (adv.state, adv.current_version, adv.embargo_at) != (
                seen.state, seen.current_version, seen.embargo_at):
            raise TemporaryError(f"advisory {seen.number} changed meanwhile; try again")
        return adv

    # --- create and amend -------------------------------------------------------------
    async def create(self, d: Draft, actor: str) -> int:
        now = self.clock.now()
        embargo = whole_minute(d.embargo_at)
        if embargo <= now:
            raise Refused("the embargo instant is in the past; use release-now instead")
        number = d.number or await self._next_number()
        doc = AdvisoryDoc(project=self.r.cfg.project_name, prefix=self.adv.prefix,
                          number=number, version=1, title=d.title, cves=d.cves,
                          sections=self._sections(d.sections_text, d.restrictive), updates=(),
                          patches=d.patches, embargo_at=embargo)
        pre, pub = await self.render(doc, released=False, embargoed_copy=True, now=now)
        async with self.store.unit() as tx:
            if d.case_id is not None and not await self.case_check(tx, d.case_id):
                raise NotFound(f"no case {d.case_id}")
            await ops.insert_advisory(tx, number=number, case_id=d.case_id,
                                      embargo_at=embargo, restrictive=d.restrictive,
                                      actor=actor, now=tx.now)
            await ops.add_version(tx, VersionRow(number, 1, doc_to_json(doc), pre, pub,
                                                 embargo, None, tx.now, actor))
            await tx.audit(actor, "advisory.create", subject_of(self.adv.prefix, number),
                           {"case": d.case_id, "embargo_at": embargo.isoformat(),
                            "patches": [p.filename for p in d.patches]})
        await self.index.write(self.store)
        return number

    async def _next_number(self) -> int:
        async with self.store.unit() as tx:
            rows = await ops.all_advisories(tx)
        return max((a.number for a in rows), default=0) + 1

    async def amend(self, number: int, change: Change, actor: str) -> int:
        """Version K+1: to the pre-disclosure list during the embargo, public after it."""
        if not change.updates:
            raise UsageError("an amendment must say what changed (--update)")
        adv, cur = await self.load(number)
        doc = self.doc(adv, cur)
        sections = (self._sections(change.sections_text, adv.restrictive)
                    if change.sections_text is not None else dict(doc.sections))
        new = replace(doc, version=cur.version + 1, updates=change.updates,
                      title=change.title or doc.title,
                      cves=doc.cves if change.cves is None else change.cves,
                      sections=sections,
                      patches=doc.patches if change.patches is None else change.patches)
        version = await self._store_version(adv, new, actor, "advisory.amend",
                                            {"updates": list(change.updates)})
        await staging.stage(self, number, actor)  # an armed release now sends version K+1
        return version

    async def _store_version(self, adv: AdvisoryRow, doc: AdvisoryDoc, actor: str,
                             action: str, detail: dict[str, object]) -> int:
        now = self.clock.now()
        released = adv.state is AdvisoryState.RELEASED
        pre, pub = await self.render(doc, released=released, embargoed_copy=True, now=now)
        async with self.store.unit() as tx:
            was_sent = any(v.predisclosed_at for v in await ops.versions(tx, adv.number))
        fan = None
        if released:
            fan = fanout.public(self.r, doc, pub, await self.store.members(), adv.embargo_at)
        elif was_sent and pre is not None:
            fan = await fanout.predisclosure(self.r, doc, pre,
                                             await self.embargo_audience(adv.case_id),
                                             case_id=adv.case_id, now=now)
        subject = subject_of(self.adv.prefix, adv.number)
        async with self.store.unit() as tx:
            await self.locked(tx, adv)
            await ops.add_version(tx, VersionRow(adv.number, doc.version, doc_to_json(doc),
                                                 pre, pub, doc.embargo_at, None, tx.now,
                                                 actor))
            await staging.invalidate(tx, self, adv.number, f"version {doc.version} supersedes")
            sent = 0
            if fan is not None:
                sent = await fanout.enqueue(tx, self.r, fan, subject)
                if not released:
                    await ops.mark_predisclosed(tx, adv.number, doc.version, tx.now)
            await tx.audit(actor, action, subject, {**detail, "version": doc.version,
                                                    "rows": sent, "public": released})
        await self.index.write(self.store)
        return doc.version

    # --- pre-disclosure ---------------------------------------------------------------
    async def predisclose(self, number: int, actor: str, *, version: int | None = None,
                          dry_run: bool = False) -> int:
        adv, cur = await self.load(number)
        if adv.state is AdvisoryState.RELEASED:
            raise Refused(f"advisory {number} is public; amend it instead")
        async with self.store.unit() as tx:
            v = cur if version is None else await ops.get_version(tx, number, version)
        if v.predisclosure_raw is None or v.rendered_embargo_at != adv.embargo_at:
            raise Refused(f"version {v.version} does not carry the current embargo instant")
        doc = self.doc(adv, v)
        fan = await fanout.predisclosure(self.r, doc, v.predisclosure_raw,
                                         await self.embargo_audience(adv.case_id),
                                         case_id=adv.case_id, now=self.clock.now())
        subject = subject_of(self.adv.prefix, number)
        async with self.store.unit() as tx:
            await self.locked(tx, adv)
            if dry_run:
                await tx.enqueue(fanout.dry_run(self.r, fan, v.predisclosure_raw,
                                                "predisclosure"))
                await tx.audit(actor, "advisory.predisclose.dry_run", subject,
                               {"version": v.version})
                return 1
            rows = await fanout.enqueue(tx, self.r, fan, subject)
            await ops.mark_predisclosed(tx, number, v.version, tx.now)
            await tx.audit(actor, "advisory.predisclose", subject,
                           {"version": v.version, "rows": rows, "held": len(fan.held)})
        await self.index.write(self.store)
        return rows

    async def resolve_held(self, number: int, actor: str) -> int:
        """Send held copies to recipients whose key has become usable.

        Held copies are those of the embargo audience: members, and the case's
        reporter and current parties. Only who is still in it may be resolved."""
        adv, _ = await self.load(number)
        async with self.store.unit() as tx:
            held = await ops.held_rows(tx, fanout.key_prefix(self.adv.prefix, number))
        keys = {m.address: m.fingerprint for m in await self.embargo_audience(adv.case_id)}
        fprs = [keys.get(item.recipient) for _, item in held]
        problems = await encryption_problems(self.r.keyring, fprs, self.clock.now())
        done = 0
        for (key, item), fpr, problem in zip(held, fprs, problems, strict=True):
            if fpr is None or problem is not None:
                continue
            version = int(key.rsplit(":v", 1)[1].split(":")[0])
            async with self.store.unit() as tx:
                v = await ops.get_version(tx, number, version)
            assert v.predisclosure_raw is not None
            doc = self.doc(adv, v)
            mid = self.r.message_id(doc, Audience.PREDISCLOSURE, copy_tag(item.recipient))
            cipher = await self.r.keyring.encrypt(inner_entity(v.predisclosure_raw), [fpr])
            raw = wrap_encrypted(v.predisclosure_raw, cipher, mid)
            async with self.store.unit() as tx:
                if await ops.rebody_held(tx, item.id, raw, tx.now):
                    done += 1
                    await tx.audit(actor, "advisory.held_released",
                                   subject_of(self.adv.prefix, number),
                                   {"recipient": item.recipient, "version": version})
        return done


def build_service(cfg: Config, adv: AdvisoriesConfig, pgp: PgpConfig, store: Store,
                  clock: Clock, *, keyring: Keyring,
                  case_check: CaseCheck = case_exists) -> Advisories:
    """The service with its renderer, dispatcher and index writer, from the config, on
    the caller's keyring (one per GnuPG home).

    `advisory create --case ID` is refused unless the case is in the cases table."""
    renderer = Renderer(cfg, adv, pgp, keyring)
    index = IndexWriter(renderer.adv, cfg.project_name, renderer.domain, clock)
    dispatcher = Dispatcher(renderer=renderer, store=store, index=index)
    return Advisories(renderer=renderer, store=store, clock=clock, dispatcher=dispatcher,
                      index=index, case_check=case_check)
