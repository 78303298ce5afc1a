from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from listbot.advisories.doc import AdvisoryFormatError, Audience, Patch
from listbot.advisories.format import meta_json, reflow, render_text, sha256_lines, subject
from listbot.advisories.sections import parse_sections
from tests.advisory_samples import EMBARGO, FIXTURES, SECTIONS_FILE, sample_doc

ORDER = [
    "UPDATES IN VERSION 2",
    "ISSUE DESCRIPTION",
    "IMPACT",
    "VULNERABLE SYSTEMS",
    "MITIGATION",
    "NOTE CONCERNING MULTIPLE CVES",
    "CREDITS",
    "RESOLUTION",
    "DEPLOYMENT DURING EMBARGO",
]


def headings(text: str) -> list[tuple[str, str]]:
    lines = text.split("\n")
    return [(lines[i - 1], lines[i]) for i in range(1, len(lines)) if re.fullmatch(r"=+", lines[i])]


@pytest.mark.parametrize(
    ("audience", "fixture"),
    [
        (Audience.PREDISCLOSURE, "xsa465-v2-predisclosure.txt"),
        (Audience.PUBLIC, "xsa465-v2-public.txt"),
    ],
)
def test_golden_rendering(audience: Audience, fixture: str) -> None:
    expected = (FIXTURES / fixture).read_text(encoding="utf-8")
    assert render_text(sample_doc(), audience) == expected


def test_text_is_clean_for_clear_signing() -> None:
    for audience in Audience:
        text = render_text(sample_doc(), audience)
        assert text.endswith("\n") and not text.endswith("\n\n")
        assert "\r" not in text
        assert all(line == line.rstrip() for line in text.split("\n"))


def test_sections_in_order_with_matching_underlines() -> None:
    found = headings(render_text(sample_doc(), Audience.PUBLIC))
    assert [h for h, _ in found] == ORDER
    assert all(u == "=" * len(h) for h, u in found)


def test_notes_keep_their_place_and_empty_optional_sections_are_left_out() -> None:
    sections = dict(sample_doc().sections)
    sections["NOTE REGARDING LACK OF EMBARGO"] = "The issue was discussed in public."
    sections["NOTE CONCERNING SHORT EMBARGO"] = "   \n"
    text = render_text(sample_doc(sections=sections), Audience.PUBLIC)
    names = [h for h, _ in headings(text)]
    assert names.index("MITIGATION") < names.index("NOTE CONCERNING MULTIPLE CVES")
    assert names.index("NOTE REGARDING LACK OF EMBARGO") < names.index("CREDITS")
    assert "NOTE CONCERNING SHORT EMBARGO" not in text


def test_first_version_may_leave_updates_out() -> None:
    text = render_text(sample_doc(version=1, updates=()), Audience.PUBLIC)
    assert "UPDATES IN VERSION" not in text
    assert headings(text)[0][0] == "ISSUE DESCRIPTION"


def test_later_version_must_say_what_changed() -> None:
    with pytest.raises(AdvisoryFormatError, match="must say what changed"):
        sample_doc(version=3, updates=())


def test_public_text_has_no_banner_but_keeps_deployment_during_embargo() -> None:
    public = render_text(sample_doc(), Audience.PUBLIC)
    pre = render_text(sample_doc(), Audience.PREDISCLOSURE)
    assert "EMBARGOED" not in public
    assert "DEPLOYMENT DURING EMBARGO\n=========================" in public
    first = pre.split("\n")[0]
    assert first.strip() == "***** EMBARGOED UNTIL 2024-11-12 12:00 UTC *****"
    assert first.startswith(" ")  # centred
    assert pre.split("\n")[1].strip() == "For members of the Xen pre-disclosure list only."


def test_recipients_line_is_configurable_and_single_line() -> None:
    text = render_text(sample_doc(), Audience.PREDISCLOSURE, recipients_line="Members only.")
    assert text.split("\n")[1].strip() == "Members only."
    with pytest.raises(AdvisoryFormatError):
        render_text(sample_doc(), Audience.PREDISCLOSURE, recipients_line="a\nb")


def test_sha256_listing_is_computed_from_the_contents() -> None:
    doc = sample_doc()
    text = render_text(doc, Audience.PUBLIC)
    files = {p.filename: p.content for p in doc.patches} | {"xsa465.meta": meta_json(doc)}
    expected = sorted(f"{hashlib.sha256(c).hexdigest()}  {n}" for n, c in files.items())
    assert sorted(sha256_lines(doc)) == expected
    block = text.split("$ sha256sum xsa465*\n", 1)[1].split("\n$\n", 1)[0]
    assert block.split("\n") == sha256_lines(doc)


