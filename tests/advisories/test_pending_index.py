from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listbot.advisories.doc import AdvisoryFormatError
from listbot.advisories.pending_index import (
    IndexEntry,
    IndexState,
    entry_for,
    ics_fold,
    index_html,
    index_ics,
    index_json,
)
from tests.advisory_samples import EMBARGO, sample_doc

STAMP = datetime(2024, 11, 1, 9, 30, tzinfo=UTC)
SHOWN = datetime(2024, 10, 1, 12, 0, tzinfo=UTC)


def released(number: int = 460, title: str = "Released issue", **kw: object) -> IndexEntry:
    args: dict[str, object] = {"cves": ("CVE-2024-31146",), "version": 3, "url": None} | kw
    return IndexEntry.released(number, SHOWN, title=title, **args)  # type: ignore[arg-type]


def ics(entries: list[IndexEntry], sequences: dict[int, int] | None = None) -> str:
    return index_ics(
        entries, prodid="-//Xen Project//listbot//EN", domain="xenbits.xen.org",
        sequences=sequences or {}, stamp=STAMP,
    )  # fmt: skip


def unfold(text: str) -> list[str]:
    assert text.endswith("\r\n")
    assert "\n" not in text.replace("\r\n", "")
    return re.sub(r"\r\n[ \t]", "", text).split("\r\n")[:-1]


def ics_unescape(value: str) -> str:
    return re.sub(r"\\([\\;,nN])", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def test_embargoed_entry_holds_only_number_time_and_state() -> None:
    entry = entry_for(sample_doc(), released=False)
    assert (entry.number, entry.public_time, entry.state) == (465, EMBARGO, IndexState.EMBARGOED)
    rows = json.loads(index_json([entry]))
    assert rows == [{"xsa": 465, "public_time": "2024-11-12T12:00:00Z", "state": "embargoed"}]
    with pytest.raises(AdvisoryFormatError, match="only number, time and state"):
        IndexEntry(465, EMBARGO, IndexState.EMBARGOED, title="secret")
    with pytest.raises(AdvisoryFormatError):
        IndexEntry(465, EMBARGO, IndexState.EMBARGOED, cves=("CVE-2024-1234",))


def test_public_entry_carries_title_cves_version_and_url() -> None:
    entry = entry_for(
        sample_doc(), released=True, url="https://xenbits.xen.org/xsa/advisory-465.html"
    )
    row = json.loads(index_json([entry]))[0]
    assert row == {
        "xsa": 465,
        "public_time": "2024-11-12T12:00:00Z",
        "state": "public",
        "title": sample_doc().title,
        "cve": ["CVE-2024-45819", "CVE-2024-45820"],
        "version": 2,
        "url": "https://xenbits.xen.org/xsa/advisory-465.html",
    }


def test_forged_embargoed_entry_still_leaks_nothing() -> None:
    # Renderers write from a whitelist per state, not from whatever the entry holds.
    entry = IndexEntry.embargoed(465, EMBARGO)
    object.__setattr__(entry, "title", "SECRET-TITLE")
    object.__setattr__(entry, "cves", ("CVE-2024-99999",))
    object.__setattr__(entry, "url", "https://example.org/SECRET")
    for out in (index_json([entry]), ics([entry]), index_html([entry])):
        assert "SECRET" not in out and "CVE-2024-99999" not in out


_titles = (
    st.text(st.characters(blacklist_categories=("Cc", "Cf", "Zl", "Zp", "Cs")), min_size=1)
    .map(str.strip)
    .filter(bool)
)
_cves = st.lists(
    st.from_regex(r"CVE-20[0-9]{2}-[0-9]{4,7}", fullmatch=True), unique=True, max_size=4
)
_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
).map(lambda d: d.replace(second=0, microsecond=0))


