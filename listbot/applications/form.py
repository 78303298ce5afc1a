"""The fill-in form: its fields, the labels that name them, the template the reply offers."""

from __future__ import annotations

from listbot.applications.policy import AppPolicy

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

LABELS: dict[str, str] = {
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
FORM_MIN_FIELDS = 3  # fewer known labels than this is free text with a label or two in it


def template(policy: AppPolicy) -> str:
    """The fill-in form the reply offers; `extract_application` reads it back exactly."""
    p = policy.project_name
    lines = [f"{label.format(p=p)}: {hint.format(p=p)}" for _, label, hint in _TEMPLATE_FIELDS]
    return "\n".join(lines) + "\n"
