"""Every address listbot writes into mail for replies fits RFC 5321, and check-config
says which key to change when one would not (docs/design.md "People and addresses")."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from listbot.cli.common import root
from listbot.core.config.addresses import MAX_LOCAL_PART, REPLY_TOKEN_CHARS
from listbot.core.errors import EX_CONFIG
from listbot.core.model import RecipientRole
from listbot.core.routing import Router
from listbot.moderation.decisions import new_reply_token
from listbot.moderation.notices import moderation_address
from listbot.settings import build
from tests import tomlfile
from tests.conftest import BASE_CONFIG, merge

LONG = "x" * 30  # a list name of 30 characters
KEY = "A" * 40


def config(tmp_path: Path, extra: dict[str, object]) -> dict[str, object]:
    return merge(merge(BASE_CONFIG, {"instance": {"state_dir": str(tmp_path / "state")}}),
                 extra)


def check(tmp_path: Path, extra: dict[str, object]) -> tuple[int, str]:
    path = tomlfile.write(tmp_path / "listbot.toml", config(tmp_path, extra))
    result = CliRunner().invoke(root, ["--config", str(path), "check-config"])
    return result.exit_code, result.stderr


def test_the_reply_address_of_a_long_list_name_fits_and_routes(tmp_path: Path) -> None:
    address = f"{LONG}@lists.example.org"
    settings = build(config(tmp_path, {"lists": {"discuss": {"address": address}}}), tmp_path)
    lc = settings.core.lists["discuss"]
    token = new_reply_token()
    assert len(token) == REPLY_TOKEN_CHARS
    reply_to = moderation_address(lc, token)
    assert reply_to == f"{LONG}-mod+{token}@lists.example.org"
    assert len(reply_to.partition("@")[0]) <= MAX_LOCAL_PART
    route = Router(settings.core.lists.values()).route(reply_to.upper())
    assert route is not None and route.role is RecipientRole.MODERATION
    assert (route.list_name, route.detail) == ("discuss", token)


def test_the_old_moderation_address_still_routes(tmp_path: Path) -> None:
    # Requests sent before the short address was the default name LOCAL-moderation+TOKEN.
    settings = build(config(tmp_path, {}), tmp_path)
    router = Router(settings.core.lists.values())
    old = "discuss-moderation+" + "a" * 39 + "@lists.example.org"
    route = router.route(old)
    assert route is not None and route.role is RecipientRole.MODERATION
    assert route.detail == "a" * 39


def test_a_decision_address_that_cannot_be_received_fails_check_config(
        tmp_path: Path) -> None:
    long_local = "y" * 40  # 40 + "-mod+" + 26 = 71 octets
    code, err = check(tmp_path, {"lists": {"discuss": {
        "address": f"{long_local}@lists.example.org"}}})
    assert code == EX_CONFIG
    assert "error: lists.discuss.decisions_local_part: the reply address" in err
    assert "71 octets" in err
    # ... and the key it names is the fix.
    code, err = check(tmp_path, {"lists": {"discuss": {
        "address": f"{long_local}@lists.example.org", "decisions_local_part": "d-mod"}}})
    assert code == 0, err


def test_a_whole_address_over_254_octets_fails(tmp_path: Path) -> None:
    domain = ".".join(["d" * 60] * 4) + ".example"  # 252 octets
    code, err = check(tmp_path, {"lists": {"discuss": {"address": f"list@{domain}"}}})
    assert code == EX_CONFIG
    assert "error: lists.discuss.decisions_local_part" in err and "254" in err


def test_a_case_reply_address_too_long_fails_naming_the_prefix(tmp_path: Path) -> None:
    code, err = check(tmp_path, {
        "team": {"address": "s" * 40 + "@example.org"},
        "lists": {"security": {"address": "s" * 40 + "@example.org"}},
        "cases": {"prefix": "ABCDEFGHIJKLMNOP"}})
    assert code == EX_CONFIG
    assert "error: cases.prefix: the case reply address" in err


def test_a_decision_address_may_not_be_another_lists_address(tmp_path: Path) -> None:
    code, err = check(tmp_path, {"lists": {"discuss": {"decisions_local_part": "applications"}}})
    assert code == EX_CONFIG
    assert "error: lists.*: a decisions_local_part is another list's" in err
    code, err = check(tmp_path, {"lists": {"discuss": {"decisions_local_part": "a+b"}}})
    assert "error: lists.discuss.decisions_local_part: expected letters" in err


def test_a_moderator_without_a_key_fails_when_decisions_must_be_signed(
        tmp_path: Path) -> None:
    code, err = check(tmp_path, {"lists": {"discuss": {"require_signed_decisions": True}}})
    assert code == EX_CONFIG
    assert ("error: lists.discuss.moderators[0]: alice@example.org has no key, but "
            "lists.discuss.require_signed_decisions is true") in err
    # Every team member decides applications: each needs a key there.
    code, err = check(tmp_path, {
        "team": {"members": [{"name": "Alice", "address": "alice@example.org",
                              "fingerprint": KEY},
                             {"name": "Bob", "address": "bob@example.org"}]},
        "lists": {"discuss": {"require_signed_decisions": True},
                  "applications": {"require_signed_decisions": True}}})
    assert code == EX_CONFIG
    assert "lists.discuss.moderators" not in err  # Alice has a key now
    assert ("error: team.members[1].fingerprint: bob@example.org has no key, but "
            "lists.applications.require_signed_decisions is true") in err


def test_doctor_names_the_moderator_without_a_key(tmp_path: Path) -> None:
    path = tomlfile.write(tmp_path / "listbot.toml", config(
        tmp_path, {"lists": {"discuss": {"require_signed_decisions": True}}}))
    result = CliRunner().invoke(root, ["--config", str(path), "doctor"])
    assert result.exit_code == EX_CONFIG
    assert "FAIL  config  lists.discuss.moderators[0]: alice@example.org has no key" in (
        result.stderr)
