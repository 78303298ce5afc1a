"""Completeness check of applications (docs/design.md "Applications to the pre-disclosure list").

Pure: the plain-text body in, a checklist and the text of the reply out.  An
application lacking any required item cannot be accepted, so the check says
exactly which items were found (quoting them), which are missing and which
were given in a form the policy does not accept.  The decision itself stays
with the security team; a complete checklist only lets them consider it.

A body written in the template's `Field: value` form is read exactly, field by
field.  Free text is read with heuristics that are meant to be explainable:
every found item is quoted back to the applicant, who can correct a misreading
in a follow-up, which `merge` lays over the first message.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

import re2

from listbot.applications import check_text as tx
from listbot.core.errors import ConfigError


class ItemStatus(Enum):
    FOUND = "found"
    MISSING = "missing"
    UNACCEPTABLE = "unacceptable"


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
_EVIDENCE_KEY = {
    EvidenceKind.PROVIDER: "evidence_provider",
    EvidenceKind.USE: "evidence_use",
    EvidenceKind.SECURITY: "evidence_security",
}


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


# Local parts that name a function, not a person.  Substrings for words that
# hardly occur inside names; whole tokens for short ones.
_DEFAULT_ROLE_ALLOW = (
    r"(?i)(secur|psirt|csirt|sirt|cert|vuln|disclos|embargo|advisor|incident|infosec)",
    r"(?i)(^|[._+-])(sec|soc|noc|ops|team|admin|sysadmin|response|alerts?|lists?|announce)"
    r"([._+-]|$)",
)
_DEFAULT_ROLE_DENY = (r"(?i)^(no-?reply|do-?not-?reply|mailer-daemon|bounces?|postmaster)$",)
_DEFAULT_PERSONAL = (
    r"(?i)^[a-z]+([._-][a-z]+){1,2}$",  # first.last, first_last, f.last, first.m.last
)
_DEFAULT_FIRST_NAMES = (
    "adam", "alex", "alice", "andrea", "andrew", "anna", "anne", "ben", "bob", "carlos",
    "chris", "claire", "daniel", "david", "emma", "eric", "eva", "frank", "george", "hans",
    "ian", "jack", "james", "jan", "jane", "jean", "jens", "john", "jose", "juan", "julia",
    "karl", "kate", "laura", "lisa", "maria", "mark", "martin", "mary", "michael", "mike",
    "nick", "olga", "paul", "peter", "robert", "sam", "sarah", "stefan", "steve", "susan",
    "thomas", "tom", "wei", "yuki",
)  # fmt: skip
_DEFAULT_FREEMAIL = (
    "gmail.com", "googlemail.com", "yahoo.com", "hotmail.com", "outlook.com", "live.com",
    "msn.com", "aol.com", "icloud.com", "me.com", "gmx.de", "gmx.net", "web.de",
    "proton.me", "protonmail.com", "mail.ru", "yandex.ru", "qq.com", "163.com",
    "zoho.com", "fastmail.com", "tutanota.com",
)  # fmt: skip
_DEFAULT_LINK_DENY_DOMAINS = (
    ("youtube.com", "a video"), ("youtu.be", "a video"), ("vimeo.com", "a video"),
    ("dailymotion.com", "a video"), ("twitter.com", "a social media post"),
    ("x.com", "a social media post"), ("facebook.com", "a social media post"),
    ("linkedin.com", "a social media post"), ("instagram.com", "a social media post"),
    ("tiktok.com", "a social media post"), ("mastodon.social", "a social media post"),
    ("reddit.com", "a social media post"), ("bsky.app", "a social media post"),
    ("medium.com", "a blog post"), ("substack.com", "a blog post"),
    ("blogspot.com", "a blog post"), ("wordpress.com", "a blog post"),
    ("tumblr.com", "a blog post"),
)  # fmt: skip
_DEFAULT_SHORTENERS = (
    "bit.ly", "t.co", "tinyurl.com", "goo.gl", "ow.ly", "is.gd", "buff.ly", "lnkd.in",
    "t.ly", "rebrand.ly", "cutt.ly", "s.id",
)  # fmt: skip
# Applied to "host/path" in lower case.
_DEFAULT_LINK_DENY_PATTERNS = (
    (r"\.pdf$", "a PDF document, not a web page"),
    (r"\.(docx?|odt|pptx?|xlsx?|zip)$", "a document file, not a web page"),
    (r"\.(mp4|webm|mov|avi|mkv)$", "a video"),
    (r"^blog\.|/blogs?(/|$)", "a blog post, not an ordinary web page"),
    (r"/(login|log-in|signin|sign-in|sign_in|sso|auth)(/|$|\.)", "a login page, not public"),
)


@dataclass(frozen=True)
class AppPolicy:
    project_name: str = "Xen"
    role_allow_patterns: tuple[str, ...] = _DEFAULT_ROLE_ALLOW
    role_deny_patterns: tuple[str, ...] = _DEFAULT_ROLE_DENY
    personal_localpart_patterns: tuple[str, ...] = _DEFAULT_PERSONAL
    common_first_names: tuple[str, ...] = _DEFAULT_FIRST_NAMES
    freemail_domains: tuple[str, ...] = _DEFAULT_FREEMAIL
    own_domains: tuple[str, ...] = ()  # the project's own addresses are never an alias
    link_deny_domains: tuple[tuple[str, str], ...] = _DEFAULT_LINK_DENY_DOMAINS
    link_shortener_domains: tuple[str, ...] = _DEFAULT_SHORTENERS
    link_deny_patterns: tuple[tuple[str, str], ...] = _DEFAULT_LINK_DENY_PATTERNS
    policy_url: str | None = None
    max_body_chars: int = 100_000

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not self.project_name.strip():
            problems.append("project_name: must not be empty")
        named = [
            *(("role_allow_patterns", p) for p in self.role_allow_patterns),
            *(("role_deny_patterns", p) for p in self.role_deny_patterns),
            *(("personal_localpart_patterns", p) for p in self.personal_localpart_patterns),
            *(("link_deny_patterns", p) for p, _ in self.link_deny_patterns),
        ]
        for name, pattern in named:
            try:
                _re2(pattern)
            except Exception as exc:  # re2 raises its own error type
                problems.append(f"{name}: bad pattern {pattern!r}: {exc}")
        if problems:
            raise ConfigError(problems)


@functools.lru_cache(maxsize=512)
def _re2(pattern: str) -> Any:
    return re2.compile(pattern)


def _rx(pattern: str, text: str) -> bool:
    return _re2(pattern).search(text) is not None


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


# ---------------------------------------------------------------- the template

_TEMPLATE_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("organisation", "Organisation", "[name of your organisation]"),
    ("domains", "Domains", "[domain names you use to provide services or software based on {p}]"),
    ("eligibility", "Eligibility", "[why you fit the criteria, e.g. public cloud provider]"),
    ("products", "Products using {p}", '[which products or services use {p}, or "all"]'),
    ("evidence_provider", "Provider evidence", "[https:// link: rates, download or purchase page,"
     " or repository with active development]"),
    ("evidence_use", "Use evidence", "[https:// link to a page showing that you use {p}]"),
    ("evidence_security", "Security contact page", "[https:// link to your invitation to report"
     " security problems, with the contact to use]"),
    ("policy", "Policy statement", "[say that you have read the {p} security policy"
     " and will keep it]"),
    ("alias", "Role alias", "[exactly one non-personal address, e.g. security@your-domain]"),
)  # fmt: skip

_LABELS: dict[str, str] = {
    **dict.fromkeys(
        ("organisation", "organization", "organisation name", "organization name",
         "name of organisation", "name of organization", "name of your organisation",
         "name of your organization", "company", "company name"), "organisation"),
    **dict.fromkeys(
        ("domains", "domain", "domain names", "domain name", "domain names used"), "domains"),
    **dict.fromkeys(
        ("eligibility", "criteria", "why we fit the criteria", "why you fit the criteria",
         "how we fit the criteria", "why we qualify", "eligibility statement"), "eligibility"),
    **dict.fromkeys(
        ("products", "products using project", "products that use project",
         "products/services using project", "products and services using project",
         "services using project", "which products", "which products use project"), "products"),
    **dict.fromkeys(
        ("provider evidence", "evidence of provider status", "provider status",
         "evidence of status as a provider", "provider"), "evidence_provider"),
    **dict.fromkeys(
        ("use evidence", "evidence of use", "evidence of use of project", "use of project",
         "usage evidence"), "evidence_use"),
    **dict.fromkeys(
        ("security contact", "security evidence", "security", "security policy",
         "security contact information", "vulnerability reporting",
         "how to report security problems"), "evidence_security"),
    **dict.fromkeys(("policy statement", "policy", "policy agreement"), "policy"),
    **dict.fromkeys(
        ("role alias", "alias", "role address", "list address", "e-mail alias", "email alias",
         "address to subscribe", "subscription address"), "alias"),
}  # fmt: skip
_FORM_MIN_FIELDS = 3  # fewer known labels than this is free text with a label or two in it


def template(policy: AppPolicy) -> str:
    """The fill-in form the reply offers; `extract_application` reads it back exactly."""
    p = policy.project_name
    lines = [f"{label.format(p=p)}: {hint.format(p=p)}" for _, label, hint in _TEMPLATE_FIELDS]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------- free-text cues

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


# ---------------------------------------------------------------- extraction


def extract_application(text: str, policy: AppPolicy) -> ApplicationFields:
    """The application items found in a plain-text body (form or free text)."""
    body = tx.split_body(text, policy.max_body_chars)
    values = tx.parse_fields(body.text.split("\n"), _LABELS, policy.project_name)
    from_form = _from_fields(values, policy)
    if len(values) >= _FORM_MIN_FIELDS:
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
    for kind, key in _EVIDENCE_KEY.items():
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
    kept = [a for a in addresses if not _under(a.rpartition("@")[2], own)]
    return list(dict.fromkeys(a.lower() for a in kept))


def _under(host: str, domains: tuple[str, ...]) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


# ------------------------------------------------------------------- merging


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


# -------------------------------------------------------------- classifiers


def classify_link(url: str, policy: AppPolicy) -> str | None:
    """None for an ordinary public web page; otherwise why the link is not acceptable."""
    if "://" not in url:
        return "not a full link: give the address starting with https://"
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return "not a valid web address"
    if parts.scheme.lower() not in ("http", "https"):
        return f"not an http(s) link ({parts.scheme} scheme)"
    if parts.username is not None or parts.password is not None:
        return "carries a user name or password"
    host = (parts.hostname or "").lower().rstrip(".")
    return _host_problem(host) or _site_problem(host, parts.path or "/", policy)


def _host_problem(host: str) -> str | None:
    if not host:
        return "has no host name"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return "an IP address, not a public web page under your domain"
    if "." not in host or host.endswith((".local", ".internal", ".localhost")):
        return "not a public host name"
    return None


def _site_problem(host: str, path: str, policy: AppPolicy) -> str | None:
    if _under(host, tuple(d.lower() for d in policy.link_shortener_domains)):
        return "a URL shortener hides the page: give the page's own address"
    for domain, what in policy.link_deny_domains:
        if _under(host, (domain.lower(),)):
            return f"{what} ({domain}), not an ordinary web page"
    target = host + path.lower()
    for pattern, what in policy.link_deny_patterns:
        if _rx(pattern, target):
            return what
    return None


def classify_alias(address: str, policy: AppPolicy) -> str | None:
    """None for a role address; otherwise why it cannot be the list alias."""
    match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._%+-]{0,63})@([A-Za-z0-9.-]{1,253})", address)
    if match is None or "." not in match.group(2):
        return "not an e-mail address"
    local = match.group(1).split("+", 1)[0].lower()
    domain = match.group(2).lower()
    if _under(domain, tuple(d.lower() for d in policy.own_domains)):
        return "one of the project's own addresses"
    if _under(domain, tuple(d.lower() for d in policy.freemail_domains)):
        return "a free-mail address, not an address of your organisation"
    return _local_part_problem(local, policy)


def _local_part_problem(local: str, policy: AppPolicy) -> str | None:
    if any(_rx(p, local) for p in policy.role_deny_patterns):
        return "a system address (no-reply, bounces), not a role alias that people read"
    project_token = rf"(?i)(^|[._+-]){re.escape(policy.project_name.lower())}([._+-]|$)"
    if any(_rx(p, local) for p in policy.role_allow_patterns) or _rx(project_token, local):
        return None
    if any(_rx(p, local) for p in policy.personal_localpart_patterns):
        return "looks like a person's address (name.surname); give a role alias"
    names = {n.lower() for n in policy.common_first_names}
    if local in names or (local[:-1] in names and len(local) > 3):
        return "looks like a person's address (a first name); give a role alias"
    return None


# ------------------------------------------------------------------ checking


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
    key = _EVIDENCE_KEY[kind]
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


# ------------------------------------------------------------------ the reply

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


# ------------------------------------------------------- subscription requests

_COMMAND_SUFFIXES = ("-request", "-join", "-subscribe", "-leave", "-unsubscribe")
_COMMAND_SUBJECT_RE = re.compile(
    r"(?:re:\s*)?(?:(?:un)?subscribe(?:\s+\S+){0,2}|join|leave)\s*", re.IGNORECASE
)
_SUBSCRIBE_WORDS_RE = re.compile(
    r"\b(?:un)?subscri(?:be|ption)\b|\bjoin\b|\badd (?:me|us)\b|\bsign (?:me|us) up\b",
    re.IGNORECASE,
)
# A "please subscribe me" note is short; anything longer is treated as an
# (incomplete) application so that the sender learns what is required.
_MAX_SUBSCRIBE_WORDS = 30


def is_subscription_request(subject: str, body: str, recipient_local: str) -> bool:
    """A request to subscribe by other means: it changes nothing and gets no reply."""
    if recipient_local.lower().endswith(_COMMAND_SUFFIXES):
        return True
    text = tx.split_body(body, 20_000).text
    if tx.urls(text) or tx.word_count(text) > _MAX_SUBSCRIBE_WORDS:
        return False
    command = _COMMAND_SUBJECT_RE.fullmatch(tx.oneline(subject)) is not None
    return command or _SUBSCRIBE_WORDS_RE.search(text) is not None
