"""The security@ intake: every report becomes a case; the reporter and the team talk
through it (docs/design.md "The path of a message", issue #4).

- A message naming no known case (by +detail, subject, In-Reply-To/References) opens
  one; its envelope sender (never a From that differs) gets a signed acknowledgement
  with the default timeline, unless the message is automatic mail (RFC 3834) or that
  address's reply budget is spent.
- Every case message reaches each team member (and the case's outside parties) as the
  original bytes with the case id in the subject; encrypted per member when
  `[cases] encrypt_team_copies` is on.
- A team member's reply reaches the reporter from the team address, signed by the team
  key and encrypted when the reporter's key is known; only a configured team member
  (signed by their own key when `require_signed_team_replies`) speaks as the team.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import structlog

from listbot.core.calendar.embargo import default_timeline
from listbot.core.calendar.timeline import Timeline
from listbot.core.case_model import Case, MessageKind, Party
from listbot.core.clock import Clock
from listbot.core.config import Config, ListConfig
from listbot.core.errors import PGPError
from listbot.core.mail.keyring import PgpConfig
from listbot.core.mail.outbound import headers_block, split_message
from listbot.core.mail.pgp import Keyring
from listbot.core.mail.pgp_mime import build_encrypted_mime, build_signed_mime, canonical
from listbot.core.mail.sealing import encryption_problems
from listbot.core.model import Audience, Inbound, OutgoingMessage
from listbot.core.outbox import alerts
from listbot.core.outbox.reply_rate import within_reply_rate
from listbot.core.store import Store, Tx
from listbot.core.store import cases as case_store
from listbot.core.worker import Effects, OneByOne
from listbot.security.case_mail import (
    ack_message,
    ack_text,
    content_entity,
    encrypted_envelope,
    relay_headers,
    rfc822_entity,
    team_copy,
    text_entity,
    unsigned_entity,
)
from listbot.security.config import CasesConfig, KeepClear
from listbot.security.reading import Reader, Reading

log = structlog.get_logger("listbot.cases")


@dataclass(frozen=True)
class TeamCopies:
    messages: tuple[OutgoingMessage, ...]
    # (member or party address, why) for those who get nothing: their key cannot be used
    withheld: tuple[tuple[str, str], ...] = ()
    # Parties with a key: they get a sealed copy (or nothing), never the plain one
    keyed: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Plan:
    """Everything a message does to its case, built before the transaction."""

    case_id: str
    kind: MessageKind
    copies: TeamCopies
    ack: OutgoingMessage | None = None
    relay: OutgoingMessage | None = None


class SecurityHandler(OneByOne):
    def __init__(self, *, cfg: Config, lc: ListConfig, store: Store, clock: Clock,
                 cases: CasesConfig, pgp: PgpConfig, keyring: Keyring | None) -> None:
        self.cfg = cfg
        self.lc = lc
        self.store = store
        self.clock = clock
        self.cases = cases
        self.pgp = pgp
        self.keyring = keyring
        self.reader = Reader(cfg, cases.prefix, keyring, pgp.passphrase() if keyring else None,
                             registered=self._registered_key)

    async def _registered_key(self, address: str) -> str | None:
        """The fingerprint a list member registered for this address, if any."""
        return next((m.fingerprint for m in await self.store.members()
                     if m.address == address and m.fingerprint), None)

    async def decide(self, msg: Inbound) -> Effects:
        if msg.view.is_own_loop(self.cfg.team_address):
            return Effects.audit_only(msg, "case.loop_discarded")
        reading = await self.reader.read(msg, self.clock.now())
        async with self.store.unit() as tx:
            case = await self._locate(tx, reading)
            next_id = None if case is not None else await case_store.next_case_id(
                tx, self.cases.prefix, msg.received_at.year)
            parties = await case_store.parties(tx, case.id) if case is not None else []
        if case is None:
            assert next_id is not None
            return await self._new_case(msg, reading, next_id)
        if reading.team_member is not None:
            if reading.team_signed or not self.cases.require_signed_team_replies:
                return await self._team_reply(msg, reading, case, parties)
            return await self._effects(msg, reading, Plan(
                case.id, MessageKind.TEAM_NOTE, await self._copies(msg, reading, case.id,
                                                                   "team_note", parties)))
        return await self._effects(msg, reading, Plan(
            case.id, MessageKind.FOLLOW_UP, await self._copies(msg, reading, case.id,
                                                               "follow_up", parties)),
            reporter_key=self._late_reporter_key(reading, case))

    @staticmethod
    def _late_reporter_key(reading: Reading, case: Case) -> str | None:
        """A key the reporter attached to a follow-up becomes the case's when it had none,
        so replies are encrypted from then on. It is never a replacement (first key wins),
        and the team is told, as anyone can write with the reporter's From."""
        if case.reporter_fingerprint is None and reading.sender == case.reporter:
            return reading.attached_fingerprint
        return None

    async def _locate(self, tx: Tx, reading: Reading) -> Case | None:
        for case_id in reading.named_ids:
            if (case := await case_store.find_case(tx, case_id)) is not None:
                return case
        found = await case_store.case_by_message_ids(tx, reading.references)
        return await case_store.find_case(tx, found) if found else None

    # --- new report ---------------------------------------------------------------------

    async def _new_case(self, msg: Inbound, reading: Reading, case_id: str) -> Effects:
        policy = self.cases.policy_for(msg.received_at.year)
        timeline = default_timeline(msg.received_at, policy)
        ack = None
        # The ack goes to the envelope sender: the From (the case's reporter) may be
        # forged, and nothing automatic may be aimed at it (RFC 3834).
        if reading.reply_to is not None and reading.team_member is None:
            text = ack_text(self.cfg, case_id, timeline)
            if self.keyring is not None and self.pgp.team_fingerprint:
                text = await self.keyring.sign_clear(text, self.pgp.team_fingerprint,
                                                     self.reader.passphrase)
            raw = ack_message(self.cfg, case_id, to=reading.reply_to, text=text,
                              now=msg.received_at, in_reply_to=reading.message_id)
            ack = OutgoingMessage(audience=Audience.NOTICE, envelope_from="",
                                  recipients=(reading.reply_to,), raw=raw,
                                  list_name=self.lc.name, case_id=case_id,
                                  dedupe_key=f"case-ack:{case_id}", reason="case.ack")
        plan = Plan(case_id, MessageKind.REPORT,
                    await self._copies(msg, reading, case_id, "report"), ack=ack)
        reporter_key = reading.attached_fingerprint or await self.reader.known_key(
            reading.sender, self.clock.now())
        return await self._effects(msg, reading, plan, timeline=timeline,
                                   reporter_key=reporter_key)

    # --- team copies --------------------------------------------------------------------

    def _readable_original(self, msg: Inbound, reading: Reading) -> bytes:
        """The message as the team should read it: the decrypted content behind the
        original header fields, or the original bytes when it was not encrypted."""
        if reading.plaintext is None:
            return msg.raw
        fields, _ = split_message(msg.raw)
        kept = b"".join(f for f in fields if not f.lower().startswith(b"content-"))
        entity = text_entity(reading.plaintext) if reading.inline else canonical(
            reading.plaintext)
        return kept + entity

    async def _copies(self, msg: Inbound, reading: Reading, case_id: str,
                      kind: str, parties: Sequence[Party] = ()) -> TeamCopies:
        # The team sees both when the envelope sender is not the From.
        envelope = reading.reply_to if reading.reply_to != reading.sender else None
        plain = team_copy(self.cfg, msg.raw, case_id, subject=reading.subject,
                          sender=reading.sender, kind=kind, envelope=envelope)
        inner = rfc822_entity(team_copy(self.cfg, self._readable_original(msg, reading),
                                        case_id, subject=reading.subject,
                                        sender=reading.sender, kind=kind, envelope=envelope))
        seed = f"{case_id}:{msg.id}"
        team, withheld = await self._team_copies(plain, inner, seed, case_id, kind)
        to_parties, refused = await self._party_copies(plain, inner, seed, case_id, parties)
        return TeamCopies((*team, *to_parties), (*withheld, *refused),
                          frozenset(p.address for p in parties if p.fingerprint))

    async def _team_copies(self, plain: bytes, inner: bytes, seed: str, case_id: str,
                           kind: str) -> tuple[list[OutgoingMessage], list[tuple[str, str]]]:
        if not (self.cases.encrypt_team_copies and self.keyring is not None):
            return [OutgoingMessage(
                audience=Audience.TEAM, envelope_from=self.cfg.team_address,
                recipients=self.cfg.team_recipients, raw=plain, case_id=case_id,
                reason=f"case.{kind}")], []
        # Encryption is required: a member whose key cannot be used gets nothing, never
        # the plaintext instead.
        sealed, withheld = await self._sealed_copies(
            self.keyring, inner, plain, seed,
            [(m.address, m.fingerprint) for m in self.cfg.team_members])
        return [replace(m, case_id=case_id, reason=f"case.{kind}") for m in sealed], withheld

    async def _party_copies(self, plain: bytes, inner: bytes, seed: str, case_id: str,
                            parties: Sequence[Party],
                            ) -> tuple[list[OutgoingMessage], list[tuple[str, str]]]:
        # Parties without a key get the original bytes (ciphertext stays ciphertext); the
        # gate admits them for this case only. Recipients are filled in the transaction,
        # leaving out the parties with a key (TeamCopies.keyed).
        out = [OutgoingMessage(audience=Audience.EMBARGOED,
                               envelope_from=self.cfg.team_address, recipients=(),
                               raw=plain, case_id=case_id, reason="case.party_copy")]
        # A party with a key reads the case as the team does (the decrypted original) and
        # only through its key: never the plaintext instead, whatever the gpg trouble.
        keyed = [(p.address, p.fingerprint) for p in parties if p.fingerprint]
        if not keyed:
            return out, []
        if self.keyring is None:
            return out, [(address, "no GnuPG home configured") for address, _ in keyed]
        sealed, withheld = await self._sealed_copies(self.keyring, inner, plain, seed, keyed)
        return out + [replace(m, audience=Audience.EMBARGOED, case_id=case_id,
                              reason="case.party_copy") for m in sealed], withheld

    async def _sealed_copies(self, keyring: Keyring, inner: bytes, plain: bytes, seed: str,
                             holders: Sequence[tuple[str, str | None]],
                             ) -> tuple[list[OutgoingMessage], list[tuple[str, str]]]:
        """A copy sealed to each (address, key); (address, why) for those gpg refused."""
        problems = await encryption_problems(keyring, [f for _, f in holders],
                                             self.clock.now())
        out: list[OutgoingMessage] = []
        withheld: list[tuple[str, str]] = []
        for (address, fingerprint), problem in zip(holders, problems, strict=True):
            sealed = problem or await self._sealed_to(
                keyring, inner, plain, address=address, fingerprint=fingerprint,
                seed=f"{seed}:{address}")
            if isinstance(sealed, str):
                withheld.append((address, sealed))
            else:
                out.append(sealed)
        return out, withheld

    async def _sealed_to(self, keyring: Keyring, inner: bytes, plain: bytes, *, address: str,
                         fingerprint: str | None, seed: str) -> OutgoingMessage | str:
        """A copy encrypted to one key, or why gpg would not make it."""
        if fingerprint is None:
            return "no key configured"
        try:
            armored = await keyring.encrypt(inner, [fingerprint])
        except PGPError as exc:
            return str(exc)
        return OutgoingMessage(
            audience=Audience.TEAM, envelope_from=self.cfg.team_address,
            recipients=(address,),
            raw=encrypted_envelope(self.cfg, plain, build_encrypted_mime(armored, seed),
                                   address))

    # --- team reply to the reporter -----------------------------------------------------

    async def _team_reply(self, msg: Inbound, reading: Reading, case: Case,
                          parties: Sequence[Party]) -> Effects:
        if reading.plaintext is not None:
            entity = text_entity(reading.plaintext) if reading.inline else canonical(
                reading.plaintext)
        elif reading.encrypted:
            entity = None  # undecryptable: nothing readable to relay
        else:
            entity = content_entity(msg.raw)
        relay = None
        if entity is not None:
            relay = await self._relay(unsigned_entity(entity), reading, case)
        copies = await self._copies(msg, reading, case.id, "team_reply", parties)
        return await self._effects(msg, reading, Plan(case.id, MessageKind.TEAM_REPLY,
                                                      copies, relay=relay))

    async def _relay(self, entity: bytes, reading: Reading, case: Case) -> OutgoingMessage:
        entity = canonical(entity)
        team_fpr = self.pgp.team_fingerprint
        seed = f"{case.id}:{reading.message_id}"
        reporter_key = case.reporter_fingerprint
        if self.keyring is not None and reporter_key:
            armored = await self.keyring.encrypt(entity, [reporter_key], sign_with=team_fpr,
                                                 passphrase=self.reader.passphrase)
            body = build_encrypted_mime(armored, seed)
        elif self.keyring is not None and team_fpr:
            signature = await self.keyring.sign_detached(entity, team_fpr,
                                                         self.reader.passphrase)
            body = build_signed_mime(entity, signature, seed)
        else:
            body = entity
        threading = []
        if reading.references:
            threading = [("In-Reply-To", reading.references[0]),
                         ("References", " ".join(reading.references[::-1]))]
        raw = headers_block(relay_headers(self.cfg, case.id, subject=reading.subject,
                                          to=case.reporter, now=self.clock.now(),
                                          threading=threading)) + body
        return OutgoingMessage(audience=Audience.EMBARGOED, envelope_from=self.cfg.team_address,
                               recipients=(case.reporter,), raw=raw, case_id=case.id,
                               reason="case.relay")

    # --- the one transaction ------------------------------------------------------------

    async def _effects(self, msg: Inbound, reading: Reading, plan: Plan, *,
                       timeline: Timeline | None = None,
                       reporter_key: str | None = None) -> Effects:
        keep = self.cases.keep_clear is KeepClear.PLAINTEXT and reading.plaintext is not None
        plaintext = reading.plaintext.decode("utf-8", "replace") if keep and \
            reading.plaintext is not None else None
        return Effects.call(self._record, msg, reading, plan, timeline=timeline,
                            reporter_key=reporter_key, plaintext=plaintext)

    async def _record(self, tx: Tx, msg: Inbound, reading: Reading, plan: Plan, *,
                      timeline: Timeline | None, reporter_key: str | None,
                      plaintext: str | None) -> None:
        """The message's case, its copies and answers, in the message's transaction."""
        if plan.kind is MessageKind.REPORT:
            assert timeline is not None
            await case_store.open_case(tx, case_id=plan.case_id, reporter=reading.sender,
                                       subject=reading.subject, timeline=timeline,
                                       reporter_fingerprint=reporter_key)
        elif reporter_key is not None:
            await self._adopt_reporter_key(tx, msg, plan.case_id, reporter_key)
        await case_store.record_message(
            tx, plan.case_id, inbound_id=msg.id, message_id=reading.message_id,
            kind=plan.kind, sender=reading.sender, subject=reading.subject,
            encrypted=reading.encrypted, plaintext=plaintext)
        await self._enqueue_copies(tx, plan)
        if plan.copies.withheld:
            await self._alert_withheld(tx, msg, plan)
        if reading.key_problem is not None:
            await alerts.raise_alert(tx, self.cfg, "case_key_ignored",
                                     f"{plan.case_id}: a key sent by {reading.sender} "
                                     "was not taken",
                                     {"case": plan.case_id, "inbound": msg.id,
                                      "sender": reading.sender,
                                      "reason": reading.key_problem})
        if reading.has_patch:
            await case_store.mark_patch(tx, plan.case_id)
        if reading.decryption_problem is not None:
            await alerts.raise_alert(tx, self.cfg, "case_decryption_failed",
                                     f"{plan.case_id}: message could not be decrypted",
                                     {"case": plan.case_id, "inbound": msg.id,
                                      "reason": reading.decryption_problem})
        acked = (plan.ack is not None
                 and await within_reply_rate(tx, self.cfg, plan.ack.recipients[0]))
        if acked and plan.ack is not None:
            await tx.enqueue(plan.ack)
        if plan.relay is not None:
            await tx.enqueue(plan.relay)
        await tx.audit("listbot", f"case.{plan.kind.value}", f"case:{plan.case_id}", {
            "inbound": msg.id, "sender": reading.sender, "encrypted": reading.encrypted,
            "acknowledged": acked, "no_reply_reason": reading.no_reply,
            "relayed": plan.relay is not None})

    async def _adopt_reporter_key(self, tx: Tx, msg: Inbound, case_id: str,
                                  fingerprint: str) -> None:
        if await case_store.set_reporter_key_if_none(tx, case_id, fingerprint):
            await alerts.raise_alert(
                tx, self.cfg, "case_reporter_key",
                f"{case_id}: replies to the reporter are now encrypted to the key "
                f"{fingerprint}, attached to a follow-up; check it with the reporter",
                {"case": case_id, "inbound": msg.id, "fingerprint": fingerprint})

    async def _alert_withheld(self, tx: Tx, msg: Inbound, plan: Plan) -> None:
        names = ", ".join(f"{address} ({why})" for address, why in plan.copies.withheld)
        await alerts.raise_alert(tx, self.cfg, "case_copy_withheld",
                                 f"{plan.case_id}: no usable key, not sent to {names}"[:300],
                                 {"case": plan.case_id, "inbound": msg.id,
                                  "members": dict(plan.copies.withheld)})

    async def _enqueue_copies(self, tx: Tx, plan: Plan) -> None:
        for copy in plan.copies.messages:
            item = copy
            if copy.audience is Audience.EMBARGOED and not copy.recipients:
                parties = await case_store.parties(tx, plan.case_id)
                item = replace(copy, recipients=tuple(
                    p.address for p in parties if p.address not in plan.copies.keyed))
            await tx.enqueue(item)
