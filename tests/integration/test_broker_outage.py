"""The broker stops for 30 s in the middle of a replay and starts again: the worker and the producer
recover by themselves, nothing is lost, and the outage shows on /health, ``ccmon_broker_up`` (and
the CcmonBrokerUnreachable alert's expression in a real Prometheus) and in one log line each way."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from streams.dev.harness import free_kafka_port
from streams.dev.kafka_local import LocalKafka
from tests.integration.support import (
    ROOT,
    Env,
    Worker,
    kpis,
    metric,
    prom_query,
    record_flat,
    reference_worker,
    start_prometheus,
    total_events,
)

pytestmark = pytest.mark.integration

RULES = ROOT / "streams" / "resources" / "prometheus" / "rules"
OUTAGE_S = 30


def health(worker: Worker) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(worker.url("/health"), timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def alert_expr(name: str) -> str:
    for group in yaml.safe_load((RULES / "ccmon.yml").read_text())["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                return rule["expr"]
    raise KeyError(name)


def test_broker_outage_mid_stream_loses_nothing_and_is_reported_once(tmp_path: Path):
    broker = LocalKafka(port=free_kafka_port(), data_dir=tmp_path / "kafka")
    broker.start()
    env = Env(broker, tmp_path)
    recording = tmp_path / "sim.jsonl"
    lines = len(record_flat(env, recording, 21, 1800, 3))
    assert lines > 2000

    worker = Worker(env, CCMON_BROKER_PROBE_S="1")
    prom, prom_port = start_prometheus(tmp_path, worker.port)
    unreachable = alert_expr("CcmonBrokerUnreachable")

    def query(expr: str) -> list:
        return prom_query(prom_port, expr)["data"]["result"]

    # the whole recording paced over ~60 s, so the outage falls in the middle of it
    replay = subprocess.Popen(
        [sys.executable, "-m", "streams", "replay", str(recording), "--speed", "30"],
        cwd=ROOT,
        env=env.vars(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        worker.wait_for(lambda m: total_events(m) > 200, what="traffic before the outage")
        assert query(unreachable) == []
        broker.stop()
        down_at = time.monotonic()
        while True:  # the worker notices and says so
            status, body = health(worker)
            if status == 503 and body["broker"] == "down":
                break
            assert time.monotonic() - down_at < 15, (status, body)
            time.sleep(0.5)
        worker.wait_for(lambda m: metric(m, "ccmon_broker_up") == 0, timeout=10, what="ccmon_broker_up 0")
        while not query(unreachable):  # Prometheus sees it through the alert's own expression
            assert time.monotonic() - down_at < OUTAGE_S, "the alert expression never saw the outage"
            time.sleep(1)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        assert replay.poll() is None, (
            f"the producer gave up during the outage: {replay.communicate()[1][-2000:]}"
        )
        broker.start()
        _, err = replay.communicate(timeout=180)
        assert replay.returncode == 0, err[-3000:]
        m = worker.wait_settled(
            lambda m: total_events(m) == lines and metric(m, "ccmon_broker_up") == 1,
            timeout=180,
            what="every event after the outage",
        )
        assert health(worker)[0] == 200
        deadline = time.monotonic() + 15
        while query(unreachable) and time.monotonic() < deadline:
            time.sleep(1)
        assert query(unreachable) == []

        # nothing lost, nothing doubled: an independent worker that never saw an outage agrees
        reference = reference_worker(env)
        try:
            ref = reference.wait_settled(
                lambda r: total_events(r) == lines, timeout=180, what="the reference run"
            )
            assert kpis(m) == kpis(ref)
            assert len(kpis(m)) > 100
            for result in ("accepted", "duplicate", "rejected", "late"):
                assert sum(
                    v for (n, lab), v in m.items() if n == "ccmon_events_total" and ("result", result) in lab
                ) == sum(
                    v
                    for (n, lab), v in ref.items()
                    if n == "ccmon_events_total" and ("result", result) in lab
                )
        finally:
            reference.stop()
    finally:
        prom.terminate()
        prom.wait(timeout=30)
        worker.stop()
        if replay.poll() is None:
            replay.kill()
        broker.stop()

    log = worker.log.read_text()
    assert log.count(f"broker {broker.address} unreachable") == 1, log[-4000:]
    assert log.count(f"broker {broker.address} reachable again after") == 1, log[-4000:]
    assert "Traceback" not in log, log[-4000:]
    # from the stop to the restart: those two lines (and a stray line or two), not a line per retry
    m_down = next(i for i, x in enumerate(log.splitlines()) if f"broker {broker.address} unreachable" in x)
    m_up = next(i for i, x in enumerate(log.splitlines()) if "reachable again after" in x)
    noise = [x for x in log.splitlines()[m_up - 30 : m_up + 1] if "ERROR" in x or "WARNING" in x]
    assert m_up - m_down <= 3 and len(noise) <= 6, "\n".join(log.splitlines()[m_down - 20 : m_up + 3])
