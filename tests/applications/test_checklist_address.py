"""The checklist reply goes to the envelope sender only (RFC 3834), never to a From
that differs from it, never to the null sender."""

from __future__ import annotations

from listbot.app import App
from listbot.core.model import OutboxState
from tests.application_helpers import SUBSCRIBERS, example, send, text_of, to
from tests.moderation_helpers import ALICE, BOB
from tests.sink import Sink

TEAM = [ALICE, BOB]
FORGED_FROM = "jana.weber@nimbus-cloud.example"  # the From of the example application
ENVELOPE = "mailer@sender.example"


async def test_checklist_goes_to_the_envelope_sender_not_the_from(app: App,
                                                                  sink: Sink) -> None:
    await send(app, example("free_cloud_narrative.eml"), envelope=ENVELOPE)
    await sink.wait_deliveries(1 + len(SUBSCRIBERS) + len(TEAM))
    assert to(sink, FORGED_FROM) == []
    [reply] = to(sink, ENVELOPE)
    assert reply.mail_from == ""
    assert reply.message["To"] == ENVELOPE
    assert "Every required item was found" in text_of(reply)
    notices = [i for i in await app.store.outbox_listing(list(OutboxState))
               if i.envelope_from == ""]
    assert [i.recipient for i in notices] == [ENVELOPE]
    # The application is still the From's: that is whom it names.
    [entry] = await app.store.audit_listing(action_prefix="application.received")
    assert entry.detail["sender"] == FORGED_FROM and entry.detail["replied"] == "yes"


async def test_null_sender_application_gets_nothing(app: App, sink: Sink) -> None:
    await send(app, example("free_cloud_narrative.eml"), envelope="<>")
    items = await app.store.outbox_listing(list(OutboxState))
    assert [i for i in items if i.envelope_from == ""] == []
    assert to(sink, FORGED_FROM) == []