@settings(max_examples=150, deadline=None)
@given(
    secrets=st.lists(st.tuples(_titles, _cves), min_size=1, max_size=4),
    when=_times,
    version=st.integers(1, 9),
)
def test_embargoed_output_does_not_depend_on_title_or_cves(
    secrets: list[tuple[str, list[str]]], when: datetime, version: int
) -> None:
    public = released(1, "A released advisory", cves=("CVE-2023-0001",))

    def outputs(docs_secret: list[tuple[str, list[str]]]) -> list[str]:
        entries = [public]
        for i, (title, cves) in enumerate(docs_secret):
            doc = sample_doc(
                number=500 + i, title=title, cves=tuple(cves), version=version,
                embargo_at=when + timedelta(days=i), patches=(),
            )  # fmt: skip
            entries.append(entry_for(doc, released=False))
        return [index_json(entries), ics(entries), index_html(entries)]

    baseline = outputs([("placeholder", [])] * len(secrets))
    got = outputs(secrets)
    assert got == baseline
    for out in got:
        for _, cves in secrets:
            assert not any(cve in out for cve in cves)


def test_ics_is_folded_at_75_octets_and_parses() -> None:
    long_title = "Überlauf; in, the \\ emulator " + "é✓" * 60
    entries = [
        IndexEntry.embargoed(465, EMBARGO),
        released(460, long_title, url="https://xenbits.xen.org/xsa/advisory-460.html"),
    ]
    text = ics(entries, {465: 2})
    physical = text.split("\r\n")[:-1]
    assert all(len(line.encode()) <= 75 for line in physical)
    for line in physical:
        line.encode().decode("utf-8")  # never a split multi-byte sequence
    assert any(line.startswith(" ") for line in physical)  # folding happened
    lines = unfold(text)
    assert lines[0] == "BEGIN:VCALENDAR" and lines[-1] == "END:VCALENDAR"
    assert lines.count("BEGIN:VEVENT") == lines.count("END:VEVENT") == 2
    props = [line.split(":", 1) for line in lines]
    assert all(len(p) == 2 and re.fullmatch(r"[A-Z-]+", p[0]) for p in props)
    values = [(k, v) for k, v in props]
    assert ("UID", "xsa465@xenbits.xen.org") in values
    assert ("UID", "xsa460@xenbits.xen.org") in values
    assert ("DTSTART", "20241112T120000Z") in values
    assert ("DTSTAMP", "20241101T093000Z") in values
    assert ("SEQUENCE", "2") in values and ("SEQUENCE", "0") in values
    summaries = [ics_unescape(v) for k, v in values if k == "SUMMARY"]
    assert summaries == ["XSA-460 v3: " + long_title, "XSA-465 public release"]


def test_ics_uid_is_stable_across_reschedules() -> None:
    before = unfold(ics([IndexEntry.embargoed(465, EMBARGO)], {465: 0}))
    after = unfold(ics([IndexEntry.embargoed(465, EMBARGO + timedelta(days=2))], {465: 1}))
    uid = [line for line in before if line.startswith("UID:")]
    assert uid == [line for line in after if line.startswith("UID:")]
    assert "SEQUENCE:1" in after and "DTSTART:20241114T120000Z" in after


def test_ics_fold_keeps_short_lines() -> None:
    assert ics_fold("SUMMARY:short") == ["SUMMARY:short"]
    folded = ics_fold("X:" + "a" * 200)
    assert [len(x) for x in folded] == [75, 75, 54]
    assert "".join(x[1:] if i else x for i, x in enumerate(folded)) == "X:" + "a" * 200


def test_html_escapes_everything() -> None:
    entry = released(
        460,
        '<script>alert("x")</script> & more',
        url="https://example.org/a?b=1&c='2'",
    )
    page = index_html([entry, IndexEntry.embargoed(465, EMBARGO)])
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in page
    assert 'href="https://example.org/a?b=1&amp;c=&#x27;2&#x27;"' in page
    assert page.index("XSA-465") < page.index("XSA-460")  # newest first
    assert "<td>embargoed</td><td></td><td></td><td></td>" in page


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "https://a.example/\r\nx", "ftp://a.example/"]
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(AdvisoryFormatError, match="url"):
        released(url=url)


def test_duplicate_numbers_and_bad_parameters_are_refused() -> None:
    with pytest.raises(AdvisoryFormatError, match="twice"):
        index_json([IndexEntry.embargoed(465, EMBARGO), released(465)])
    with pytest.raises(AdvisoryFormatError):
        index_ics([], prodid="x\r\nBEGIN:VEVENT", domain="xen.org", sequences={}, stamp=STAMP)
    with pytest.raises(AdvisoryFormatError):
        index_json([], prefix="xsa")
