"""The project's documents stay true to the repository: every test they cite exists,
every section a comment points to is a heading of docs/design.md, and nothing points
to a design text outside the repository."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "docs" / "design.md"
CITATION = re.compile(r"\btests/([\w/]+\.py)((?:::\w+)*)")
SECTION_POINTER = re.compile(r'docs/design\.md "([^"\n]+)"')
# Design texts that once lived beside the repository, not in it.
OUTSIDE = ("../shared", "DESIGN.md", "ADVISORY-FORMAT.md")
# Where the project's own words live; this file is left out because it names what it
# looks for.
OWN_TEXT = ["README.md", "docs", "listbot", "config", "systemd", "bench", "tests",
            "rules", "pyproject.toml"]
TEXT_SUFFIXES = {".py", ".md", ".toml", ".service", ".txt", ".cfg", ".ini", ""}


def text_files() -> Iterator[Path]:
    for name in OWN_TEXT:
        path = ROOT / name
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        for file in candidates:
            if (file.is_file() and file.suffix in TEXT_SUFFIXES
                    and "__pycache__" not in file.parts and file != Path(__file__).resolve()):
                yield file


def citations(text: str) -> list[tuple[str, list[str]]]:
    """(test file, [class..., test name]) for every `tests/x.py::name` in the text."""
    return [(m.group(1), [p for p in m.group(2).split("::") if p])
            for m in CITATION.finditer(text)]


@cache
def defined(path: Path) -> frozenset[tuple[str, ...]]:
    """Every function and class of a test file by its qualified path ("Cls", "test")."""
    found: set[tuple[str, ...]] = set()

    def walk(node: ast.AST, prefix: tuple[str, ...]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                found.add((*prefix, child.name))
                if isinstance(child, ast.ClassDef):
                    walk(child, (*prefix, child.name))

    walk(ast.parse(path.read_text()), ())
    return frozenset(found)


def missing_citations(text: str) -> list[str]:
    missing = []
    for file, names in citations(text):
        path = ROOT / "tests" / file
        cited = "::".join([f"tests/{file}", *names])
        if not path.is_file():
            missing.append(f"{cited}: no such file")
        elif names and tuple(names) not in defined(path):
            missing.append(f"{cited}: no such test")
    return missing


def headings(markdown: str) -> set[str]:
    return {line.lstrip("#").strip().lower() for line in markdown.splitlines()
            if line.startswith("#")}


def test_every_cited_test_exists() -> None:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    cited = sum(len(citations(d.read_text())) for d in docs)
    assert cited >= 100, "the citations were not found at all: has their form changed?"
    missing = [f"{d.relative_to(ROOT)}: {m}" for d in docs
               for m in missing_citations(d.read_text())]
    assert missing == []


def test_every_invariant_names_the_tests_that_prove_it() -> None:
    invariants = DESIGN.read_text().split("\n## Invariants\n", 1)[1].split("\n## ", 1)[0]
    sections = invariants.split("\n### ")[1:]
    assert len(sections) >= 11
    unproven = [s.splitlines()[0] for s in sections if not citations(s)]
    assert unproven == []


def test_every_section_pointed_to_is_a_heading_of_the_design() -> None:
    known = headings(DESIGN.read_text())
    pointers = [(f.relative_to(ROOT), name) for f in text_files()
                for name in SECTION_POINTER.findall(f.read_text(errors="replace"))]
    assert pointers, "no file points to a section: has the pointer form changed?"
    dangling = [f"{f}: {name}" for f, name in pointers if name.lower() not in known]
    assert dangling == []


def test_nothing_points_to_a_design_text_outside_the_repository() -> None:
    outside = [f"{f.relative_to(ROOT)}:{n}: {line.strip()}" for f in text_files()
               for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1)
               if any(name in line for name in OUTSIDE)]
    assert outside == []


def test_the_checks_catch_what_they_claim_to() -> None:
    text = ("`tests/layout/test_docs.py::test_every_cited_test_exists`, "
            "`tests/layout/test_docs.py::no_such_test`, `tests/test_nowhere.py::test_x`, "
            "`tests/core/test_worker.py::Recording::decide`")
    assert missing_citations(text) == ["tests/layout/test_docs.py::no_such_test: no such test",
                                       "tests/test_nowhere.py::test_x: no such file"]
    assert SECTION_POINTER.findall('see docs/design.md "The audience gate".') == [
        "The audience gate"]
    assert "the audience gate" in headings(DESIGN.read_text())
