"""Completeness check of applications to the pre-disclosure list
(docs/design.md "Applications to the pre-disclosure list")."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listbot.applications.checklist import Checklist, ItemStatus, check_application
from listbot.applications.classify import classify_alias, classify_link
from listbot.applications.extract import extract_application
from listbot.applications.fields import ITEM_KEYS, ApplicationFields, Evidence, EvidenceKind, merge
from listbot.applications.form import template
from listbot.applications.policy import AppPolicy
from listbot.applications.reply import render_reply
from listbot.applications.subscription import is_subscription_request
from listbot.core.errors import ConfigError

DATA = Path(__file__).parents[1] / "data" / "applications"
POLICY = AppPolicy(project_name="Xen", own_domains=("lists.example.org",))

# file -> (items MISSING, items NOT ACCEPTABLE); every other item must be FOUND.
EXPECTED: dict[str, tuple[set[str], set[str]]] = {
    "free_cloud_narrative.eml": (set(), set()),
    "free_distro_bullets.eml": (set(), set()),
    "free_vendor_terse.eml": (set(), set()),
    "form_hosting.eml": (set(), set()),
    "form_opensource.eml": (set(), set()),
    "blog_and_video.eml": ({"evidence_security"}, {"evidence_provider", "evidence_use"}),
    "personal_address.eml": (set(), {"alias"}),
    "two_aliases.eml": (set(), {"alias"}),
    "no_policy_statement.eml": ({"policy"}, set()),
    "no_domains.eml": ({"domains"}, set()),
    "some_products_unnamed.eml": ({"products"}, set()),
    "duplicate_1.eml": ({"evidence_security", "policy"}, set()),
    "duplicate_2.eml": ({"evidence_security", "policy"}, set()),
    "followup_1.eml": ({"domains", "evidence_security", "alias"}, set()),
    "followup_2.eml": (
        {"organisation", "eligibility", "products", "evidence_provider", "evidence_use", "policy"},
        set(),
    ),
    "subscribe_only.eml": (set(ITEM_KEYS), set()),
}
FORMS = {"form_hosting.eml", "form_opensource.eml", "followup_2.eml"}


def load(name: str) -> EmailMessage:
    raw = (DATA / name).read_bytes()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def body_of(name: str) -> str:
    part = load(name).get_body(preferencelist=("plain",))
    assert part is not None
    text = part.get_content()
    assert isinstance(text, str)
    return text


def check_file(name: str) -> Checklist:
    return check_application(extract_application(body_of(name), POLICY), POLICY)


def test_every_example_has_an_expected_result() -> None:
    files = {p.name for p in DATA.glob("*.eml")}
    assert files == set(EXPECTED)
    assert len(files) >= 14


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_gives_exactly_the_expected_checklist(name: str) -> None:
    missing, unacceptable = EXPECTED[name]
    checklist = check_file(name)
    assert [item.key for item in checklist.items] == list(ITEM_KEYS)
    assert set(checklist.missing) == missing
    assert set(checklist.unacceptable) == unacceptable
    assert checklist.complete == (not missing and not unacceptable)
    assert checklist.form == (name in FORMS)
    for item in checklist.items:
        if item.status is ItemStatus.FOUND:
            assert item.found and item.problem is None
        else:
            assert item.problem


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_examples_are_well_formed_mail(name: str) -> None:
    message = load(name)
    assert str(message["To"]) == "predisclosure-applications@lists.example.org"
    for header in ("From", "Subject", "Date", "Message-ID"):
        assert message[header], header


def test_found_values_quote_what_the_applicant_wrote() -> None:
    checklist = check_file("free_cloud_narrative.eml")
    assert checklist.item("organisation").found == "Nimbus Cloud GmbH"
    assert checklist.item("domains").found == "nimbus-cloud.example, nimbus-vps.example"
    assert checklist.item("alias").found == "security@nimbus-cloud.example"
    assert checklist.item("evidence_provider").found == (
        "https://www.nimbus-cloud.example/en/pricing"
    )
    assert checklist.item("evidence_use").found == (
        "https://www.nimbus-cloud.example/en/technology"
    )
    assert checklist.item("evidence_security").found == (
        "https://www.nimbus-cloud.example/en/security"
    )
    vendor = check_file("free_vendor_terse.eml")
    assert vendor.item("organisation").found == "Kestrel Systems Ltd."  # from the signature
    assert vendor.item("alias").found == "psirt@kestrel-systems.example"


def test_unacceptable_items_say_why() -> None:
    video = check_file("blog_and_video.eml")
    assert "video" in (video.item("evidence_provider").problem or "")
    assert "blog post" in (video.item("evidence_use").problem or "")
    personal = check_file("personal_address.eml")
    assert "person" in (personal.item("alias").problem or "")
    assert personal.item("alias").found == "daniel.kowalski@brightrack.example"
    two = check_file("two_aliases.eml")
    assert "exactly one" in (two.item("alias").problem or "")
    some = check_file("some_products_unnamed.eml")
    assert "which" in (some.item("products").problem or "")


def test_the_same_application_sent_twice_gets_the_same_check() -> None:
    first, second = body_of("duplicate_1.eml"), body_of("duplicate_2.eml")
    assert first == second
    fields = extract_application(first, POLICY)
    assert extract_application(second, POLICY) == fields
    checklist = check_application(fields, POLICY)
    assert check_application(fields, POLICY) == checklist
    assert check_application(merge(fields, fields), POLICY) == checklist
    assert render_reply(checklist, POLICY) == render_reply(check_file("duplicate_2.eml"), POLICY)


def test_follow_up_completes_the_application() -> None:
    first = extract_application(body_of("followup_1.eml"), POLICY)
    follow_up = extract_application(body_of("followup_2.eml"), POLICY)
    merged = check_application(merge(first, follow_up), POLICY)
    assert merged.complete, merged
    assert merged.item("organisation").found == "Atlantico Cloud S.A."
    assert merged.item("alias").found == "security@atlantico-cloud.example"
    assert merged.item("domains").found == "atlantico-cloud.example, atlantico.example"
    # The quoted reply ("> Organisation: [...]") is not read as an answer.
    assert follow_up.organisation is None


def test_follow_up_replaces_evidence_of_the_kinds_it_gives_and_keeps_the_rest() -> None:
    old = ApplicationFields(
        links=(
            Evidence("https://a.example/blog/x", frozenset({EvidenceKind.USE}), "use"),
            Evidence("https://a.example/prices", frozenset({EvidenceKind.PROVIDER}), "p"),
        ),
        aliases=("jane.doe@a.example",),
    )
    new = ApplicationFields(
        links=(Evidence("https://a.example/platform", frozenset({EvidenceKind.USE}), "use"),),
        aliases=("security@a.example",),
    )
    checklist = check_application(merge(old, new), POLICY)
    assert checklist.item("evidence_use").status is ItemStatus.FOUND
    assert checklist.item("evidence_use").found == "https://a.example/platform"
    assert checklist.item("evidence_provider").found == "https://a.example/prices"
    assert checklist.item("alias").found == "security@a.example"


def fill_template(text: str) -> str:
    answers = {
        "Organisation": "Example Hosting Ltd",
        "Domains": "example-hosting.example, cloud.example-hosting.example",
        "Eligibility": "We are a public hosting provider renting Xen virtual machines.",
        "Products using Xen": "all",
        "Provider evidence": "https://example-hosting.example/pricing",
        "Use evidence": "https://example-hosting.example/platform",
        "Security contact page": "https://example-hosting.example/security",
        "Policy statement": "We have read the Xen security policy and will keep it.",
        "Role alias": "security@example-hosting.example",
    }
    lines = []
    for line in text.splitlines():
        label = line.split(":", 1)[0]
        lines.append(f"{label}: {answers[label]}")
    return "\n".join(lines) + "\n"


def test_template_filled_in_is_complete() -> None:
    filled = fill_template(template(POLICY))
    fields = extract_application(filled, POLICY)
    checklist = check_application(fields, POLICY)
    assert checklist.form
    assert checklist.complete, checklist
    assert fields.organisation == "Example Hosting Ltd"


def test_template_left_blank_has_every_item_missing() -> None:
    checklist = check_application(extract_application(template(POLICY), POLICY), POLICY)
    assert checklist.form
    assert set(checklist.missing) == set(ITEM_KEYS)


def test_template_names_the_project() -> None:
    text = template(AppPolicy(project_name="Frobnicator"))
    assert "Products using Frobnicator:" in text
    assert "Xen" not in text


def test_form_values_that_say_nothing_are_not_acceptable() -> None:
    text = (
        "Organisation: Example Hosting Ltd\n"
        "Domains: none\n"
        "Eligibility: yes\n"
        "Policy statement: no\n"
        "Role alias: security@example-hosting.example\n"
        "Provider evidence: www.example-hosting.example/pricing\n"
    )
    checklist = check_application(extract_application(text, POLICY), POLICY)
    assert set(checklist.unacceptable) == {"domains", "eligibility", "policy", "evidence_provider"}
    assert "https://" in (checklist.item("evidence_provider").problem or "")


def test_form_value_continues_over_wrapped_and_indented_lines() -> None:
    text = (
        "Organisation: Example Hosting Ltd\n"
        "Eligibility: We are a public hosting provider\n"
        "renting virtual machines\n"
        "Domains:\n"
        "  a.example\n"
        "\n"
        "  b.example\n"
        "Role alias: security@a.example\n"
        "\n"
        "Jane Doe <jane.doe@a.example>\n"
    )
    fields = extract_application(text, POLICY)
    assert fields.eligibility == "We are a public hosting provider renting virtual machines"
    assert fields.domains == ("a.example", "b.example")
    assert fields.aliases == ("security@a.example",)


def test_negated_policy_statement_is_not_a_statement() -> None:
    text = "We have not read the Xen security policy yet but will follow it.\n"
    assert extract_application(text, POLICY).policy_statement is None


def test_crlf_body_reads_like_lf_body() -> None:
    text = body_of("free_cloud_narrative.eml")
    crlf = text.replace("\n", "\r\n")
    assert extract_application(crlf, POLICY) == extract_application(text, POLICY)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_reply_covers_every_item(name: str) -> None:
    checklist = check_file(name)
    reply = render_reply(checklist, POLICY)
    assert "\r" not in reply
    for item in checklist.items:
        assert item.title in reply
        if item.status is ItemStatus.FOUND:
            assert f'FOUND: "{item.found}"' in reply
        elif item.status is ItemStatus.MISSING:
            assert f"MISSING: {item.problem}" in reply
        else:
            assert f"NOT ACCEPTABLE: {item.problem}" in reply
    if checklist.complete:
        assert "cannot be accepted" not in reply
        assert template(POLICY) not in reply
    else:
        assert "cannot be accepted" in reply
        assert template(POLICY) in reply


def test_reply_to_the_blog_and_video_application() -> None:
    reply = render_reply(check_file("blog_and_video.eml"), POLICY)
    assert "NOT ACCEPTABLE: https://www.youtube.com/watch?v=Xq3c9bR2kLw: a video" in reply
    assert "INCOMPLETE" in reply


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://www.vendor.example/pricing", None),
        ("http://vendor.example/security/", None),
        ("https://git.vendor.example/xen/log?h=main", None),
        ("https://www.youtube.com/watch?v=abc", "video"),
        ("https://youtu.be/abc", "video"),
        ("https://vimeo.com/123", "video"),
        ("https://x.com/vendor/status/1", "social media"),
        ("https://www.linkedin.com/posts/vendor", "social media"),
        ("https://medium.com/@vendor/xen", "blog post"),
        ("https://blog.vendor.example/2024/xen", "blog post"),
        ("https://vendor.example/blog/moving-to-xen", "blog post"),
        ("https://vendor.example/docs/Security.PDF", "PDF"),
        ("https://vendor.example/login?next=/security", "login"),
        ("https://bit.ly/3abc", "shortener"),
        ("https://192.0.2.10/pricing", "IP address"),
        ("https://[2001:db8::1]/pricing", "IP address"),
        ("ftp://ftp.vendor.example/pub", "http(s)"),
        ("javascript://alert(1)", "http(s)"),
        ("www.vendor.example/pricing", "https://"),
        ("https://user:pw@vendor.example/", "user name"),
        ("https://intranet/pricing", "public host"),
        ("https://vendor.example:99999/", "valid"),
    ],
)
def test_classify_link(url: str, reason: str | None) -> None:
    result = classify_link(url, POLICY)
    if reason is None:
        assert result is None
    else:
        assert result is not None and reason in result


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("security@vendor.example", None),
        ("psirt@vendor.example", None),
        ("xen-security@vendor.example", None),
        ("xen@vendor.example", None),
        ("secteam@vendor.example", None),
        ("cloud-ops@vendor.example", None),
        ("security+xen@vendor.example", None),
        ("jane.doe@vendor.example", "person"),
        ("jane_doe@vendor.example", "person"),
        ("j.doe@vendor.example", "person"),
        ("john@vendor.example", "person"),
        ("security@gmail.com", "free-mail"),
        ("noreply@vendor.example", "system address"),
        ("security@lists.example.org", "own"),
        ("not-an-address", "not an e-mail"),
    ],
)
def test_classify_alias(address: str, reason: str | None) -> None:
    result = classify_alias(address, POLICY)
    if reason is None:
        assert result is None
    else:
        assert result is not None and reason in result


def test_alias_patterns_are_configurable() -> None:
    strict = AppPolicy(role_deny_patterns=(r"(?i)^cloud-ops$",))
    assert classify_alias("cloud-ops@vendor.example", strict) is not None
    assert classify_alias("cloud-ops@vendor.example", POLICY) is None


def test_bad_patterns_are_reported_all_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        AppPolicy(role_allow_patterns=("(unclosed",), link_deny_patterns=(("[bad", "x"),))
    assert len(info.value.problems) == 2


@pytest.mark.parametrize(
    ("subject", "body", "local", "expected"),
    [
        ("subscribe", "", "predisclosure-applications", True),
        ("anything", "a full application text", "predisclosure-applications-request", True),
        ("hello", "", "predisclosure-join", True),
        ("hello", "", "predisclosure-subscribe", True),
        ("Please add us", "Please subscribe me to the list.\n", "predisclosure-applications", True),
        (
            "subscribe",
            body_of("free_cloud_narrative.eml"),
            "predisclosure-applications",
            False,
        ),
        (
            "Application to subscribe",
            body_of("followup_1.eml"),
            "predisclosure-applications",
            False,
        ),
    ],
)
def test_is_subscription_request(subject: str, body: str, local: str, expected: bool) -> None:
    assert is_subscription_request(subject, body, local) is expected


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_only_the_subscribe_note_is_a_subscription_request(name: str) -> None:
    message = load(name)
    result = is_subscription_request(
        str(message["Subject"]), body_of(name), "predisclosure-applications"
    )
    assert result is (name == "subscribe_only.eml")


_FRAGMENTS = st.sampled_from(
    [
        "Organisation: ", "Domains:", "Role alias: ", "Policy statement: ", "\n", "\r", "\r\n",
        "  ", ">", "-- \n", "https://", "http://x", "www.", "@", "security@vendor.example",
        "jane.doe@a.example", "Xen", "all of our products", "not all", "pricing ", "blog/",
        "We are ", "on behalf of ", "Example GmbH", "[x]", ":", ".", "(", ")", "\x00", "\u2028",
        "We have read the policy and will abide by it.", "domains a.example", "\x85",
    ]
)  # fmt: skip
_TEXT = st.one_of(
    st.text(max_size=400),
    st.lists(st.one_of(_FRAGMENTS, st.text(max_size=8)), max_size=40).map("".join),
)


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_arbitrary_text_never_raises_and_replies_stay_single_line(text: str) -> None:
    fields = extract_application(text, POLICY)
    checklist = check_application(fields, POLICY)
    assert len(checklist.items) == len(ITEM_KEYS)
    for item in checklist.items:
        if item.found is not None:
            assert len(item.found) <= 200
            assert item.found == " ".join(item.found.split())
    reply = render_reply(checklist, POLICY)
    assert "\r" not in reply
    for line in reply.split("\n"):
        assert "\x85" not in line and "\u2028" not in line and "\x00" not in line
    merged = check_application(merge(fields, fields), POLICY)
    assert merged == checklist
    is_subscription_request(text, text, text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_classifiers_never_raise(text: str) -> None:
    classify_link(text, POLICY)
    classify_link("https://" + text, POLICY)
    classify_alias(text, POLICY)


def test_quoted_lines_are_not_read() -> None:
    text = (
        "> We are Quoted Corp Ltd. Please add jane.doe@quoted.example to the list.\n"
        "> Our pricing: https://quoted.example/pricing\n"
        "\n"
        "Please add security@a.example to the list.\n"
    )
    fields = extract_application(text, POLICY)
    assert fields.organisation is None
    assert fields.aliases == ("security@a.example",)
    assert fields.links == ()


def test_signature_addresses_and_links_are_not_read() -> None:
    text = (
        "We are Example Cloud GmbH, a public cloud provider.\n\n"
        "-- \nJane Doe, add me: jane.doe@example-cloud.example\n"
        "https://example-cloud.example/pricing\n"
    )
    fields = extract_application(text, POLICY)
    assert fields.aliases == ()
    assert fields.links == ()


def test_top_posted_reply_reads_only_the_new_text() -> None:
    earlier = render_reply(check_file("followup_1.eml"), POLICY)
    text = (
        "Our security page: https://atlantico-cloud.example/en/security\n\n"
        "From: predisclosure-applications@lists.example.org\n"
        "Sent: Monday, 31 March 2025 10:13\n\n" + earlier
    )
    fields = extract_application(text, POLICY)
    assert not fields.form
    assert [e.url for e in fields.links] == ["https://atlantico-cloud.example/en/security"]
