"""The shipped config/listbot.toml, with a long list name, decides a held post by a
mail reply to the address listbot wrote in the request (docs/design.md "People and
addresses"): every reply address fits RFC 5321 whatever the list is called."""

from __future__ import annotations

import re
import smtplib
import tomllib
from pathlib import Path

import pytest

from listbot.core.config.addresses import MAX_LOCAL_PART
from tests import tomlfile
from tests.conftest import merge
from tests.daemon import post
from tests.proc import Daemon, cli
from tests.sink import Sink

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NAME = "security-discuss-long-list-xyz"  # 30 characters in place of "security-discuss"
LIST = f"{NAME}@lists.example.org"
MEMBER = "security@vendor-a.example"
MODERATOR = "alice@example.org"  # the shipped moderator


def shipped(tmp_path: Path, sink: Sink) -> Path:
    """config/listbot.toml with the list renamed; only ports, relay and state moved."""
    text = (REPO / "config" / "listbot.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text.replace("security-discuss", NAME))
    data = merge(data, {
        "instance": {"state_dir": str(tmp_path / "state")},
        "listen": {"lmtp": "127.0.0.1:0", "smtp": "127.0.0.1:0"},
        "delivery": {"transport": "smtp",
                     "smtp": {"port": sink.port, "starttls": "none"}},
    })
    # Relative paths (rules = "../rules") resolve beside the file, as they do in the repo.
    (tmp_path / "config").mkdir()
    (tmp_path / "rules").symlink_to(REPO / "rules")
    return tomlfile.write(tmp_path / "config" / "listbot.toml", data)


def lmtp(port: int, sender: str, rcpt: str, data: bytes) -> None:
    with smtplib.LMTP("127.0.0.1", port) as client:
        assert client.sendmail(sender, [rcpt], data) == {}


async def test_a_held_post_on_a_long_list_name_is_decided_by_mail(
        tmp_path: Path, sink: Sink) -> None:
    assert len(NAME) == 30
    config = shipped(tmp_path, sink)
    code, _, err = await cli(config, "check-config")
    assert code == 0, err
    code, _, err = await cli(config, "members", "add", "Vendor A", MEMBER)
    assert code == 0, err
    daemon = Daemon(config)
    await daemon.start()
    try:
        port = daemon.ports["lmtp"]
        lmtp(port, MEMBER, LIST, post(f"Vendor A <{MEMBER}>", subject="A question",
                                      body="What do you all think?\r\n", to=LIST))
        await sink.wait_deliveries(1, timeout=30)
        [(rcpt, request)] = sink.deliveries()
        assert rcpt == MODERATOR
        reply_to = str(request.message["Reply-To"])
        found = re.search(r"<?([^<>\s]+\+[a-z2-7]+@lists\.example\.org)>?", reply_to)
        assert found, reply_to
        address = found.group(1)
        assert address.startswith(f"{NAME}-mod+")
        assert len(address.partition("@")[0]) <= MAX_LOCAL_PART
        reply = (f"From: Alice <{MODERATOR}>\r\nTo: {address}\r\n"
                 f"Subject: Re: {request.message['Subject']}\r\n\r\napprove\r\n").encode()
        lmtp(port, MODERATOR, address, reply)  # refused with 550 before the fix
        await sink.wait_deliveries(2, timeout=30)
        rcpt, distributed = sink.deliveries()[1]
        assert rcpt == MEMBER
        assert distributed.message["List-Id"] is not None
        assert NAME in str(distributed.message["List-Id"])
        assert b"What do you all think?" in distributed.data
    finally:
        assert await daemon.terminate() == 0
