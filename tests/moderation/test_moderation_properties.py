"""Property tests: classification and reply reading never raise on arbitrary mail."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from listbot.discuss.held import load_checked_rules
from listbot.moderation.classify import classify
from listbot.moderation.commands import parse_reply
from listbot.moderation.facts import facts_from_message
from listbot.moderation.rules import Action, Role
from tests.moderation_helpers import RULES

DISCUSS_RULES = load_checked_rules(RULES).get("discuss")
assert DISCUSS_RULES is not None

header_names = st.sampled_from(["From", "Subject", "Content-Type", "Auto-Submitted",
                                "Content-Transfer-Encoding", "List-Unsubscribe",
                                "MIME-Version", "Precedence", "X-Other"])
header_values = st.one_of(
    st.text(max_size=80),
    st.sampled_from(['multipart/mixed; boundary="b"', "multipart/alternative; boundary=",
                     "text/html; charset=bogus", "base64", "quoted-printable",
                     "=?utf-8?q?=0D=0Ainjected?=", "auto-replied", 'text/plain; name*=x']))
bodies = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=400).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"--b\r\nContent-Type: text/plain\r\n\r\napprove\r\n--b--\r\n",
                     b"--b\r\n\r\n--b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n",
                     b"diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n"]))


def _message(headers: list[tuple[str, str]], body: bytes) -> bytes:
    head = "".join(f"{n}: {v}\r\n" for n, v in headers)
    return head.encode("utf-8", "surrogatepass") + b"\r\n" + body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(header_names, header_values), max_size=8), bodies,
       st.sampled_from(list(Role)), st.booleans())
def test_classify_never_raises(headers: list[tuple[str, str]], body: bytes, role: Role,
                               signed: bool) -> None:
    assert DISCUSS_RULES is not None
    facts = facts_from_message(_message(headers, body), sender_role=role,
                               signed_by_sender=signed)
    verdict = classify(facts, DISCUSS_RULES)
    assert verdict.action in set(Action)
    assert "\n" not in verdict.hits_header() and "\r" not in verdict.hits_header()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(header_names, header_values), max_size=8), bodies)
def test_reply_reading_never_raises(headers: list[tuple[str, str]], body: bytes) -> None:
    parse_reply(_message(headers, body), ["approve", "reject", "discard"])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_classified(raw: bytes) -> None:
    assert DISCUSS_RULES is not None
    facts = facts_from_message(raw, sender_role=Role.MEMBER, signed_by_sender=False)
    classify(facts, DISCUSS_RULES)
