"""Completeness check of applications to join the pre-disclosure list
(docs/design.md "Applications to the pre-disclosure list").

Pure: the items read from an application in, a checklist out.  An application
lacking any required item cannot be accepted, so the check says exactly which
items were found (quoting them), which are missing and which were given in a
form the policy does not accept.  The decision itself stays with the security
team; a complete checklist only lets them consider it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from listbot.applications import check_text as tx
from listbot.applications.classify import classify_alias, classify_link
from listbot.applications.fields import EVIDENCE_KEY, ApplicationFields, EvidenceKind
from listbot.applications.policy import AppPolicy


class ItemStatus(Enum):
    FOUND = "found"
    MISSING = "missing"
    UNACCEPTABLE = "unacceptable"


@dataclass(frozen=True)
class ItemResult:
    key: str
    title: str
    status: ItemStatus
    found: str | None  # short single-line quote of what was found
    problem: str | None  # why it is missing or not acceptable


@dataclass(frozen=True)
class Checklist:
    items: tuple[ItemResult, ...]
    form: bool  # the applicant used the template

    @property
    def complete(self) -> bool:
        return all(item.status is ItemStatus.FOUND for item in self.items)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(i.key for i in self.items if i.status is ItemStatus.MISSING)

    @property
    def unacceptable(self) -> tuple[str, ...]:
        return tuple(i.key for i in self.items if i.status is ItemStatus.UNACCEPTABLE)

    def item(self, key: str) -> ItemResult:
        for item in self.items:
            if item.key == key:
                return item
        raise KeyError(key)


def _titles(policy: AppPolicy) -> dict[str, str]:
    p = policy.project_name
    return {
        "organisation": "Organisation name",
        "domains": f"Domain names used to provide services or software based on {p}",
        "eligibility": "Why you fit the criteria",
        "products": f"Which of your products use {p} (or that all of them do)",
        "evidence_provider": "Link: evidence of your status as a provider"
        " (rates, download/purchase, or repository with active development)",
        "evidence_use": f"Link: evidence that you use {p}",
        "evidence_security": "Link: your invitation to report security problems,"
        " with the contact to use",
        "policy": "Statement that you have read the policy and will keep it",
        "alias": "Exactly one non-personal role alias",
    }


def check_application(fields: ApplicationFields, policy: AppPolicy) -> Checklist:
    titles = _titles(policy)

    def make(key: str, status: ItemStatus, found: str | None, problem: str | None) -> ItemResult:
        quoted = tx.oneline(found) if found else None
        said = tx.oneline(problem, 400) if problem else None
        return ItemResult(key, titles[key], status, quoted, said)

    items = [
        _check_simple(fields.organisation, "no organisation name was found", "organisation", make),
        _check_domains(fields, make),
        _check_eligibility(fields, make),
        _check_products(fields, policy, make),
        *(_check_evidence(fields, kind, policy, make) for kind in EvidenceKind),
        _check_policy(fields, make),
        _check_alias(fields, policy, make),
    ]
    return Checklist(items=tuple(items), form=fields.form)


_Make = Callable[[str, ItemStatus, str | None, str | None], ItemResult]


def _check_simple(value: str | None, hint: str, key: str, make: _Make) -> ItemResult:
    if value:
        return make(key, ItemStatus.FOUND, value, None)
    return make(key, ItemStatus.MISSING, None, hint)


def _check_domains(fields: ApplicationFields, make: _Make) -> ItemResult:
    if fields.domains:
        return make("domains", ItemStatus.FOUND, ", ".join(fields.domains), None)
    if fields.domains_text:
        problem = f'no domain name could be read in "{fields.domains_text}"'
        return make("domains", ItemStatus.UNACCEPTABLE, fields.domains_text, problem)
    return make("domains", ItemStatus.MISSING, None, "no domain names were found")


# Fewer words than this cannot say why an organisation fits the criteria.
_MIN_ELIGIBILITY_WORDS = 3


def _check_eligibility(fields: ApplicationFields, make: _Make) -> ItemResult:
    value = fields.eligibility
    if value is None:
        hint = "no statement of why you fit the criteria was found"
        return make("eligibility", ItemStatus.MISSING, None, hint)
    if tx.word_count(value) < _MIN_ELIGIBILITY_WORDS:
        problem = "too short to say why you fit the criteria"
        return make("eligibility", ItemStatus.UNACCEPTABLE, value, problem)
    return make("eligibility", ItemStatus.FOUND, value, None)


def _check_products(fields: ApplicationFields, policy: AppPolicy, make: _Make) -> ItemResult:
    p = policy.project_name
    # A plain "all of them" is the clearer answer when both were read.
    if fields.all_products:
        return make("products", ItemStatus.FOUND, fields.all_products, None)
    if fields.products:
        return make("products", ItemStatus.FOUND, fields.products, None)
    if fields.some_products:
        problem = f"you say that not all your products use {p}, but not which of them do"
        return make("products", ItemStatus.MISSING, fields.some_products, problem)
    hint = f"say which of your products or services use {p}, or that all of them do"
    return make("products", ItemStatus.MISSING, None, hint)


def _check_evidence(
    fields: ApplicationFields, kind: EvidenceKind, policy: AppPolicy, make: _Make
) -> ItemResult:
    key = EVIDENCE_KEY[kind]
    offered = [e.url for e in fields.links if kind in e.kinds]
    good = [url for url in offered if classify_link(url, policy) is None]
    if good:
        return make(key, ItemStatus.FOUND, " ".join(good), None)
    if offered:
        reasons = "; ".join(f"{url}: {classify_link(url, policy)}" for url in offered)
        return make(key, ItemStatus.UNACCEPTABLE, " ".join(offered), reasons)
    hint = "no link to an ordinary public web page was given for this"
    unclear = [e.url for e in fields.links if not e.kinds]
    if unclear:
        hint += "; we could not tell what these links show: " + " ".join(unclear)
    return make(key, ItemStatus.MISSING, None, hint)


def _check_policy(fields: ApplicationFields, make: _Make) -> ItemResult:
    if fields.policy_statement:
        return make("policy", ItemStatus.FOUND, fields.policy_statement, None)
    if fields.policy_other:
        problem = "this does not say that you have read the policy and will keep it"
        return make("policy", ItemStatus.UNACCEPTABLE, fields.policy_other, problem)
    hint = "no statement that you have read the policy and will keep it was found"
    return make("policy", ItemStatus.MISSING, None, hint)


def _check_alias(fields: ApplicationFields, policy: AppPolicy, make: _Make) -> ItemResult:
    aliases = fields.aliases
    if not aliases:
        hint = "no address to add to the list was found"
        return make("alias", ItemStatus.MISSING, None, hint)
    if len(aliases) > 1:
        problem = f"give exactly one role alias, not {len(aliases)}"
        return make("alias", ItemStatus.UNACCEPTABLE, ", ".join(aliases), problem)
    reason = classify_alias(aliases[0], policy)
    if reason is not None:
        return make("alias", ItemStatus.UNACCEPTABLE, aliases[0], f"{aliases[0]}: {reason}")
    return make("alias", ItemStatus.FOUND, aliases[0], None)
