"""The one rule for where an automatic reply goes (core/mail/autoreply.reply_target)."""

from __future__ import annotations

from listbot.core.mail.autoreply import ReplyTarget, reply_target
from listbot.core.mail.view import MessageView


def target(head: str, envelope: str | None) -> ReplyTarget:
    view = MessageView.parse(f"{head}Subject: hi\r\n\r\nbody\r\n".encode(), envelope)
    return reply_target(view.headers, own_list_ids=["discuss.lists.example.org"],
                        own_loop="discuss@lists.example.org",
                        envelope_sender=view.envelope_sender)


def test_the_envelope_sender_is_answered_never_a_from_that_differs() -> None:
    got = target("From: Victim <victim@innocent.example>\r\n", "Sender@Origin.example")
    assert got == ReplyTarget("sender@origin.example", None, "victim@innocent.example")
    same = target("From: Reporter <reporter@example.net>\r\n", "reporter@example.net")
    assert same == ReplyTarget("reporter@example.net", None, None)


def test_null_robot_or_broken_envelope_senders_get_nothing() -> None:
    head = "From: Victim <victim@innocent.example>\r\n"
    assert target(head, "").address is None
    assert target(head, "").reason == "null envelope sender"
    assert target(head, "mailer-daemon@mx.example").address is None
    broken = target(head, "not an address")
    assert broken.address is None and broken.reason == "envelope sender is not a valid address"


def test_automatic_mail_gets_nothing_whoever_sent_it() -> None:
    for extra in ("Auto-Submitted: auto-replied\r\n", "Precedence: bulk\r\n",
                  "List-Id: <other.example.org>\r\n"):
        got = target(f"From: a@b.example\r\n{extra}", "a@b.example")
        assert got.address is None and got.reason


def test_without_an_envelope_the_recorded_return_path_then_the_from() -> None:
    # IMAP and `inject` without --from carry no envelope: the Return-Path the mailbox
    # recorded at delivery stands for it; failing that, the From is all there is.
    recorded = target("Return-Path: <bounce@origin.example>\r\nFrom: x@innocent.example\r\n",
                      None)
    assert recorded == ReplyTarget("bounce@origin.example", None, "x@innocent.example")
    assert target("From: x@innocent.example\r\n", None) == ReplyTarget(
        "x@innocent.example", None, None)
    assert target("Return-Path: <>\r\nFrom: x@innocent.example\r\n", None).address is None
