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
import re
import signal
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest

from tests.integration.conftest import Env, Worker
from tests.integration.recordings import mixed
from tests.integration.test_crash_exactness import state_series
from tests.integration.test_two_workers import total_events

pytestmark = pytest.mark.integration

PARTITIONS = 4  #: CCMON_PARTITIONS of the test deployment (conftest)
#: scrapes required equal to the reference, one after the other, once a rebalance has settled
STEADY_SCRAPES = 5


def queues_of(m: dict) -> set[str]:
    return {q for _, labels in state_series(m) if (q := dict(labels).get("queue")) is not None}


def agents_of(m: dict) -> set[str]:
    """Agents with per-agent series (CCMON_AGENT_METRICS): on the facts partition of their id."""
    return {a for name, labels in state_series(m) if name.startswith("ccmon_agent_")
            and (a := dict(labels).get("agent")) is not None}


def summed(scrapes: list[dict]) -> dict:
    out: dict = defaultdict(float)
    for m in scrapes:
        for key, value in state_series(m).items():
            out[key] += value
    return dict(out)


def wallboard(w: Worker) -> dict:
    with urllib.request.urlopen(w.url("/api/wallboard"), timeout=10) as resp:
        return json.loads(resp.read())


def partitions_of(w: Worker) -> set[int]:
    """The facts partitions a worker says it shows (its wallboard's share)."""
    scope = wallboard(w)["scope"]
    if scope.startswith("all queues"):
        return set(range(PARTITIONS))
    found = re.search(r"queue partitions \[([\d, ]*)\]", scope)
    return {int(p) for p in found.group(1).split(",") if p.strip()} if found else set()


def check(workers: list[Worker], ref: dict) -> str | None:
    """None when every worker has its share of the partitions (the rebalance has happened) and
    the workers' exports add up to the reference with no queue from two workers, else what is
    not so yet."""
    shares = [partitions_of(w) for w in workers]
    if not all(shares) or sum(map(len, shares)) != PARTITIONS or set().union(*shares) != set(range(PARTITIONS)):
        return f"partitions not shared out yet: {shares}"
    scrapes = [w.scrape() for w in workers]
    seen: dict[str, int] = {}
    for i, m in enumerate(scrapes):
        for what, names in (("queue", queues_of(m)), ("agent", agents_of(m))):
            for name in names:
                if (what, name) in seen:
                    return f"{what} {name!r} exported by workers {seen[what, name]} and {i}"
                seen[what, name] = i
    total = summed(scrapes)
    if total != ref:
        diff = sorted((k[0], sorted(k[1]), total.get(k), ref.get(k)) for k in set(total) | set(ref)
                      if total.get(k) != ref.get(k))
        return f"{len(diff)} series differ from the reference (sum, reference), e.g. {diff[:4]}"
    return None


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


def test_join_leave_rolling_restart_and_three_workers_keep_sums_exact(env: Env, workers: list[Worker], tmp_path: Path):
    recording = tmp_path / "rebalance.jsonl"
    kinds = mixed(recording, env.topics, seed=10, minutes=45)
    assert kinds["transferred"] > 20 and kinds["late_arrivals"] > 50 and kinds["duplicates"] > 30
    assert env.ccmon("replay", str(recording), "--quiet").returncode == 0
    n = kinds["lines"]

    fast = {"CCMON_SESSION_TIMEOUT_S": "6", "CCMON_AGENT_METRICS": "true"}
    reference = Worker(env, CCMON_APP_ID=f"{env.prefix}-ref", CCMON_FACTS_TOPIC=f"{env.prefix}.ref-facts", **fast)
    workers.append(reference)
    ref = state_series(reference.wait_settled(lambda m: total_events(m) == n, timeout=180, what="the reference"))
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
