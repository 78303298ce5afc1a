"""The items of an application read from its plain-text body
(docs/design.md "Applications to the pre-disclosure list").

A body written in the template's `Field: value` form is read exactly, field by
field.  Free text is read with heuristics that are meant to be explainable:
every found item is quoted back to the applicant, who can correct a misreading
in a follow-up, which `merge` lays over the first message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace

from listbot.applications import check_text as tx
from listbot.applications.classify import under
from listbot.applications.fields import (
    EVIDENCE_KEY,
    ApplicationFields,
    Evidence,
    EvidenceKind,
    merge,
)
from listbot.applications.form import FORM_MIN_FIELDS, LABELS
from listbot.applications.policy import AppPolicy

_CATEGORY_RE = re.compile(
    r"\b(?:public (?:cloud|hosting)|cloud (?:provider|service|platform|hosting|computing)"
    r"|hosting (?:provider|company|service)|(?:vps|iaas|paas|virtual (?:private )?server)s?"
    r" (?:provider|hosting|service)|service provider|software provider|distribution"
    r"|distributor|operating system|(?:software|hardware|appliance|security|embedded) vendor"
    r"|vendor of|large[- ]scale (?:user|deployment|installation)|at scale"
    r"|we (?:sell|ship|distribute|package|embed|offer|provide))\b",
    re.IGNORECASE,
)
_ALL_RE = re.compile(
    r"\b(?:all|each|every one) (?:of )?(?:our|the|its) (?:\w+ )?(?:products|services|offerings"
    r"|(?:virtual )?(?:machines|servers|instances|hosts))\b"
    r"|\bevery (?:product|service|offering|instance|server|appliance) we\b"
    r"|\bexclusively\b|\bour (?:sole|only|single) (?:product|service|offering)\b",
    re.IGNORECASE,
)
_ALL_VALUE_RE = re.compile(r"^\s*(?:all|all of them|everything|yes,? all)\b", re.IGNORECASE)
_SOME_RE = re.compile(
    r"\bnot (?:all|every)\b|\bonly some\b|\bsome of (?:our|the|its)\b|\bsubset of\b"
    r"|\bpart of our (?:products|services|portfolio|offering)\b|\bsome (?:products|services)\b",
    re.IGNORECASE,
)
_PRODUCT_WORD_RE = re.compile(r"\b(?:products?|services?|offerings?|product lines?)\b", re.I)
_LIST_CUE_RE = re.compile(r":|\binclud(?:e|es|ing)\b|\bnamely\b|\bsuch as\b|\bfollowing\b", re.I)
_POLICY_WORD_RE = re.compile(r"\bpolic(?:y|ies)\b", re.IGNORECASE)
_READ_RE = re.compile(r"\b(?:read|reviewed|studied|understood|understand|familiar)\b", re.I)
_KEEP_RE = re.compile(
    r"\b(?:abide|comply|keep|follow|adhere|respect|honou?r|observe|agree|bound|conform)", re.I
)
_NEGATED_RE = re.compile(
    r"\b(?:not|never|n't|cannot|unable to)\s+(?:yet\s+)?(?:read|abide|comply|keep|follow|agree)",
    re.IGNORECASE,
)
_POLICY_VALUE_OK = frozenset({"yes", "agreed", "i agree", "we agree", "yes, agreed"})
_ALIAS_CUE_RE = re.compile(
    r"\balias\b|\badd(?:ed|ing)?\b|\bsubscri(?:be|bed|bing|ption)\b|pre-?disclosure"
    r"|\brole (?:address|account|mailbox)\b|\blist address\b|\bmembership\b"
    r"|\b(?:send|receive) (?:the )?(?:advisories|notifications|pre-?disclosures?)\b",
    re.IGNORECASE,
)
_CONJUNCTION_RE = re.compile(r"^[\s,;/&]*(?:(?:and|or)\b)?[\s,;/&]*(?:also\s*)?$", re.I)
_PROVIDER_CUE_RE = re.compile(
    r"pric|\brates?\b|tariff|\bquote|\bbuy|purchas|\border|download|\bstore\b|\bshop"
    r"|\bplans?\b|repositor|\brepo\b|\bgit\b|github|gitlab|source code|mailing list|archive"
    r"|\bcommits?\b|active development|provider status|status as (?:a )?provider|releases?\b",
    re.IGNORECASE,
)
_SECURITY_CUE_RE = re.compile(
    r"secur|vulnerab|\breport|disclos|psirt|\bcert\b|csirt|incident|\bcontact|bug bounty",
    re.IGNORECASE,
)
_USE_CUE = (
    r"\b{p}\b|\buse[sd]?\b|\busing\b|\busage\b|based on|built on|powered by|runs? on"
    r"|hypervisor|virtuali[sz]ation"
)
_ORG_WORDS = r"[A-Z0-9][\w&'.-]*(?:[ ](?:(?:of|and|for|de|der|the|&)[ ])?[A-Z0-9][\w&'.-]*){0,6}"
_ORG_PATTERNS = (
    re.compile(rf"\bon behalf of (?:the )?({_ORG_WORDS})"),
    re.compile(rf"\b(?:[Ww]e are|[Ww]e're) (?:the )?({_ORG_WORDS})"),
    re.compile(rf"\b(?:I am|I'm|I work)\b[^.\n]{{0,60}}?\b(?:at|with|for) ({_ORG_WORDS})"),
)
_COMPANY_SUFFIX = (
    r"(?:GmbH|AG|Ltd\.?|Limited|Inc\.?|LLC|Corp\.?|Corporation|S\.A\.|SAS|S\.r\.l\.|B\.V\."
    r"|BV|N\.V\.|Oy|AB|ASA|A/S|Pty|PLC|plc|K\.K\.|Project|Foundation|e\.V\.|University)"
)
_COMPANY_RE = re.compile(rf"((?:[A-Z0-9][\w&'.-]*[ ]){{1,5}}{_COMPANY_SUFFIX})(?![\w])")


def extract_application(text: str, policy: AppPolicy) -> ApplicationFields:
    """The application items found in a plain-text body (form or free text)."""
    body = tx.split_body(text, policy.max_body_chars)
    values = tx.parse_fields(body.text.split("\n"), LABELS, policy.project_name)
    from_form = _from_fields(values, policy)
    if len(values) >= FORM_MIN_FIELDS:
        return replace(from_form, form=True)
    # Free text: labelled lines still win over what the heuristics guess.
    return merge(_from_free_text(body, policy), from_form)


def _from_fields(values: dict[str, str], policy: AppPolicy) -> ApplicationFields:
    def get(key: str) -> str | None:
        value = values.get(key, "").strip()
        return value or None

    organisation = get("organisation")
    domains_text = get("domains")
    products, all_products, some_products = _products_from_value(get("products"))
    policy_value = get("policy")
    links: list[Evidence] = []
    for kind, key in EVIDENCE_KEY.items():
        for url in tx.urls(values.get(key, "")):
            links.append(Evidence(url=url, kinds=frozenset({kind}), context=key))
    # Under its own label the statement need not name the policy again.
    policy_ok = policy_value is not None and (
        _says_read_and_keep(policy_value) or tx.oneline(policy_value).lower() in _POLICY_VALUE_OK
    )
    return ApplicationFields(
        organisation=tx.oneline(organisation.split("\n")[0]) if organisation else None,
        domains=tuple(tx.hostnames(domains_text or "")),
        domains_text=tx.oneline(domains_text) if domains_text else None,
        eligibility=tx.oneline(get("eligibility") or "") or None,
        products=products,
        all_products=all_products,
        some_products=some_products,
        links=tuple(links),
        policy_statement=tx.oneline(policy_value) if policy_value and policy_ok else None,
        policy_other=tx.oneline(policy_value) if policy_value and not policy_ok else None,
        aliases=tuple(_alias_candidates(tx.addresses(values.get("alias", "")), policy)),
    )


def _products_from_value(value: str | None) -> tuple[str | None, str | None, str | None]:
    """(products, all_products, some_products) from the products field."""
    if value is None:
        return None, None, None
    quoted = tx.oneline(value)
    if _ALL_VALUE_RE.match(value) or _ALL_RE.search(value):
        return None, quoted, None
    if _SOME_RE.search(value) and tx.word_count(value) <= 6:
        return None, None, quoted
    return quoted, None, None


def _from_free_text(body: tx.Body, policy: AppPolicy) -> ApplicationFields:
    sentences = tx.sentences(body.text)
    organisation = _organisation(body, sentences, policy)
    domain_sentences = [s for s in sentences if re.search(r"\bdomains?\b", s, re.I)]
    domains = [h for s in domain_sentences for h in tx.hostnames(s)]
    all_s, some_s, list_s = _products_free(sentences, organisation, policy)
    return ApplicationFields(
        organisation=organisation,
        domains=tuple(dict.fromkeys(domains)),
        domains_text=tx.oneline(" ".join(domain_sentences)) if domain_sentences else None,
        eligibility=_first(s for s in sentences if _CATEGORY_RE.search(s)),
        products=list_s,
        all_products=all_s,
        some_products=some_s,
        links=tuple(_free_links(sentences, policy)),
        policy_statement=_first(s for s in sentences if _is_policy_statement(s)),
        aliases=tuple(_free_aliases(sentences, policy)),
    )


def _first(candidates: Iterable[str]) -> str | None:
    for candidate in candidates:
        return tx.oneline(tx.unbulleted(candidate))
    return None


def _organisation(body: tx.Body, sentences: list[str], policy: AppPolicy) -> str | None:
    project = policy.project_name.lower()
    candidates: list[str] = []
    for pattern in _ORG_PATTERNS:
        candidates += [m.group(1) for s in sentences for m in pattern.finditer(s)]
    candidates += [m.group(1) for s in sentences for m in _COMPANY_RE.finditer(s)]
    for line in body.signature.split("\n"):
        match = _COMPANY_RE.search(line.split(",")[-1])
        if match:
            candidates.append(match.group(1))
    for candidate in candidates:
        name = _trim_org(candidate)
        if name and name.lower() != project:
            return tx.oneline(name)
    return None


_ABBREVIATIONS = frozenset({"inc", "ltd", "co", "corp", "bros", "sp", "st"})


def _trim_org(candidate: str) -> str:
    words = candidate.strip().rstrip(",;:").split(" ")
    while words and words[-1] in ("I", "We", "Our", "The", "&"):
        words.pop()
    if words and words[-1].endswith("."):
        last = words[-1][:-1]
        # "B.V." and "Ltd." keep their point; a sentence's full stop does not.
        if "." not in last and last.lower() not in _ABBREVIATIONS:
            words[-1] = last
    return " ".join(words)


def _products_free(
    sentences: list[str], organisation: str | None, policy: AppPolicy
) -> tuple[str | None, str | None, str | None]:
    project_re = re.compile(rf"\b{re.escape(policy.project_name)}\b", re.IGNORECASE)
    ignored = {policy.project_name.lower(), "i", "we", "our", "us"}
    ignored |= {w.lower() for w in (organisation or "").split()}
    all_s = some_s = list_s = None
    for index, sentence in enumerate(sentences):
        if not project_re.search(sentence):
            continue
        if all_s is None and _ALL_RE.search(sentence) and not _SOME_RE.search(sentence):
            all_s = tx.oneline(sentence)
        if some_s is None and _SOME_RE.search(sentence):
            some_s = tx.oneline(sentence)
        plain = _without_urls(sentence)
        if list_s is None and _PRODUCT_WORD_RE.search(plain):
            words = re.findall(r"[\w][\w-]*", tx.unbulleted(plain))[1:]
            names = [w for w in words if w[0].isupper() and w.lower() not in ignored]
            if _LIST_CUE_RE.search(plain) or names:
                list_s = tx.oneline(_with_bullets(sentences, index))
    return all_s, some_s, list_s


def _without_urls(text: str) -> str:
    for url in tx.urls(text):
        text = text.replace(url, " ")
    return text


def _with_bullets(sentences: list[str], index: int) -> str:
    """A lead-in ending in ":" with the bullet items that follow it."""
    parts = [sentences[index]]
    if parts[0].endswith(":"):
        for item in sentences[index + 1 : index + 9]:
            if not item.startswith(("-", "*", "\u2022")):
                break
            parts.append(item)
    return " ".join(parts)


def _is_policy_statement(text: str) -> bool:
    return bool(_POLICY_WORD_RE.search(text)) and _says_read_and_keep(text)


def _says_read_and_keep(text: str) -> bool:
    return bool(_READ_RE.search(text) and _KEEP_RE.search(text) and not _NEGATED_RE.search(text))


def _free_links(sentences: list[str], policy: AppPolicy) -> list[Evidence]:
    use_re = re.compile(_USE_CUE.format(p=re.escape(policy.project_name)), re.IGNORECASE)
    found: dict[str, Evidence] = {}
    for sentence in sentences:
        for anchor in (a for a in tx.anchors(sentence) if a.is_url):
            kinds = _kinds_in(anchor.before, use_re) or _kinds_in(anchor.after, use_re)
            context = anchor.before if _kinds_in(anchor.before, use_re) else anchor.after
            if not kinds:
                kinds = _kinds_in(anchor.value.split("://", 1)[-1], use_re)
            previous = found.get(anchor.value)
            if previous is not None:
                kinds |= previous.kinds
            found[anchor.value] = Evidence(anchor.value, kinds, tx.oneline(context, 120))
    return list(found.values())


def _kinds_in(text: str, use_re: re.Pattern[str]) -> frozenset[EvidenceKind]:
    kinds = set()
    if _PROVIDER_CUE_RE.search(text):
        kinds.add(EvidenceKind.PROVIDER)
    if use_re.search(text):
        kinds.add(EvidenceKind.USE)
    if _SECURITY_CUE_RE.search(text):
        kinds.add(EvidenceKind.SECURITY)
    return frozenset(kinds)


def _free_aliases(sentences: list[str], policy: AppPolicy) -> list[str]:
    chosen: list[str] = []
    for sentence in sentences:
        previous_was_alias = False
        for anchor in tx.anchors(sentence):
            if anchor.is_url:
                previous_was_alias = False
                continue
            if _ALIAS_CUE_RE.search(anchor.before) or (
                previous_was_alias and _CONJUNCTION_RE.match(anchor.before)
            ):
                chosen.append(anchor.value)
                previous_was_alias = True
            else:
                previous_was_alias = False
    return _alias_candidates(tx.addresses(" ".join(chosen)), policy)


def _alias_candidates(addresses: list[str], policy: AppPolicy) -> list[str]:
    own = tuple(d.lower() for d in policy.own_domains)
    kept = [a for a in addresses if not under(a.rpartition("@")[2], own)]
    return list(dict.fromkeys(a.lower() for a in kept))
