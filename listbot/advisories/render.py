"""From stored advisory content to the exact signed bytes that go out.

The signed messages are made once per (version, audience) and stored, so what
`advisory show` prints is what the relay receives.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, replace
from datetime import datetime

from listbot.advisories.config import AdvisoriesConfig
from listbot.advisories.doc import AdvisoryDoc, Audience, Patch
from listbot.advisories.format import render_text
from listbot.advisories.mail import build_message, message_id, thread_of
from listbot.core.config import Config
from listbot.core.errors import ConfigError
from listbot.core.mail.keyring import PgpConfig
from listbot.core.mail.outbound import mailbox
from listbot.core.mail.pgp import Keyring

PUBLIC_RELEASE = "Public release."


def doc_to_json(doc: AdvisoryDoc) -> str:
    return json.dumps({
        "title": doc.title, "cves": list(doc.cves), "sections": list(doc.sections.items()),
        "updates": list(doc.updates), "with_meta": doc.with_meta,
        "patches": [{"filename": p.filename, "applies_to": p.applies_to,
                     "content": base64.b64encode(p.content).decode()} for p in doc.patches],
    }, sort_keys=True)


def doc_from_json(text: str, *, project: str, prefix: str, number: int, version: int,
                  embargo_at: datetime) -> AdvisoryDoc:
    d = json.loads(text)
    return AdvisoryDoc(
        project=project, prefix=prefix, number=number, version=version, title=d["title"],
        cves=tuple(d["cves"]), sections=dict(d["sections"]), updates=tuple(d["updates"]),
        patches=tuple(Patch(p["filename"], base64.b64decode(p["content"]), p["applies_to"])
                      for p in d["patches"]),
        embargo_at=embargo_at, with_meta=bool(d["with_meta"]))


def public_doc(doc: AdvisoryDoc, *, first_public: bool) -> AdvisoryDoc:
    """The public text: the version that is released says so in its updates."""
    if not first_public or PUBLIC_RELEASE in doc.updates:
        return doc
    return replace(doc, updates=(PUBLIC_RELEASE, *doc.updates))


@dataclass(frozen=True)
class Renderer:
    cfg: Config
    adv: AdvisoriesConfig
    pgp: PgpConfig
    keyring: Keyring

    @property
    def domain(self) -> str:
        return self.cfg.team_address.split("@", 1)[1]

    @property
    def sender(self) -> str:
        return mailbox(f"{self.cfg.project_name} security team", self.cfg.team_address)

    def message_id(self, doc: AdvisoryDoc, audience: Audience, copy: str | None = None) -> str:
        return message_id(doc.number, doc.version, audience, self.domain, prefix=doc.prefix,
                          copy=copy)

    async def render(self, doc: AdvisoryDoc, audience: Audience, date: datetime) -> bytes:
        """Render, clear-sign with the team key and wrap: the bytes that will be sent."""
        if self.pgp.team_fingerprint is None:
            raise ConfigError(["pgp.team_fingerprint: advisories are signed with the team key"])
        line = self.adv.recipients_line if audience is Audience.PREDISCLOSURE else None
        text = render_text(doc, audience, recipients_line=line)
        signed = await self.keyring.sign_clear(text, self.pgp.team_fingerprint,
                                               self.pgp.passphrase())
        to = (self.adv.predisclosure_address,) if audience is Audience.PREDISCLOSURE else (
            self.adv.public_lists or (self.cfg.team_address,))
        reply_to, refs = thread_of(doc.number, doc.version, audience, self.domain,
                                   prefix=doc.prefix)
        return build_message(
            signed_text=signed, doc=doc, audience=audience, from_addr=self.sender,
            to_addrs=to, message_id=self.message_id(doc, audience), in_reply_to=reply_to,
            references=refs, date=date)
