"""Pure helpers of applications: what the store keeps of an application (JSON of
its merged fields and checklist), who "the same organisation" is, the body text."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from listbot.applications.checklist import Checklist, ItemResult, ItemStatus
from listbot.applications.fields import ApplicationFields, Evidence, EvidenceKind
from listbot.applications.policy import AppPolicy
from listbot.core.mail.view import MessageView


def fields_to_json(f: ApplicationFields) -> str:
    data: dict[str, Any] = {
        "organisation": f.organisation, "domains": list(f.domains),
        "domains_text": f.domains_text, "eligibility": f.eligibility,
        "products": f.products, "all_products": f.all_products,
        "some_products": f.some_products,
        "links": [{"url": e.url, "kinds": sorted(k.value for k in e.kinds),
                   "context": e.context} for e in f.links],
        "policy_statement": f.policy_statement, "policy_other": f.policy_other,
        "aliases": list(f.aliases), "form": f.form,
    }
    return json.dumps(data, sort_keys=True)


def fields_from_json(text: str) -> ApplicationFields:
    d = json.loads(text)
    links = tuple(Evidence(e["url"], frozenset(EvidenceKind(k) for k in e["kinds"]),
                           e["context"]) for e in d["links"])
    return ApplicationFields(
        organisation=d["organisation"], domains=tuple(d["domains"]),
        domains_text=d["domains_text"], eligibility=d["eligibility"], products=d["products"],
        all_products=d["all_products"], some_products=d["some_products"], links=links,
        policy_statement=d["policy_statement"], policy_other=d["policy_other"],
        aliases=tuple(d["aliases"]), form=bool(d["form"]))


def checklist_to_json(c: Checklist) -> str:
    return json.dumps({"form": c.form, "items": [
        {"key": i.key, "title": i.title, "status": i.status.value, "found": i.found,
         "problem": i.problem} for i in c.items]})


def checklist_from_json(text: str) -> Checklist:
    d = json.loads(text)
    return Checklist(tuple(ItemResult(i["key"], i["title"], ItemStatus(i["status"]),
                                      i["found"], i["problem"]) for i in d["items"]),
                     bool(d["form"]))


def org_key(sender: str, policy: AppPolicy) -> str:
    """Mail from the same organisation shares its domain; a free-mail sender is only
    the same applicant when it is the same address."""
    domain = sender.rsplit("@", 1)[-1].lower()
    freemail = any(domain == d or domain.endswith("." + d) for d in policy.freemail_domains)
    return sender.lower() if freemail else domain


def plain_text(raw: bytes) -> str:
    """The first text/plain body part of a message that has no view yet (a received
    one has: `Inbound.view.plain_text`)."""
    return MessageView.parse(raw).plain_text


def body_hash(text: str) -> str:
    """Same text (whitespace aside) = the same application sent again."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()


def alias_of(fields: ApplicationFields) -> str | None:
    return fields.aliases[0].lower() if len(fields.aliases) == 1 else None
