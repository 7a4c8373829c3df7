"""The compiled core (mypyc, as the wheel build compiles it) and the interpreted one are the same
program: on the same 20,000 events of the benchmark's mix (bad input, duplicates, transfers, agent
states, surveys) both stages give the same facts, dead letters, state writes and counts batch by
batch, and the same state and KPI views at the end. (That the core is strict-typed, which mypyc
relies on, is checked with the rest of the lint in test_lint.py.)"""

from __future__ import annotations

from benchmarks.compiled_core import run


def test_compiled_and_interpreted_core_compute_the_same():
    interpreted = run("digest", 20_000, compiled=False)
    compiled = run("digest", 20_000, compiled=True)
    assert interpreted["core"] == "intake.py"
    assert compiled["core"].endswith(".so"), compiled
    # what the worker logs and shows on /health (streams.packaged.core_build) tells them apart too
    assert (interpreted["compiled"], compiled["compiled"]) == (False, True)
    assert compiled["digest"] == interpreted["digest"]
