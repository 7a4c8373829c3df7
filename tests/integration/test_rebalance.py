"""Workers joining, leaving and restarting on data that is already there: ownership follows the
assignment, so ``sum by (queue, channel)`` over the workers equals one reference worker at every
scrape once a rebalance settles, each queue and each agent (per-agent series) comes from exactly
one worker, and each wallboard and agents page shows the same share as its /metrics.

Worker A starts alone on the recorded data and holds every queue; B joins and takes some of A's
partitions (A must stop exporting them: the failure of issue 10 was A exporting them on, doubling
every sum); C joins (three workers); A and B are restarted one after the other (a rolling
restart); C leaves."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.recordings import mixed
from tests.integration.support import (
    Env,
    Worker,
    agents_of,
    check,
    queues_of,
    reference_worker,
    state_series,
    total_events,
    wallboard,
)

pytestmark = pytest.mark.integration

#: scrapes required equal to the reference, one after the other, once a rebalance has settled
STEADY_SCRAPES = 5


def settle(workers: list[Worker], ref: dict, what: str, timeout: float = 180) -> float:
    """Wait until the workers agree with the reference, then require it at every one of
    STEADY_SCRAPES further scrapes; the wallboards show the same queues as /metrics. Returns
    the seconds it took to settle."""
    started = time.monotonic()
    while (problem := check(workers, ref)) is not None:
        for w in workers:
            if w.proc.poll() is not None:
                raise AssertionError(f"{what}: a worker exited:\n{w.log.read_text()[-3000:]}")
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not settled in {timeout} s: {problem}")
        time.sleep(0.5)
    took = time.monotonic() - started
    for _ in range(STEADY_SCRAPES):
        time.sleep(0.3)
        assert (problem := check(workers, ref)) is None, f"{what}: settled, then {problem}"
    shares = []
    for w in workers:
        board = wallboard(w)
        assert {s["queue"] for s in board["series"]} == queues_of(w.scrape()), what
        with urllib.request.urlopen(w.url("/api/agents"), timeout=10) as resp:
            page = json.loads(resp.read())
        assert {a["agent"] for a in page["agents"]} == agents_of(w.scrape()), what
        shares.append(board["scope"])
    if len(workers) == 1:
        assert shares[0].startswith("all queues"), shares
    else:
        assert all(s.startswith("this worker's share: queue partitions") for s in shares), shares
    return took


def test_join_leave_rolling_restart_and_three_workers_keep_sums_exact(
    env: Env, workers: list[Worker], tmp_path: Path
):
    recording = tmp_path / "rebalance.jsonl"
    kinds = mixed(recording, env.topics, seed=10, minutes=45)
    assert kinds["transferred"] > 20 and kinds["late_arrivals"] > 50 and kinds["duplicates"] > 30
    assert env.ccmon("replay", str(recording), "--quiet").returncode == 0
    n = kinds["lines"]

    fast = {"CCMON_SESSION_TIMEOUT_S": "6", "CCMON_AGENT_METRICS": "true"}
    reference = reference_worker(env, **fast)
    workers.append(reference)
    ref = state_series(
        reference.wait_settled(lambda m: total_events(m) == n, timeout=180, what="the reference")
    )
    assert len(queues_of(ref)) == 6 and len(ref) > 200 and len(agents_of(ref)) > 20

    took: dict[str, float] = {}
    a = Worker(env, **fast)  # alone, on data that is already there
    workers.append(a)
    took["A alone"] = settle([a], ref, "A alone")
    before = queues_of(a.scrape())
    b = Worker(env, **fast)
    workers.append(b)
    took["B joins"] = settle([a, b], ref, "B joined A")
    assert queues_of(a.scrape()) < before and queues_of(b.scrape())  # A gave some queues away
    c = Worker(env, **fast)
    workers.append(c)
    took["C joins"] = settle([a, b, c], ref, "C joined: three workers")
    live = [a, b, c]
    for name in ("A", "B"):  # rolling restart: stop one, the others take over, start it again
        old = live.pop(0)
        old.stop(signal.SIGTERM)
        took[f"{name} stopped"] = settle(live, ref, f"{name} stopped")
        new = Worker(env, **fast)
        workers.append(new)
        live.append(new)
        took[f"{name} restarted"] = settle(live, ref, f"{name} restarted")
    gone = live.pop(0)  # C leaves for good
    gone.stop(signal.SIGTERM)
    took["C left"] = settle(live, ref, "C left")
    print("seconds until settled:", {k: round(v, 1) for k, v in took.items()})
