"""Mail the applications list writes: the checklist reply, the distribution to the
list's subscribers, the team's decision requests, the posted decision. Every header
value goes through core/mail/safe.py (docs/design.md "Safe headers and addresses")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from listbot.applications.checklist import Checklist
from listbot.applications.policy import AppPolicy
from listbot.applications.reply import render_reply
from listbot.core.config import ListConfig
from listbot.core.mail.address import Mailbox
from listbot.core.mail.headers import safe_header_value
from listbot.core.mail.outbound import mailbox, plain_message, rewrite
from listbot.core.model import Audience, OutgoingMessage
from listbot.moderation.notices import bounces, moderation_address

APP_VERBS = ("accept", "reject")
_QUOTE_LINES = 200


@dataclass(frozen=True)
class AppFacts:
    app_id: int
    organisation: str
    sender: str
    subject: str
    checklist: Checklist


def list_headers(lc: ListConfig) -> list[tuple[str, str]]:
    return [
        ("List-Id", f"{lc.display_name} <{lc.list_id}>"),
        ("List-Post", f"<mailto:{lc.address}>"),
        ("Precedence", "list"),
        ("X-Loop", lc.address),
    ]


def distribution(lc: ListConfig, raw: bytes, *, poster: Mailbox, facts: AppFacts,
                 recipients: Sequence[str]) -> OutgoingMessage:
    """The application as sent, our headers prepended (docs/design.md "Forward bytes")."""
    name = poster.display_name or poster.local
    state = "complete" if facts.checklist.complete else "incomplete"
    headers = [
        ("From", mailbox(f"{name} via {lc.display_name}", lc.address)),
        ("Reply-To", mailbox(poster.display_name, poster.addr_spec)),
        ("X-Original-From", poster.addr_spec),
        *list_headers(lc),
        ("X-Listbot-Application", f"{facts.app_id} ({state})"),
    ]
    return OutgoingMessage(audience=Audience.PUBLIC, envelope_from=bounces(lc),
                           recipients=tuple(recipients), raw=rewrite(raw, headers),
                           list_name=lc.name, reason="applications.post")


def checklist_reply(lc: ListConfig, policy: AppPolicy, *, to: str, facts: AppFacts,
                    message_id: str | None, now: datetime) -> OutgoingMessage:
    """To the applicant: each item found (quoted) or missing; replies go to the list."""
    extra = [("Reply-To", lc.address), ("Auto-Submitted", "auto-replied"),
             ("X-Loop", lc.address), ("X-Listbot-Application", str(facts.app_id))]
    if message_id:
        extra += [("In-Reply-To", message_id), ("References", message_id)]
    state = "complete" if facts.checklist.complete else "INCOMPLETE"
    raw = plain_message(sender=mailbox(lc.display_name, lc.address), to=[to],
                        subject=f"Application {facts.app_id} {state}: "
                                f"{safe_header_value(facts.subject)[:150]}",
                        text=render_reply(facts.checklist, policy), domain=lc.domain,
                        date=now, extra=extra)
    return OutgoingMessage(audience=Audience.NOTICE, envelope_from="", recipients=(to,),
                           raw=raw, list_name=lc.name, reason="applications.checklist")


def checklist_lines(checklist: Checklist) -> list[str]:
    lines = []
    for item in checklist.items:
        shown = item.found if item.found else (item.problem or "")
        lines.append(f"  [{item.status.value.upper():12}] {item.title}: "
                     f"{safe_header_value(shown)[:200]}")
    return lines


def request_text(lc: ListConfig, facts: AppFacts, *, token: str, signed: bool,
                 body: str, update: bool) -> str:
    missing = facts.checklist.missing + facts.checklist.unacceptable
    verdict = ("complete: every required item was found" if not missing else
               f"INCOMPLETE ({', '.join(missing)}): it cannot be accepted until completed")
    quoted = [f"> {line}" for line in body.splitlines()[:_QUOTE_LINES]]
    return "\n".join([
        f"{'An updated' if update else 'An'} application to {lc.address} "
        f"waits for the team's decision (application {facts.app_id}).",
        "",
        f"Organisation: {safe_header_value(facts.organisation)[:200]}",
        f"From:         {facts.sender}",
        f"Checklist:    {verdict}",
        "",
        *checklist_lines(facts.checklist),
        "",
        f"Reply to {moderation_address(lc, token)}",
        "with one of these as the first line of your reply:",
        "",
        "    accept",
        "    reject <reason, posted to the list>",
        "",
        "Accept is refused while any required item is missing.",
        *(["Sign your reply with your PGP key; unsigned replies are ignored."] if signed
          else []),
        "The decision is posted to the list. From the shell:",
        f"    listbot applications accept|reject {facts.app_id}",
        "",
        "The application as received (text part):",
        "",
        *quoted,
    ]) + "\n"


def decision_request(lc: ListConfig, facts: AppFacts, *, to: str, token: str, signed: bool,
                     body: str, update: bool, now: datetime) -> OutgoingMessage:
    raw = plain_message(
        sender=mailbox(f"{lc.display_name} decisions", moderation_address(lc)), to=[to],
        subject=f"{'Updated a' if update else 'A'}pplication {facts.app_id}: "
                f"{safe_header_value(facts.organisation)[:120]}",
        text=request_text(lc, facts, token=token, signed=signed, body=body, update=update),
        domain=lc.domain, date=now,
        extra=[("Reply-To", moderation_address(lc, token)),
               ("Auto-Submitted", "auto-generated"), ("X-Loop", lc.address)])
    return OutgoingMessage(audience=Audience.TEAM, envelope_from=bounces(lc), recipients=(to,),
                           raw=raw, list_name=lc.name, reason="applications.request")


def decision_post(lc: ListConfig, *, app_id: int, organisation: str, verb: str, reason: str,
                  recipients: Sequence[str], now: datetime) -> OutgoingMessage:
    """The decision, posted to the public list (and to the applicant)."""
    name = safe_header_value(organisation)[:200]
    if verb == "accept":
        text = (f"The security team accepted the application of {name} "
                f"(application {app_id}) to the pre-disclosure list.\n")
    else:
        text = (f"The security team rejected the application of {name} "
                f"(application {app_id}).\n\nReason: {reason}\n")
    raw = plain_message(sender=mailbox(lc.display_name, lc.address), to=[lc.address],
                        subject=f"Application {app_id} ({name}): "
                                f"{'accepted' if verb == 'accept' else 'rejected'}",
                        text=text, domain=lc.domain, date=now,
                        extra=[*list_headers(lc), ("Auto-Submitted", "auto-generated")])
    return OutgoingMessage(audience=Audience.PUBLIC, envelope_from=bounces(lc),
                           recipients=tuple(recipients), raw=raw, list_name=lc.name,
                           reason="applications.decision")


def answer(lc: ListConfig, *, to: str, app_id: str, text: str,
           now: datetime) -> OutgoingMessage:
    """To a team member whose decision was refused or came too late."""
    raw = plain_message(sender=mailbox(f"{lc.display_name} decisions", moderation_address(lc)),
                        to=[to], subject=f"Application {app_id} on {lc.name}", text=text,
                        domain=lc.domain, date=now,
                        extra=[("Auto-Submitted", "auto-replied"), ("X-Loop", lc.address)])
    return OutgoingMessage(audience=Audience.TEAM, envelope_from=bounces(lc), recipients=(to,),
                           raw=raw, list_name=lc.name, reason="applications.answer")
