"""The layout is the architecture: imports point one way and never in a circle.

The graph is read from the source with `ast`, every import counted: module level,
inside functions and under `if TYPE_CHECKING:` alike (a type-only import is still a
dependency a reader has to hold in mind). Layers, top to bottom:

    cli -> ops -> app -> settings -> capabilities -> moderation (shared service) -> core

Settings is the one load of the config file: it puts every capability's section
together for the app. Capabilities (security, discuss, applications, advisories) never
import each other.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "listbot"

RANKS = {
    "listbot.__main__": 7,
    "listbot.cli": 6,
    "listbot.ops": 5,
    "listbot.app": 4,
    # The one load of the config file: assembles every capability's section for the app.
    "listbot.settings": 3.5,
    "listbot.security": 3,
    "listbot.discuss": 3,
    "listbot.applications": 3,
    "listbot.advisories": 3,
    "listbot.moderation": 2,
    "listbot.core": 1,
    "listbot": 0,
}
CAPABILITIES = {"listbot.security", "listbot.discuss", "listbot.applications",
                "listbot.advisories"}
# The store holds plain values only: it may not reach into mail, intake or the outbox.
STORE_MAY_IMPORT = ("listbot.core.store", "listbot.core.model", "listbot.core.errors",
                    "listbot.core.clock", "listbot.core.calendar", "listbot.core.case_model")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}


def imported(tree: ast.AST, known: set[str]) -> Iterator[str]:
    """Every listbot module this tree imports (`from a import b` counts a.b when it is one)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("listbot"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("listbot"):
                continue
            subs = [f"{node.module}.{a.name}" for a in node.names]
            found = [s for s in subs if s in known]
            yield from found
            if len(found) < len(subs) and node.module != "listbot":
                yield node.module


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: {d for d in imported(ast.parse(path.read_text()), known) if d != name}
            for name, path in mods.items()}


def unit(name: str) -> str:
    """The longest layer prefix of a module: its package in the picture above."""
    return max((p for p in RANKS if name == p or name.startswith(p + ".")), key=len)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def against_the_direction(edges: dict[str, set[str]]) -> list[str]:
    wrong = []
    for a, deps in sorted(edges.items()):
        ua = unit(a)
        for b in sorted(deps):
            ub = unit(b)
            if ua == ub:
                continue
            if RANKS[ua] <= RANKS[ub]:
                wrong.append(f"{a} -> {b} ({ua} may not import {ub})")
    for a, deps in sorted(edges.items()):
        if a.startswith("listbot.core.store"):
            wrong += [f"{a} -> {b} (the store holds values only)"
                      for b in sorted(deps) if not b.startswith(STORE_MAY_IMPORT)]
    return sorted(wrong)


def test_the_import_graph_has_no_cycle() -> None:
    found = cycles(graph())
    print("\n".join(" <-> ".join(c) for c in found) or "no import cycle")
    assert found == []


def test_imports_point_one_way() -> None:
    wrong = against_the_direction(graph())
    print("\n".join(wrong) or "every import points down")
    assert wrong == []


def test_every_module_sits_in_a_layer() -> None:
    loose = [m for m in modules() if unit(m) == "listbot" and m != "listbot"]
    assert loose == []


def test_the_checks_catch_what_they_claim_to() -> None:
    """The detectors themselves, on a graph built to break every rule."""
    bad = {
        "listbot.discuss.handler": {"listbot.security.cases"},
        "listbot.security.cases": {"listbot.discuss.handler"},
        "listbot.core.worker": {"listbot.app"},
        "listbot.core.store.cases": {"listbot.core.mail.pgp"},
    }
    assert cycles(bad) == [["listbot.discuss.handler", "listbot.security.cases"]]
    wrong = against_the_direction(bad)
    assert any("core.worker -> listbot.app" in w for w in wrong)
    assert any("discuss.handler -> listbot.security" in w for w in wrong)
    assert any("values only" in w for w in wrong)


def test_type_only_and_late_imports_count(tmp_path: Path) -> None:
    source = ("from typing import TYPE_CHECKING\n"
              "if TYPE_CHECKING:\n    from listbot.app import App\n"
              "def f():\n    from listbot.cli import core\n")
    deps = set(imported(ast.parse(source), {"listbot.cli.core", "listbot.app"}))
    assert deps == {"listbot.app", "listbot.cli.core"}
