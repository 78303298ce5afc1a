"""The checklist reply: every item with what was read, and the template when incomplete."""

from __future__ import annotations

from listbot.applications import check_text as tx
from listbot.applications.checklist import Checklist, ItemResult, ItemStatus
from listbot.applications.form import template
from listbot.applications.policy import AppPolicy

_STATUS_WORD = {
    ItemStatus.FOUND: "FOUND",
    ItemStatus.MISSING: "MISSING",
    ItemStatus.UNACCEPTABLE: "NOT ACCEPTABLE",
}


def render_reply(checklist: Checklist, policy: AppPolicy) -> str:
    """The text of the checklist reply; every line single, quotes cleaned of CR/LF."""
    p = policy.project_name
    lines = [
        f"Thank you for your application to join the {p} pre-disclosure list.",
        "",
        f"This is an automatic check of the items that the {p} security policy requires",
        "in every application.",
        "",
    ]
    if checklist.complete:
        lines += [
            "Every required item was found. The security team will now review the",
            "application; being complete does not by itself mean that it is accepted.",
        ]
    else:
        lines += [
            "The application is INCOMPLETE. An incomplete application cannot be accepted:",
            "the security team has no discretion to accept it. Please reply to this",
            "message with the items marked MISSING or NOT ACCEPTABLE; your reply completes",
            "the application, there is no need to send all of it again.",
        ]
    if policy.policy_url:
        lines += ["", f"The policy: {tx.oneline(policy.policy_url)}"]
    lines.append("")
    for number, item in enumerate(checklist.items, start=1):
        lines.append(f"{number}. {tx.oneline(item.title)}")
        lines += [f"   {line}" for line in _item_lines(item)]
    if not checklist.complete:
        lines += [
            "",
            'You may answer with this template, one "Field: value" per line (indent',
            "further lines of a value). Replace each [...] with your answer:",
            "",
            *template(policy).rstrip("\n").split("\n"),
        ]
    return "\n".join(lines) + "\n"


def _item_lines(item: ItemResult) -> list[str]:
    word = _STATUS_WORD[item.status]
    problem = tx.oneline(item.problem, 400) if item.problem else ""
    found = f'"{tx.oneline(item.found)}"' if item.found else ""
    if item.status is ItemStatus.FOUND:
        return [f"{word}: {found}"]
    out = [f"{word}: {problem}" if problem else word]
    if found:
        out.append(f"(what we read: {found})")
    return out
