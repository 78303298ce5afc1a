"""The store is the only place that speaks SQL.

Outside listbot/core/store no module imports SQLAlchemy or Alembic, in any form
(module level, inside a function, under `if TYPE_CHECKING:`, through importlib), and
none touches a transaction's connection (an attribute named `conn`): capabilities
call the store's typed functions with the `Tx` and get model values back.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "listbot"
STORE = PACKAGE / "core" / "store"
SQL_PACKAGES = ("sqlalchemy", "alembic")
IMPORTERS = ("import_module", "__import__")


def _is_sql(module: str) -> bool:
    return module.split(".", maxsplit=1)[0] in SQL_PACKAGES


def _imports(node: ast.AST) -> Iterator[str]:
    """Modules this node imports, whatever the spelling."""
    if isinstance(node, ast.Import):
        yield from (a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        yield node.module
    elif isinstance(node, ast.Call) and node.args:
        func, first = node.func, node.args[0]
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in IMPORTERS and isinstance(first, ast.Constant) \
                and isinstance(first.value, str):
            yield first.value


def violations(source: str, filename: str = "<source>") -> list[str]:
    """Every SQL import and connection access in this source, as file:line: what."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        found += [f"{filename}:{node.lineno}: imports {m}" for m in _imports(node)
                  if _is_sql(m)]
        if isinstance(node, ast.Attribute) and node.attr == "conn":
            found.append(f"{filename}:{node.lineno}: touches .conn")
    return found


def outside_the_store() -> Iterator[Path]:
    for path in sorted(PACKAGE.rglob("*.py")):
        if STORE not in path.parents:
            yield path


def test_no_module_outside_the_store_speaks_sql() -> None:
    found = [v for path in outside_the_store()
             for v in violations(path.read_text(), str(path.relative_to(PACKAGE.parent)))]
    print("\n".join(found) or "SQL stays in listbot/core/store")
    assert found == []


def test_the_scan_covers_the_capabilities_and_skips_the_store() -> None:
    scanned = {p.relative_to(PACKAGE).parts[0] for p in outside_the_store()}
    assert {"app.py", "cli", "core", "discuss", "advisories", "applications",
            "security", "moderation", "ops"} <= scanned
    assert not any(STORE in p.parents for p in outside_the_store())
    assert violations((STORE / "upsert.py").read_text())  # the store itself does speak SQL


PLANTED = '''
from __future__ import annotations
import os
from typing import TYPE_CHECKING
import sqlalchemy
import sqlalchemy.ext.asyncio as sa_async
from alembic import command
from sqlalchemy.exc import IntegrityError
if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

async def handler(tx):
    import alembic.config
    from sqlalchemy import select
    mod = importlib.import_module("sqlalchemy.dialects")
    other = __import__("alembic")
    await tx.conn.execute(select(1))
    async with tx.conn.begin_nested():
        pass
    return getattr(tx, "now"), os.sep
'''


def test_the_detector_catches_every_planted_violation() -> None:
    found = violations(PLANTED)
    imported = sorted(v.split("imports ")[1] for v in found if "imports" in v)
    assert imported == ["alembic", "alembic", "alembic.config", "sqlalchemy",
                        "sqlalchemy", "sqlalchemy.dialects", "sqlalchemy.exc",
                        "sqlalchemy.ext.asyncio", "sqlalchemy.ext.asyncio"]
    assert sum("touches .conn" in v for v in found) == 2


def test_the_detector_leaves_lookalikes_alone() -> None:
    clean = '''
from listbot.core.store import Tx
from listbot.core.store import moderation as held_ops
import sqlalchemy_utils_not_really as x
connection = None
async def f(tx: Tx, conn: object) -> None:
    await held_ops.get(tx, 1)
    tx.connection, tx.conn_count = conn, 0
'''
    assert violations(clean) == []
