"""The audience gate as a pure decision, tried from every side."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from listbot.core.model import Audience, OutboxItem, OutboxState
from listbot.core.outbox.gate import GateFacts, refusal

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FACTS = GateFacts(members=frozenset({"security@vendor-a.example"}),
                  team=frozenset({"alice@example.org", "security@example.org"}),
                  case_parties={"SEC-2026-0001": frozenset({"psirt@hw.example"})})


def item(audience: Audience, rcpt: str, case: str | None = None,
         not_before: datetime | None = None) -> OutboxItem:
    return OutboxItem(id=1, body_id=1, audience=audience, envelope_from="x@y", recipient=rcpt,
                      list_name=None, case_id=case, not_before=not_before,
                      state=OutboxState.SENDING, attempts=1, created_at=NOW,
                      next_attempt_at=NOW, last_reply=None, message_id=None)


def test_embargoed_goes_to_members_team_and_parties_of_that_case_only() -> None:
    assert refusal(item(Audience.EMBARGOED, "security@vendor-a.example"), FACTS, NOW) is None
    assert refusal(item(Audience.EMBARGOED, "SECURITY@Vendor-A.example"), FACTS, NOW) is None
    assert refusal(item(Audience.EMBARGOED, "alice@example.org"), FACTS, NOW) is None
    party = "psirt@hw.example"
    assert refusal(item(Audience.EMBARGOED, party, "SEC-2026-0001"), FACTS, NOW) is None
    assert refusal(item(Audience.EMBARGOED, party, "SEC-2026-0002"), FACTS, NOW) is not None
    assert refusal(item(Audience.EMBARGOED, party), FACTS, NOW) is not None


def test_public_never_before_its_instant() -> None:
    at = NOW + timedelta(seconds=1)
    assert refusal(item(Audience.PUBLIC, "announce@x.example", not_before=at), FACTS, NOW)
    assert refusal(item(Audience.PUBLIC, "announce@x.example", not_before=NOW), FACTS,
                   NOW) is None


def test_team_mail_only_to_the_team() -> None:
    assert refusal(item(Audience.TEAM, "alice@example.org"), FACTS, NOW) is None
    assert refusal(item(Audience.TEAM, "security@vendor-a.example"), FACTS, NOW) is not None


@given(st.emails(), st.sampled_from([None, "SEC-2026-0001", "SEC-2026-0009"]))
def test_no_outsider_ever_gets_embargoed_mail(address: str, case: str | None) -> None:
    known = FACTS.members | FACTS.team | FACTS.case_parties["SEC-2026-0001"]
    verdict = refusal(item(Audience.EMBARGOED, address, case), FACTS, NOW)
    allowed = address.lower() in FACTS.members | FACTS.team or (
        case == "SEC-2026-0001" and address.lower() in known)
    assert (verdict is None) == allowed
