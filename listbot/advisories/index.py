"""The public pending index, rebuilt from the database and kept current on disk."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from listbot.advisories.config import AdvisoriesConfig
from listbot.advisories.pending_index import IndexEntry, index_html, index_ics, index_json
from listbot.advisories.render import doc_from_json
from listbot.core.clock import Clock
from listbot.core.store import Store
from listbot.core.store import advisories as ops
from listbot.core.store.advisories import AdvisoryState


@dataclass(frozen=True)
class Index:
    entries: tuple[IndexEntry, ...]
    sequences: dict[int, int]


async def collect(store: Store, adv: AdvisoriesConfig, project: str) -> Index:
    """Released advisories in full; announced ones (armed or pre-disclosed) by number only."""
    entries: list[IndexEntry] = []
    sequences: dict[int, int] = {}
    async with store.unit() as tx:
        for a in await ops.all_advisories(tx):
            versions = await ops.versions(tx, a.number)
            announced = a.state in (AdvisoryState.SCHEDULED,
                                    AdvisoryState.AWAITING_CONFIRMATION) or any(
                v.predisclosed_at for v in versions)
            sequences[a.number] = a.schedule_sequence
            if a.state is AdvisoryState.RELEASED:
                cur = versions[-1]
                doc = doc_from_json(cur.doc, project=project, prefix=adv.prefix,
                                    number=a.number, version=cur.version,
                                    embargo_at=a.embargo_at)
                entries.append(IndexEntry.released(
                    a.number, a.embargo_at, title=doc.title, cves=doc.cves,
                    version=cur.version, url=adv.url_for(a.number)))
            elif announced:
                # Only the number and the instant (docs/design.md "The disclosure calendar").
                entries.append(IndexEntry.embargoed(a.number, a.embargo_at))
    return Index(tuple(entries), sequences)


def render(index: Index, fmt: str, *, adv: AdvisoriesConfig, project: str, domain: str,
           clock: Clock) -> str:
    if fmt == "json":
        return index_json(index.entries, prefix=adv.prefix)
    if fmt == "ics":
        return index_ics(index.entries, prodid=f"-//{project}//listbot advisories//EN",
                         domain=domain, sequences=index.sequences,
                         stamp=clock.now().replace(microsecond=0), prefix=adv.prefix)
    if fmt == "html":
        return index_html(index.entries, project=project, prefix=adv.prefix)
    raise ValueError(f"unknown format {fmt}")


def _atomic_write(path: Path, text: str, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    # mkstemp makes the file 0600, which a web server cannot read; fchmod ignores umask.
    os.fchmod(fd, mode)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)  # readers see the old file or the new one, never half


@dataclass(frozen=True)
class IndexWriter:
    adv: AdvisoriesConfig
    project: str
    domain: str
    clock: Clock

    async def write(self, store: Store) -> None:
        directory = self.adv.index_dir
        if directory is None:
            return
        directory.mkdir(parents=True, exist_ok=True)
        index = await collect(store, self.adv, self.project)
        for fmt, name in (("json", "pending.json"), ("ics", "pending.ics"),
                          ("html", "pending.html")):
            _atomic_write(directory / name, render(index, fmt, adv=self.adv,
                                                   project=self.project, domain=self.domain,
                                                   clock=self.clock),
                          self.adv.index_file_mode)
