"""Two workers in one consumer group: each exports only the queues it owns, their sum equals one
worker's output on the same input, and when one is killed the other takes over exactly."""

from __future__ import annotations

import json
import signal
import urllib.request
from collections import defaultdict

import pytest

from tests.integration.support import Env, Worker, kpis, record_flat, total_events

pytestmark = pytest.mark.integration


def summed(*scrapes: dict) -> dict:
    out: dict = defaultdict(float)
    for m in scrapes:
        for key, value in kpis(m).items():
            out[key] += value
    return dict(out)


#: per-agent series that do not move with the clock (state seconds do): exact across workers
AGENT_SERIES = (
    "ccmon_agent_state",
    "ccmon_agent_handled_total",
    "ccmon_agent_handle_seconds_total",
    "ccmon_agent_offers_missed_total",
)


def agent_series(m: dict) -> dict:
    return {k: v for k, v in m.items() if k[0] in AGENT_SERIES}


def agent_rows(w: Worker) -> dict:
    """The worker's agent view: agent → the figures that do not move with the clock."""
    with urllib.request.urlopen(w.url("/api/agents"), timeout=10) as resp:
        body = json.loads(resp.read())
    return {
        a["agent"]: (
            a["state"],
            a["since"],
            a["reason"],
            a["handled_today"],
            a["handle_s_today"],
            a["missed_today"],
            a["contact"],
        )
        for a in body["agents"]
    }


def test_two_workers_split_queues_sum_exactly_and_take_over(env: Env, workers: list[Worker], tmp_path):
    recording = tmp_path / "sim.jsonl"
    n = len(record_flat(env, recording, 11, 2700, 2, "--incident", "bad-input:20@600"))
    a, b = Worker(env, CCMON_AGENT_METRICS="true"), Worker(env, CCMON_AGENT_METRICS="true")
    workers += [a, b]
    # its own group: sees everything
    reference = Worker(env, CCMON_APP_ID=env.prefix + "-reference", CCMON_AGENT_METRICS="true")
    workers.append(reference)
    assert env.ccmon("replay", str(recording), "--quiet").returncode == 0

    ref = reference.wait_settled(lambda m: total_events(m) == n, timeout=120, what="reference worker done")

    def both_done(_: dict) -> bool:
        return total_events(a.scrape(), b.scrape()) == n

    a.wait_settled(both_done, timeout=120, what="both workers done")
    b.wait_settled(both_done, timeout=60, what="both workers done")
    ma, mb = a.scrape(), b.scrape()

    queues_a = {dict(labels)["queue"] for _, labels in kpis(ma)}
    queues_b = {dict(labels)["queue"] for _, labels in kpis(mb)}
    assert queues_a and queues_b and not queues_a & queues_b  # each queue from exactly one worker
    assert summed(ma, mb) == kpis(ref)
    assert len(kpis(ref)) > 100
    for w in (a, b):  # each wallboard says it shows a share
        with urllib.request.urlopen(w.url("/api/wallboard"), timeout=5) as resp:
            assert "this worker's share" in json.loads(resp.read())["scope"]
        with urllib.request.urlopen(w.url("/api/agents"), timeout=5) as resp:
            assert "this worker's share" in json.loads(resp.read())["scope"]
    # the agent view: each agent on exactly one worker, and together they are the reference's
    rows_a, rows_b, rows_ref = agent_rows(a), agent_rows(b), agent_rows(reference)
    assert rows_a and rows_b and not rows_a.keys() & rows_b.keys()
    assert {**rows_a, **rows_b} == rows_ref and len(rows_ref) == 50
    assert {**agent_series(ma), **agent_series(mb)} == agent_series(ref) and len(agent_series(ref)) == 50 * 8

    # one worker is killed: the other takes its partitions, recovers their state, exports all
    a.stop(signal.SIGKILL)
    after = b.wait_settled(lambda m: summed(m) == kpis(ref), timeout=120, what="takeover complete")
    assert {dict(labels)["queue"] for _, labels in kpis(after)} == queues_a | queues_b
    with urllib.request.urlopen(b.url("/api/wallboard"), timeout=5) as resp:
        assert json.loads(resp.read())["scope"].startswith("all queues")
    assert agent_rows(b) == agent_rows(reference)
    assert agent_series(b.scrape()) == agent_series(reference.scrape())
