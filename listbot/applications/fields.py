"""What an application says, item by item: the vocabulary the check is written in.

`merge` lays a follow-up over the first message: every found item is quoted
back to the applicant, who can correct a misreading in a follow-up.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum


class EvidenceKind(Enum):
    PROVIDER = "provider"
    USE = "use"
    SECURITY = "security"


ITEM_KEYS: tuple[str, ...] = (
    "organisation",
    "domains",
    "eligibility",
    "products",
    "evidence_provider",
    "evidence_use",
    "evidence_security",
    "policy",
    "alias",
)
EVIDENCE_KEY = {
    EvidenceKind.PROVIDER: "evidence_provider",
    EvidenceKind.USE: "evidence_use",
    EvidenceKind.SECURITY: "evidence_security",
}


@dataclass(frozen=True)
class Evidence:
    """A link offered as evidence; `kinds` is empty when we could not tell for what."""

    url: str
    kinds: frozenset[EvidenceKind]
    context: str


@dataclass(frozen=True)
class ApplicationFields:
    organisation: str | None = None
    domains: tuple[str, ...] = ()
    domains_text: str | None = None  # what was said about domains, even without a name in it
    eligibility: str | None = None
    products: str | None = None  # the products that use the project's software
    all_products: str | None = None  # a statement that all of them do
    some_products: str | None = None  # a statement that only some do
    links: tuple[Evidence, ...] = ()
    policy_statement: str | None = None
    policy_other: str | None = None  # a policy field that does not say read-and-keep
    aliases: tuple[str, ...] = ()
    form: bool = False


def merge(previous: ApplicationFields, follow_up: ApplicationFields) -> ApplicationFields:
    """The application as completed or corrected by a follow-up: what it gives wins."""
    has_products = follow_up.products is not None or follow_up.all_products is not None
    products = follow_up if has_products else previous
    covered = {kind for e in follow_up.links for kind in e.kinds}
    kept: list[Evidence] = []
    for evidence in previous.links:
        rest = evidence.kinds - covered
        if rest or (not evidence.kinds and not follow_up.links):
            kept.append(replace(evidence, kinds=frozenset(rest)))
    new_domains = bool(follow_up.domains or follow_up.domains_text)
    new_policy = follow_up.policy_statement is not None or follow_up.policy_other is not None
    return ApplicationFields(
        organisation=follow_up.organisation or previous.organisation,
        domains=follow_up.domains if new_domains else previous.domains,
        domains_text=follow_up.domains_text if new_domains else previous.domains_text,
        eligibility=follow_up.eligibility or previous.eligibility,
        products=products.products,
        all_products=products.all_products,
        some_products=follow_up.some_products or previous.some_products,
        links=(*follow_up.links, *kept),
        policy_statement=(follow_up if new_policy else previous).policy_statement,
        policy_other=(follow_up if new_policy else previous).policy_other,
        aliases=follow_up.aliases or previous.aliases,
        form=follow_up.form or previous.form,
    )
