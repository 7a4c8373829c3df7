"""The compiled core (mypyc, as the wheel build compiles it) and the interpreted one are the same
program: on the same 20,000 events of the benchmark's mix (bad input, duplicates, transfers, agent
states, surveys) both stages give the same facts, dead letters, state writes and counts batch by
batch, and the same state and KPI views at the end. And the core is strict-typed, which mypyc
relies on (an annotation it trusts but the code breaks is a wrong result, not a type error)."""

from __future__ import annotations

import subprocess
import sys

from benchmarks.compiled_core import ROOT, run


def test_streams_core_passes_mypy_strict():
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "streams/core"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.startswith("Success: no issues found"), done.stdout + done.stderr


def test_compiled_and_interpreted_core_compute_the_same():
    interpreted = run("digest", 20_000, compiled=False)
    compiled = run("digest", 20_000, compiled=True)
    assert interpreted["core"] == "intake.py"
    assert compiled["core"].endswith(".so"), compiled
    assert compiled["digest"] == interpreted["digest"]
