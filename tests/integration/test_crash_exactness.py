"""A worker killed with SIGKILL five times at random moments while it works through a recording of
100,000+ events (about 15,000 contacts; duplicates, events arriving behind later ones, transfers,
holds, missing wrap-ups, surveys hours late, agents, 200 hostile inputs: the mix of issue 10, at
fixed timestamps) ends with exactly the KPIs of a worker that was never interrupted: every
counter, histogram bucket, _count and _sum, and gauge. test_crash_search.py places the kills at
chosen points instead of random moments."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from tests.integration.recordings import mixed
from tests.integration.support import Env, Worker, reference_worker, state_series, total_events

pytestmark = pytest.mark.integration

KILLS = 5
SEED = 20261123


def agent_view(w: Worker) -> dict:
    """The agents page's data, but for what moves with the clock (time in state, occupancy)."""
    import json
    import urllib.request

    with urllib.request.urlopen(w.url("/api/agents"), timeout=10) as resp:
        rows = json.loads(resp.read())["agents"]
    return {
        a["agent"]: (
            a["name"],
            a["state"],
            a["reason"],
            a["since"],
            a["queues"],
            a["contact"],
            a["contacts_in_hand"],
            a["handled_today"],
            a["handle_s_today"],
            a["missed_today"],
        )
        for a in rows
    }


def test_five_sigkills_during_a_100k_replay_change_nothing(env: Env, workers: list[Worker], tmp_path: Path):
    rng = random.Random(SEED)
    recording = tmp_path / "crash.jsonl"
    kinds = mixed(recording, env.topics, seed=7, minutes=120, rate=7)
    n = kinds["lines"]
    assert n >= 100_000 and kinds["offered"] > 14_000 and kinds["transferred"] > 500
    assert kinds["duplicates"] > 1000 and kinds["late_arrivals"] > 1000 and kinds["late_surveys"] > 1000
    assert kinds["dequeued"] > 50 and kinds["missed"] > 1000
    replayed = env.ccmon("replay", str(recording), "--quiet", timeout=300)
    assert replayed.returncode == 0, replayed.stderr

    fast = {"CCMON_SESSION_TIMEOUT_S": "6", "CCMON_AGENT_METRICS": "true"}
    reference = reference_worker(env, **fast)
    workers.append(reference)
    victim = Worker(env, **fast)
    workers.append(victim)
    kills = []
    for _ in range(KILLS):
        # a random moment while it works: after a random share of the input (each incarnation
        # re-reads what its predecessor had not committed), whatever the speed of this machine
        target, started = rng.randint(2_000, 15_000), time.monotonic()
        while (done := total_events(victim.scrape())) < target and time.monotonic() - started < 30:
            time.sleep(0.05)
        kills.append(done)
        victim.stop(signal.SIGKILL)
        victim = Worker(env, **fast)
        workers.append(victim)
    print(f"{n} events ({kinds}); SIGKILLs after this many events in each incarnation: {kills}")
    assert all(kills) and sum(kills) < n, "the kills came before any work or after all of it: not mid-stream"

    ref = reference.wait_settled(lambda m: total_events(m) == n, timeout=300, what="the reference run")

    # the victim's own event counter restarts with each incarnation: wait until it has read everything
    def lag(m: dict) -> float:
        return sum(v for (name, _), v in m.items() if name == "ccmon_consumer_lag_messages")

    victim.wait_settled(
        lambda m: any(k[0] == "ccmon_consumer_lag_messages" for k in m) and lag(m) == 0,
        timeout=300,
        quiet_s=3,
        what="the victim to catch up",
    )
    deadline = time.monotonic() + 60
    while True:  # scraped a moment apart, a 10 s bucket boundary may fall between the two
        final, ref = victim.scrape(), reference.scrape()
        if (
            state_series(final) == state_series(ref) and agent_view(victim) == agent_view(reference)
        ) or time.monotonic() > deadline:
            break
        time.sleep(1)
    a, b = state_series(final), state_series(ref)
    diff = sorted((k[0], sorted(k[1]), a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k))
    lags = sorted(
        (dict(k[1])["topic"], dict(k[1])["partition"], v)
        for k, v in final.items()
        if k[0] == "ccmon_consumer_lag_messages"
    )
    assert not diff, (
        f"{len(diff)} series differ (victim, reference), e.g.:\n"
        + "\n".join(map(str, diff[:12]))
        + f"\nvictim lag: {lags}\n"
        + victim.log.read_text()[-3000:]
    )
    assert agent_view(victim) == agent_view(reference)  # the per-agent state too
    assert len(agent_view(reference)) >= 20
    series = state_series(ref)
    assert len(series) > 300 and any(k[0] == "ccmon_agent_handled_total" for k in series)
    # fixed timestamps in the past: the windows are empty (the unit replay test covers them); the
    # totals, histograms, contacts waiting and agents are all there
    assert {
        "ccmon_wait_seconds_sum",
        "ccmon_handle_seconds_bucket",
        "ccmon_queue_waiting_contacts",
        "ccmon_agents",
    } <= {k[0] for k in series}
    # dequeued contacts and missed offers counted (an event that arrived before its contact's
    # offered is rejected, so the totals are a little below the recording's)
    dequeued = sum(v for k, v in series.items() if k[0] == "ccmon_contacts_dequeued_total")
    missed = sum(v for k, v in series.items() if k[0] == "ccmon_offers_missed_total")
    assert (
        0.9 * kinds["dequeued"] <= dequeued <= kinds["dequeued"]
        and 0.9 * kinds["missed"] <= missed <= kinds["missed"]
    )
