"""A worker killed with SIGKILL five times at random moments while it works through a recording of
100,000+ events (duplicates, transfers, surveys hours late) ends with exactly the KPIs of a worker
that was never interrupted: every counter, histogram bucket, _count and _sum, and windowed gauge."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import orjson
import pytest

from producers.recording import line
from tests.integration.conftest import Env, Worker
from tests.integration.test_two_workers import total_events
from tests.unit.helpers import with_later_spec_events

pytestmark = pytest.mark.integration

KILLS = 5
SEED = 20261123


def build_recording(env: Env, path: Path, rng: random.Random) -> tuple[int, dict[str, int]]:
    """The simulator's recording with dequeued contacts, missed offers and CES mixed in, plus 2 %
    duplicates replayed a little later and surveys for contacts of the first hour that arrive at
    the very end, 2 to 3 hours after their contact."""
    made = env.ccmon("simulate", "--profile", "flat", "--seed", "7", "--backfill", "14400", "--rate", "9",
                     "--staff", "9", "--output", str(path))
    assert made.returncode == 0, made.stderr
    simulated = [orjson.loads(x) for x in path.read_bytes().splitlines()]
    rows = with_later_spec_events([(d["topic"], d["key"], d["value"]) for d in simulated], rng)
    lines = [line(topic, key, value).rstrip(b"\n") for topic, key, value in rows]
    docs = [{"topic": topic, "key": key, "value": value} for topic, key, value in rows]
    first_ts = min(d["value"]["ts"] for d in docs if isinstance(d["value"], dict))
    out: list[bytes] = []
    pending: list[tuple[int, bytes]] = []
    for i, raw in enumerate(lines):
        out.append(raw)
        if rng.random() < 0.02:
            pending.append((i + rng.randint(1, 500), raw))
        while pending and pending[0][0] <= i:
            out.append(pending.pop(0)[1])
        pending.sort()
    out.extend(raw for _, raw in pending)
    late = 0
    for d in docs:
        v = d["value"]
        if isinstance(v, dict) and v.get("type") == "ended" and v["ts"] < first_ts + 3600_000 and rng.random() < 0.2:
            survey = {"event_id": f"late-{v['event_id']}", "type": "survey", "contact_id": v["contact_id"],
                      "ts": v["ts"] + rng.randint(7200_000, 10800_000), "csat": rng.randint(1, 5),
                      "nps": rng.randint(0, 10), "resolved": rng.random() < 0.7, "ces": rng.randint(1, 7)}
            out.append(orjson.dumps({"topic": d["topic"], "key": d["key"], "value": survey}))
            late += 1
    path.write_bytes(b"\n".join(out) + b"\n")
    kinds: dict[str, int] = {}
    for d in docs:
        if isinstance(d["value"], dict):
            kinds[d["value"].get("type", "?")] = kinds.get(d["value"].get("type", "?"), 0) + 1
    kinds["duplicates"] = len(out) - len(lines) - late
    kinds["late_surveys"] = late
    return len(out), kinds


def state_series(m: dict) -> dict:
    """Everything computed from state: all ccmon series but the process metrics, and the oldest
    wait, which moves with the clock between two scrapes."""
    return {k: v for k, v in m.items() if k[0].startswith("ccmon_") and not k[0].startswith(
        ("ccmon_events", "ccmon_event_lag", "ccmon_dead_letters", "ccmon_broker", "ccmon_consumer_lag",
         "ccmon_kafka_client", "ccmon_queue_oldest", "ccmon_state_records",
         "ccmon_agent_state_seconds"))}  # per-agent state seconds run on with the clock, like the oldest wait


def agent_view(w: Worker) -> dict:
    """The agents page's data, but for what moves with the clock (time in state, occupancy)."""
    import json
    import urllib.request
    with urllib.request.urlopen(w.url("/api/agents"), timeout=10) as resp:
        rows = json.loads(resp.read())["agents"]
    return {a["agent"]: (a["name"], a["state"], a["reason"], a["since"], a["queues"], a["contact"],
                         a["contacts_in_hand"], a["handled_today"], a["handle_s_today"], a["missed_today"])
            for a in rows}


def test_five_sigkills_during_a_100k_replay_change_nothing(env: Env, workers: list[Worker], tmp_path: Path):
    rng = random.Random(SEED)
    recording = tmp_path / "crash.jsonl"
    n, kinds = build_recording(env, recording, rng)
    assert n >= 100_000 and kinds["transferred"] > 100 and kinds["duplicates"] > 1000 and kinds["late_surveys"] > 50
    assert kinds["dequeued"] > 50 and kinds["missed"] > 1000
    replayed = env.ccmon("replay", str(recording), "--quiet", timeout=300)
    assert replayed.returncode == 0, replayed.stderr

    fast = {"CCMON_SESSION_TIMEOUT_S": "6", "CCMON_AGENT_METRICS": "true"}
    reference = Worker(env, CCMON_APP_ID=f"{env.prefix}-ref", CCMON_FACTS_TOPIC=f"{env.prefix}.ref-facts", **fast)
    workers.append(reference)
    victim = Worker(env, **fast)
    workers.append(victim)
    kills = []
    for k in range(KILLS):
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
    victim.wait_settled(lambda m: any(k[0] == "ccmon_consumer_lag_messages" for k in m) and lag(m) == 0,
                        timeout=300, quiet_s=3, what="the victim to catch up")
    deadline = time.monotonic() + 60
    while True:  # scraped a moment apart, a 10 s bucket boundary may fall between the two
        final, ref = victim.scrape(), reference.scrape()
        if (state_series(final) == state_series(ref) and agent_view(victim) == agent_view(reference)) \
                or time.monotonic() > deadline:
            break
        time.sleep(1)
    a, b = state_series(final), state_series(ref)
    diff = sorted((k[0], sorted(k[1]), a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k))
    lags = sorted((dict(k[1])["topic"], dict(k[1])["partition"], v) for k, v in final.items()
                  if k[0] == "ccmon_consumer_lag_messages")
    assert not diff, (f"{len(diff)} series differ (victim, reference), e.g.:\n" + "\n".join(map(str, diff[:12]))
                      + f"\nvictim lag: {lags}\n" + victim.log.read_text()[-3000:])
    assert agent_view(victim) == agent_view(reference)  # the per-agent state too
    assert len(agent_view(reference)) >= 20
    series = state_series(ref)
    assert len(series) > 300 and any(k[0] == "ccmon_agent_handled_total" for k in series)
    assert any(k[0] == "ccmon_wait_seconds_sum" for k in series) and any(("window", "today") in k[1] for k in series)
    assert sum(v for k, v in series.items() if k[0] == "ccmon_contacts_dequeued_total") == kinds["dequeued"]
    assert sum(v for k, v in series.items() if k[0] == "ccmon_offers_missed_total") == kinds["missed"]
    assert any(k[0] == "ccmon_ces_score" for k in series)
