"""The simulator's traffic is valid: a worker accepts all of it and computes every KPI."""

from __future__ import annotations

import pytest

from tests.integration.support import Env, Worker, metric

pytestmark = pytest.mark.integration


def test_simulated_center_is_accepted_and_kpis_appear(env: Env, workers: list[Worker]):
    workers.append(Worker(env))
    w = workers[0]
    result = env.ccmon(
        "simulate", "--profile", "flat", "--seed", "5", "--backfill", "1800", "--duration", "2", timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "events produced" in result.stderr
    m = w.wait_settled(
        lambda m: (metric(m, "ccmon_events_total", topic=env.topics["calls"], result="accepted") or 0) > 200,
        what="simulated traffic processed",
    )
    for topic in ("calls", "chats", "agents"):
        assert metric(m, "ccmon_events_total", topic=env.topics[topic], result="rejected") == 0
        assert (metric(m, "ccmon_events_total", topic=env.topics[topic], result="accepted") or 0) > 0
    queues = {dict(labels)["queue"] for name, labels in m if name == "ccmon_contacts_offered_total"}
    assert queues == {"sales", "support", "billing"}
    for q, ch in (("sales", "voice"), ("support", "voice"), ("support", "chat")):
        assert metric(m, "ccmon_service_level_ratio", queue=q, channel=ch, window="1h") is not None
        assert (metric(m, "ccmon_aht_seconds", queue=q, channel=ch, window="1h") or 0) > 0
        assert (metric(m, "ccmon_agents_required", queue=q, channel=ch) or 0) >= 1
    assert sum(v for (n, labels), v in m.items() if n == "ccmon_agents") > 0
    assert any(n == "ccmon_csat_ratio" for n, _ in m)


def test_simulator_is_reproducible(env: Env, tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path in (a, b):
        r = env.ccmon(
            "simulate", "--profile", "flat", "--seed", "9", "--backfill", "600", "--output", str(path)
        )
        assert r.returncode == 0, r.stderr
    # identical up to event times and the per-run id tag, which follow the wall clock of each run
    import re

    import orjson

    def strip(path):
        tag = re.compile(rb"-[0-9a-f]{10,}-")
        return [
            {k: v for k, v in orjson.loads(tag.sub(b"-T-", line))["value"].items() if k != "ts"}
            for line in path.read_bytes().splitlines()
        ]

    first, second = strip(a), strip(b)
    assert first == second and len(first) > 50
    tags = {found.group(1) for p in (a, b) if (found := re.search(rb"e-([0-9a-f]+)-", p.read_bytes()))}
    assert len(tags) == 2  # the two runs do not share ids
