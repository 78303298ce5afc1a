"""A realistic advisory shared by the advisory tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from listbot.advisories.doc import AdvisoryDoc, Patch
from listbot.advisories.sections import parse_sections

FIXTURES = Path(__file__).parent / "fixtures"

SECTIONS_FILE = """\
ISSUE DESCRIPTION
=================

When emulating the XSAVE family of instructions for an HVM guest, Xen
fails to check that the guest supplied save area lies entirely within
the guest's own memory.  A guest can therefore make Xen read from or
write to memory which does not belong to it.

IMPACT
======

A malicious HVM or PVH guest can escalate its privilege to that of the
host.  Denial of service (DoS) affecting the entire host, and information
leaks, cannot be ruled out either.

VULNERABLE SYSTEMS
==================

All Xen versions from 4.13 onwards are vulnerable.  Earlier versions have
not been inspected.

Only x86 systems are vulnerable.  Arm systems are not vulnerable.

Only HVM and PVH guests can leverage the vulnerability:
  - PV guests cannot,
  - guests running in shim mode cannot either.

MITIGATION
==========

Running only PV guests will avoid the vulnerability.  On systems where
that is not possible, restricting the emulated instruction set with

    cpuid = [ "0xd,0:eax=0x0" ]

in the guest configuration prevents the guest from reaching the faulty
path, at the cost of disabling XSAVE in the guest.

NOTE CONCERNING MULTIPLE CVES
=============================

Two CVEs were assigned: CVE-2024-45819 for the read and CVE-2024-45820 for
the write, because they were found and fixed independently.

CREDITS
=======

This issue was discovered by Jane Doe of Example Security Research.

RESOLUTION
==========

Applying the appropriate attached patch resolves this issue.

Note that patches for released versions are generally prepared to
apply to the stable branches, and may not apply cleanly to the most
recent release tarball.  Downstreams are encouraged to update to the
tip of the stable branch before applying these patches.

DEPLOYMENT DURING EMBARGO
=========================

Deployment of the patches and/or mitigations described above (or
others which are substantially similar) is permitted during the
embargo, even on public-facing systems with untrusted guest users and
administrators.

But: Distribution of updated software is prohibited (except to other
members of the predisclosure list).

Predisclosure list members who wish to deploy significantly different
patches and/or mitigations, please contact the Xen Project Security
Team.
"""

PATCHES = (
    Patch(
        "xsa465.patch",
        b"From: Example <dev@example.org>\nSubject: x86/hvm: check XSAVE area bounds\n\n"
        b"--- a/xen/arch/x86/hvm/emulate.c\n+++ b/xen/arch/x86/hvm/emulate.c\n"
        b"@@ -1,3 +1,4 @@\n+    if ( !in_bounds(addr, size) ) return X86EMUL_EXCEPTION;\n",
        "xen-unstable - Xen 4.18.x",
    ),
    Patch("xsa465-4.17.patch", b"--- 4.17 backport\n\x00\xff binary-safe\r\n", "Xen 4.17.x"),
    Patch("xsa465-4.16.patch", b"--- 4.16 backport\n", "Xen 4.16.x - Xen 4.13.x"),
)

EMBARGO = datetime(2024, 11, 12, 12, 0, tzinfo=UTC)


def sample_doc(**changes: Any) -> AdvisoryDoc:
    doc = AdvisoryDoc(
        project="Xen",
        prefix="XSA",
        number=465,
        version=2,
        title="x86/HVM: missing bounds check on the XSAVE area allows guests to access "
        "hypervisor memory",
        cves=("CVE-2024-45819", "CVE-2024-45820"),
        sections=parse_sections(SECTIONS_FILE),
        updates=("CVE numbers assigned.", "Patch for Xen 4.16 added."),
        patches=PATCHES,
        embargo_at=EMBARGO,
    )
    return replace(doc, **changes) if changes else doc
