"""The applications list: check, distribute, hold for the team's decision
(docs/design.md "Applications to the pre-disclosure list").

An application (or a follow-up from the same organisation, which updates it and re-runs
the check) is distributed to the list's subscribers, answered within seconds with the
checklist (rate-limited, never to automatic mail), and every team member gets a decision
request whose reply address carries a token of moderation.decisions. A decision - signed
reply (moderation.replies.DecisionReplies) or shell (`listbot applications accept|reject`) -
goes through the same first-wins claim and `carry_out`. Accept is refused while any
required item is missing; accept adds the member and a roster history entry; the
decision is posted to the list. Subscription requests change nothing and get no reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from listbot.applications.checklist import check_application
from listbot.applications.config import ApplicationsConfig
from listbot.applications.extract import extract_application
from listbot.applications.fields import merge as merge_fields
from listbot.applications.mail import (
    APP_VERBS,
    AppFacts,
    answer,
    checklist_reply,
    decision_post,
    decision_request,
    distribution,
)
from listbot.applications.state import (
    alias_of,
    body_hash,
    checklist_from_json,
    checklist_to_json,
    fields_from_json,
    fields_to_json,
    org_key,
)
from listbot.applications.subscription import is_subscription_request
from listbot.core.clock import Clock
from listbot.core.config import Config, ListConfig
from listbot.core.errors import Refused
from listbot.core.mail.address import Mailbox
from listbot.core.mail.pgp import Keyring
from listbot.core.mail.received import (
    list_reply_target,
    no_reply_reason,
    original_message_id,
    original_subject,
)
from listbot.core.model import Inbound, OutgoingMessage, RecipientRole
from listbot.core.outbox.reply_rate import within_reply_rate
from listbot.core.store import Store, Tx
from listbot.core.store import applications as app_ops
from listbot.core.store import decisions as decision_ops
from listbot.core.store import roster as roster_ops
from listbot.core.store.applications import ApplicationRow
from listbot.core.worker import Effects, Handler, OneByOne
from listbot.moderation import decisions
from listbot.moderation.decisions import AlreadyDecided, Authority, Decided, Reply
from listbot.moderation.replies import DecisionReplies, ItemKind

log = structlog.get_logger("listbot.applications")

KIND = "application"
APPLICATIONS = ItemKind(KIND, APP_VERBS, noun="Application", action="application",
                        subject="application")


@dataclass(frozen=True)
class Submission:
    """What the slow part read from one message; the transaction does the rest."""

    msg: Inbound
    poster: Mailbox
    subject: str
    message_id: str | None
    text: str
    reply_to: str | None = None  # where its checklist goes: the envelope sender, not From


def team_authority(cfg: Config, lc: ListConfig) -> Authority:
    """Every team member decides on applications, with the key registered in [team]."""
    return Authority({m.address: m.fingerprint for m in cfg.team_members},
                     lc.require_signed_decisions)


def refusal_of_accept(app: ApplicationRow) -> str | None:
    """Why the team may not accept this application (no discretion:
    docs/design.md "Applications to the pre-disclosure list")."""
    checklist = checklist_from_json(app.checklist)
    if not checklist.complete:
        items = ", ".join(checklist.missing + checklist.unacceptable)
        return f"application {app.id} is incomplete ({items}); it cannot be accepted"
    if alias_of(fields_from_json(app.fields)) is None or not app.organisation:
        return f"application {app.id} has no single role alias or no organisation name"
    return None


class Applications:
    """Applications on one list; decided by reply through moderation.replies."""

    item_kind = APPLICATIONS

    def __init__(self, *, cfg: Config, lc: ListConfig, ac: ApplicationsConfig, store: Store,
                 clock: Clock, keyring: Keyring | None) -> None:
        self.cfg, self.lc, self.ac = cfg, lc, ac
        self.store, self.clock, self.keyring = store, clock, keyring
        self.authority = team_authority(cfg, lc)

    # --- receiving -------------------------------------------------------------------
    async def receive(self, tx: Tx, sub: Submission) -> None:
        policy = self.ac.policy
        sender = sub.poster.normalized
        fields = extract_application(sub.text, policy)
        digest = body_hash(sub.text)
        existing = await app_ops.find_open(tx, self.lc.name, org_key(sender, policy))
        duplicate = False
        if existing is None:
            checklist = check_application(fields, policy)
            app_id = await app_ops.create(
                tx, list_name=self.lc.name, org_key=org_key(sender, policy),
                organisation=fields.organisation, sender=sender,
                fields=fields_to_json(fields), checklist=checklist_to_json(checklist),
                complete=checklist.complete, now=tx.now)
            organisation = fields.organisation
        else:
            app_id = existing.id
            seen = {m.body_hash for m in await app_ops.messages(tx, app_id)}
            duplicate = digest in seen
            merged = merge_fields(fields_from_json(existing.fields), fields)
            checklist = check_application(merged, policy)
            organisation = merged.organisation
            await app_ops.update_open(tx, app_id, organisation=organisation,
                                      fields=fields_to_json(merged),
                                      checklist=checklist_to_json(checklist),
                                      complete=checklist.complete, now=tx.now)
        await app_ops.add_message(tx, app_id=app_id, inbound_id=sub.msg.id,
                                  sender=sender, subject=sub.subject,
                                  message_id=sub.message_id, body_hash=digest,
                                  duplicate=duplicate, now=tx.now)
        # Decidable from the shell even when no team member could be sent a token.
        await decision_ops.open_item(tx, KIND, str(app_id), self.lc.name, tx.now)
        facts = AppFacts(app_id, organisation or "(organisation not found)", sender,
                         sub.subject, checklist)
        replied = await self._reply(tx, sub, facts)
        if not duplicate:
            # A copy sent twice is the same application: no second post, no new request.
            if self.ac.subscribers:
                await tx.enqueue(distribution(self.lc, sub.msg.raw, poster=sub.poster,
                                              facts=facts, recipients=self.ac.subscribers))
            await self._request_decisions(tx, facts, sub.text, update=existing is not None)
        await tx.audit("listbot", "application.updated" if existing else "application.received",
                       f"application:{app_id}",
                       {"sender": sender, "inbound": sub.msg.id, "complete": checklist.complete,
                        "missing": list(checklist.missing),
                        "unacceptable": list(checklist.unacceptable),
                        "duplicate": duplicate, "replied": replied,
                        "distributed_to": 0 if duplicate else len(self.ac.subscribers)})

    async def _reply(self, tx: Tx, sub: Submission, facts: AppFacts) -> str:
        if sub.reply_to is None:
            return "no: envelope sender is not a valid address"
        if not await within_reply_rate(tx, self.cfg, sub.reply_to):
            return "no: rate limit"
        await tx.enqueue(checklist_reply(self.lc, self.ac.policy, to=sub.reply_to, facts=facts,
                                         message_id=sub.message_id, now=tx.now))
        return "yes"

    async def _request_decisions(self, tx: Tx, facts: AppFacts, body: str,
                                 update: bool) -> None:
        expires = tx.now + timedelta(days=self.ac.decision_days)
        for member in sorted(self.authority.deciders):
            issued = await decisions.issue(tx, kind=KIND, item_id=str(facts.app_id),
                                           list_name=self.lc.name, issued_to=member,
                                           expires_at=expires)
            await tx.enqueue(decision_request(
                self.lc, facts, to=member, token=issued.token,
                signed=self.authority.require_signature, body=body, update=update,
                now=tx.now))

    # --- deciding ----------------------------------------------------------------------
    async def decide_now(self, tx: Tx, app_id: int, *, decider: str, verb: str,
                         reason: str, via: str) -> Decided | AlreadyDecided:
        """A decision from the shell: same checks, same claim, same effects."""
        app = await app_ops.get(tx, app_id)
        if app is None or app.list_name != self.lc.name:
            raise LookupError(f"no application {app_id} on {self.lc.name}")
        problem = await self.precondition(tx, app, verb, reason)
        if problem is not None and app.state == app_ops.OPEN:
            raise Refused(problem)
        result = await decisions.decide(tx, kind=KIND, item_id=str(app_id), decider=decider,
                                        verb=verb, reason=reason)
        if isinstance(result, Decided):
            await self.carry_out(tx, app, result, via)
        return result

    def answer(self, *, to: str, item_id: str, text: str, now: datetime) -> OutgoingMessage:
        return answer(self.lc, to=to, app_id=item_id, text=text, now=now)

    async def refused(self, tx: Tx, reply: Reply) -> bool:
        subject = f"application:{reply.item_id}"
        app = await app_ops.get(tx, int(reply.item_id))
        if app is None:
            await tx.audit("listbot", "application.reply_ignored", subject,
                           {"reason": "no such application", "sender": reply.decider})
            return True
        problem = await self.precondition(tx, app, reply.verb, reply.argument)
        if problem is not None and app.state == app_ops.OPEN:
            # The token stays unspent: the same person may decide again once it is complete.
            await tx.enqueue(answer(self.lc, to=reply.decider, app_id=reply.item_id,
                                    text=f"Refused: {problem}.\n", now=tx.now))
            await tx.audit(reply.decider, f"application.{reply.verb}_refused", subject,
                           {"reason": problem, "token_id": reply.token_id})
            return True
        return False

    async def carry_out_reply(self, tx: Tx, reply: Reply, decided: Decided, via: str) -> None:
        app = await app_ops.get(tx, int(reply.item_id))
        assert app is not None  # refused() found it in this transaction
        await self.carry_out(tx, app, decided, via)

    async def precondition(self, tx: Tx, app: ApplicationRow, verb: str,
                           reason: str) -> str | None:
        """Why this decision cannot be carried out now, or None."""
        if verb == "accept":
            if (problem := refusal_of_accept(app)) is not None:
                return problem
            alias = alias_of(fields_from_json(app.fields))
            for member in await tx.members():
                if member.address == alias or member.name == app.organisation:
                    return f"{member.name} <{member.address}> is already a member"
            return None
        if verb == "reject" and not reason.strip():
            return "a rejection needs a reason: it is posted to the list"
        return None

    async def carry_out(self, tx: Tx, app: ApplicationRow, decided: Decided, via: str) -> None:
        """What a won decision does, in the deciding transaction."""
        state = app_ops.ACCEPTED if decided.verb == "accept" else app_ops.REJECTED
        if not await app_ops.settle(tx, app.id, state, by=decided.decider,
                                    reason=decided.reason, now=tx.now):
            raise Refused(f"application {app.id} changed while being decided; decide again")
        # Read again after our UPDATE (which holds the row): the version we settled.
        app = await app_ops.get(tx, app.id) or app
        name = app.organisation or app.org_key
        detail: dict[str, object] = {"via": via, "token_id": decided.token_id,
                                     "reason": decided.reason}
        if decided.verb == "accept":
            alias = alias_of(fields_from_json(app.fields))
            if alias is None or (problem := refusal_of_accept(app)) is not None:
                raise Refused(problem or f"application {app.id} has no single role alias")
            member = await tx.add_member(name, alias, None)
            await roster_ops.record_change(tx, member_name=member.name, action="added",
                                           text=f"Added {member.name}", actor=decided.decider,
                                           now=tx.now)
            await tx.audit(decided.decider, "member.added", f"member:{member.name}",
                           {"address": alias, "application": app.id})
        recipients = sorted({*self.ac.subscribers, app.sender})
        await tx.enqueue(decision_post(self.lc, app_id=app.id, organisation=name,
                                       verb=decided.verb, reason=decided.reason,
                                       recipients=recipients, now=tx.now))
        await tx.audit(decided.decider, f"application.{state}", f"application:{app.id}", detail)


class ApplicationsHandler(OneByOne):
    """Mail to the applications list address."""

    def __init__(self, service: Applications) -> None:
        self.s = service

    async def decide(self, msg: Inbound) -> Effects:
        lc = self.s.lc
        headers = msg.view.header_message
        if msg.view.is_own_loop(lc.address):
            return _ignored(msg, "application.loop_discarded", "carries our own X-Loop")
        poster = msg.view.sender
        if poster is None:
            return _ignored(msg, "application.no_sender", "no single valid From address")
        text = msg.view.plain_text
        subject = original_subject(headers)
        local = msg.recipient.split("@", 1)[0]
        if is_subscription_request(subject, text, local):
            # Membership comes only from an accepted application
            # (docs/design.md "Applications to the pre-disclosure list").
            return _ignored(msg, "subscription_request_ignored", "subscribe command",
                            poster.normalized)
        auto = no_reply_reason(lc, headers, msg.envelope_sender)
        if auto is not None:
            # Bounces, vacation notices, list traffic: not applications, never answered.
            return _ignored(msg, "application.automatic_ignored", auto, poster.normalized)
        target = list_reply_target(lc, headers, msg.envelope_sender)
        sub = Submission(msg, poster, subject, original_message_id(headers), text,
                         reply_to=target.address)
        return Effects.call(self.s.receive, sub)


def _ignored(msg: Inbound, action: str, why: str, sender: str | None = None) -> Effects:
    """Mail that is not an application: logged, and audited with who sent it, why."""
    log.info(action, inbound_id=msg.id, reason=why)
    return Effects.audit_only(msg, action,
                              {"reason": why, "sender": sender, "recipient": msg.recipient})


def application_handlers(cfg: Config, lc: ListConfig, *, ac: ApplicationsConfig, store: Store,
                         clock: Clock, keyring: Keyring | None) -> dict[RecipientRole, Handler]:
    service = Applications(cfg=cfg, lc=lc, ac=ac, store=store, clock=clock, keyring=keyring)
    return {RecipientRole.POST: ApplicationsHandler(service),
            RecipientRole.MODERATION: DecisionReplies(service)}