def test_sha256_transcript_is_what_sha256sum_prints(tmp_path: Path) -> None:
    doc = sample_doc()
    for p in doc.patches:
        (tmp_path / p.filename).write_bytes(p.content)
    (tmp_path / doc.meta_filename).write_bytes(meta_json(doc))
    run = subprocess.run(
        "sha256sum xsa465*",
        shell=True,
        cwd=tmp_path,
        env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.splitlines() == sha256_lines(doc)


def test_changing_a_patch_changes_the_listing() -> None:
    doc = sample_doc()
    tampered = replace(doc.patches[0], content=doc.patches[0].content + b"evil\n")
    other = sample_doc(patches=(tampered, *doc.patches[1:]))
    assert render_text(other, Audience.PUBLIC) != render_text(doc, Audience.PUBLIC)


def test_patch_table_is_two_columns_in_given_order() -> None:
    text = render_text(sample_doc(), Audience.PUBLIC)
    assert (
        "xsa465.patch       xen-unstable - Xen 4.18.x\n"
        "xsa465-4.17.patch  Xen 4.17.x\n"
        "xsa465-4.16.patch  Xen 4.16.x - Xen 4.13.x\n"
    ) in text


def test_without_meta_and_patches_nothing_is_listed() -> None:
    doc = sample_doc(patches=(), with_meta=False)
    text = render_text(doc, Audience.PUBLIC)
    assert "sha256sum" not in text
    resolution = text.split("RESOLUTION\n==========\n\n", 1)[1]
    assert resolution.startswith("Applying the appropriate attached patch")


def test_meta_is_deterministic_json() -> None:
    doc = sample_doc()
    assert meta_json(doc) == meta_json(sample_doc())
    meta = json.loads(meta_json(doc))
    assert meta["number"] == 465 and meta["cves"] == list(doc.cves)
    assert [p["sha256"] for p in meta["patches"]] == [
        hashlib.sha256(p.content).hexdigest() for p in doc.patches
    ]


@pytest.mark.parametrize(
    ("cves", "expected"),
    [
        ((), "Xen Security Advisory 465 v2 - t"),
        (("CVE-2024-1234",), "Xen Security Advisory 465 v2 (CVE-2024-1234) - t"),
        (
            ("CVE-2024-1234", "CVE-2024-23456", "CVE-2025-0001"),
            "Xen Security Advisory 465 v2 (CVE-2024-1234,CVE-2024-23456,CVE-2025-0001) - t",
        ),
    ],
)
def test_subject_variants(cves: tuple[str, ...], expected: str) -> None:
    doc = sample_doc(cves=cves, title="t")
    assert subject(doc, Audience.PUBLIC) == expected
    assert subject(doc, Audience.PREDISCLOSURE) == (
        "[EMBARGOED until 2024-11-12 12:00 UTC] " + expected
    )


def test_title_block_without_cve_and_with_many() -> None:
    none = render_text(sample_doc(cves=()), Audience.PUBLIC).split("\n")
    assert none[0].strip() == "Xen Security Advisory XSA-465"
    assert none[1].strip() == "version 2"
    many = tuple(f"CVE-2024-{n}" for n in range(45810, 45818))
    lines = render_text(sample_doc(cves=many), Audience.PUBLIC).split("\n")
    block = lines[: lines.index("") - 1]
    assert all(len(line) <= 70 for line in block)
    joined = "".join(line.strip() for line in block[1:])
    assert joined == ",".join(many) + " / XSA-465"


@pytest.mark.parametrize("bad", ["a\r\nBcc: x@y", "a\nb", "a\rb", "a\u2028b", "a\x85b", "a\u202eb"])
def test_title_with_line_breaks_or_controls_is_refused(bad: str) -> None:
    with pytest.raises(AdvisoryFormatError, match="title"):
        sample_doc(title=bad)


def test_patch_names_must_be_plain_and_covered_by_the_glob() -> None:
    bad = ("../xsa465.patch", "xsa4650.patch", "fix.patch", "xsa465 a.patch", "xsa465.meta")
    patches = tuple(Patch(name, b"x", "Xen 4.18.x") for name in bad)
    with pytest.raises(AdvisoryFormatError) as err:
        sample_doc(patches=patches)
    assert len(err.value.problems) == len(bad)


def test_doc_reports_every_problem_at_once() -> None:
    with pytest.raises(AdvisoryFormatError) as err:
        sample_doc(
            prefix="xsa",
            number=0,
            cves=("CVE-24-1",),
            sections={"IMPACT": "x", "SOMETHING": "y"},
            embargo_at=EMBARGO + timedelta(seconds=30),
        )
    text = str(err.value)
    for part in ("prefix", "number", "CVE-24-1", "SOMETHING", "ISSUE DESCRIPTION", "whole minute"):
        assert part in text


def test_naive_embargo_is_refused() -> None:
    with pytest.raises(AdvisoryFormatError, match="naive"):
        sample_doc(embargo_at=datetime(2024, 11, 12, 12, 0))


def test_parse_sections_reads_the_sample() -> None:
    sections = parse_sections(SECTIONS_FILE)
    assert list(sections)[:4] == ["ISSUE DESCRIPTION", "IMPACT", "VULNERABLE SYSTEMS", "MITIGATION"]
    assert sections["MITIGATION"].split("\n")[3] == '    cpuid = [ "0xd,0:eax=0x0" ]'
    assert parse_sections(SECTIONS_FILE.replace("\n", "\r\n")) == sections


def test_parse_sections_lists_every_problem() -> None:
    text = (
        "stray words\n\n"
        "IMPACT\n=====\n\nbad underline\n\n"
        "FOO BAR\n=======\n\nunknown\n\n"
        "UPDATES IN VERSION 2\n====================\n\nnot here\n\n"
        "CREDITS\n=======\n\nme\n\n"
        "CREDITS\n=======\n\nagain\n"
    )
    with pytest.raises(AdvisoryFormatError) as err:
        parse_sections(text)
    problems = err.value.problems
    wanted = [
        "underline of 'IMPACT' is 5 long",
        "unknown heading 'FOO BAR'",
        "'UPDATES IN VERSION 2' is given as the list of updates",
        "'CREDITS' appears twice",
        "text before the first heading",
        "ISSUE DESCRIPTION: missing",
        "VULNERABLE SYSTEMS: missing",
        "MITIGATION: missing",
        "RESOLUTION: missing",
        "DEPLOYMENT DURING EMBARGO: missing",
    ]
    for w in wanted:
        assert any(w in p for p in problems), w
    assert len(problems) == len(wanted)


def test_parse_sections_required_is_adjustable() -> None:
    without = SECTIONS_FILE.split("DEPLOYMENT DURING EMBARGO")[0]
    with pytest.raises(AdvisoryFormatError, match="DEPLOYMENT"):
        parse_sections(without)
    required = {"ISSUE DESCRIPTION", "IMPACT", "VULNERABLE SYSTEMS", "MITIGATION", "CREDITS"}
    assert "DEPLOYMENT DURING EMBARGO" not in parse_sections(
        without, required=required | {"RESOLUTION"}
    )


def test_parse_sections_refuses_bare_cr_and_controls() -> None:
    with pytest.raises(AdvisoryFormatError) as err:
        parse_sections(SECTIONS_FILE.replace("Jane Doe", "Jane\rDoe\x1b[31m"))
    assert "bare CR" in str(err.value) and "U+001B" in str(err.value)


def test_reflow_wraps_prose_and_keeps_preformatted_lines() -> None:
    url = "https://xenbits.xen.org/xsa/advisory-465.html?" + "x" * 60
    text = (
        "word " * 30 + "CVE-2024-45819 xen-unstable.\n"
        "  keep   this   spacing   " + "y" * 80 + "\n"
        "\n\n\n" + url + "\n"
        "- first item " + "z " * 40 + "\n"
        "- second item"
    )
    out = reflow(text)
    prose = [line for line in out if line and not line.startswith(" ")]
    assert all(len(line) <= 70 for line in prose if line != url)
    assert any("CVE-2024-45819" in line for line in out)  # never split at its hyphens
    assert "  keep   this   spacing   " + "y" * 80 in out
    assert url in out
    assert out.count("") == 1  # runs of blank lines collapse
    item = out.index(next(x for x in out if x.startswith("- first")))
    assert out[item + 1].startswith("  z")  # hanging indent under the marker
    assert out[-1] == "- second item"
