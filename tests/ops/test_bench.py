"""The benchmarks still run: each on a tiny load, checking only that it finishes and
prints its figures with the reference (the figures themselves live in bench/RESULTS.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_UNAVAILABLE

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.parametrize(("script", "args", "expected"), [
    ("ingest.py", ["--count", "30"], "ratio"),
    ("fanout.py", ["--posts", "3", "--members", "2", "--big", "0"], "ms per post"),
    pytest.param("cluster.py", ["--posts", "10", "--members", "2"], "ratio two/one",
                 marks=pytest.mark.skipif(bool(PG_UNAVAILABLE), reason=str(PG_UNAVAILABLE))),
])
def test_benchmark_runs_and_prints_its_figures(script: str, args: list[str],
                                               expected: str) -> None:
    done = subprocess.run([sys.executable, script, *args], cwd=BENCH, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert expected in done.stdout


def test_crash_test_loses_nothing_and_prints_its_figures() -> None:
    done = subprocess.run([sys.executable, "crash.py", "--db", "sqlite", "--kills", "2",
                           "--rate", "10", "--min-up", "0.3", "--max-up", "0.8", "--seed", "1"],
                          cwd=BENCH, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"^lost: 0$", done.stdout, re.MULTILINE), done.stdout
    for line in ("rule: ", "posts acknowledged: ", "delivered twice: ", "kills: 2, restarts: 2",
                 "restart to first delivery: "):
        assert re.search(f"^{re.escape(line)}", done.stdout, re.MULTILINE), done.stdout


def test_trace_of_one_post_names_the_modules_it_ran() -> None:
    done = subprocess.run([sys.executable, "trace_post.py", "--members", "2"], cwd=BENCH,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    count = re.search(r"^modules per discuss post: (\d+)$", done.stdout, re.MULTILINE)
    assert count is not None and int(count.group(1)) > 0, done.stdout
    # The post's own path shows: the list's handler and the way out both ran.
    assert re.search(r"^  listbot\.discuss \(\d+\): .*handler", done.stdout, re.MULTILINE)
    assert re.search(r"^  listbot\.core\.outbox \(\d+\): .*delivery", done.stdout,
                     re.MULTILINE)
    assert "largest 15 modules" in done.stdout
