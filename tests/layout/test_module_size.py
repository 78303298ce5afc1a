"""Every module under listbot/ stays at or under 400 lines.

A module past that size holds more than one responsibility: split it by what its
parts do, not by cutting it in half.
"""

from __future__ import annotations

from pathlib import Path

LIMIT = 400
PACKAGE = Path(__file__).resolve().parents[2] / "listbot"
# Modules being split on a branch of their own; none at present.
SPLIT_ELSEWHERE: frozenset[str] = frozenset()


def sizes(root: Path) -> dict[str, int]:
    """Lines of every Python module under root, by path relative to root's parent."""
    return {p.relative_to(root.parent).as_posix(): len(p.read_text().splitlines())
            for p in sorted(root.rglob("*.py"))}


def oversized(root: Path, limit: int = LIMIT) -> dict[str, int]:
    return {name: n for name, n in sizes(root).items() if n > limit}


def report(found: dict[str, int]) -> str:
    listed = ", ".join(f"{name} ({n} lines)" for name, n in sorted(found.items()))
    return f"modules over {LIMIT} lines: {listed}"


def test_every_module_is_at_most_400_lines() -> None:
    found = {k: v for k, v in oversized(PACKAGE).items() if k not in SPLIT_ELSEWHERE}
    assert not found, report(found)


def test_the_check_names_an_oversized_module_and_its_size(tmp_path: Path) -> None:
    root = tmp_path / "listbot"
    (root / "core").mkdir(parents=True)
    (root / "core" / "small.py").write_text("x = 1\n" * LIMIT)
    (root / "core" / "big.py").write_text("x = 1\n" * (LIMIT + 1))
    found = oversized(root)
    assert found == {"listbot/core/big.py": LIMIT + 1}
    assert "listbot/core/big.py (401 lines)" in report(found)
