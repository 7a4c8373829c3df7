"""Integration fixtures: the real local Apache Kafka (one per session) and real worker processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.dev.kafka_local import LocalKafka

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_kafka_port() -> int:
    """A free port whose successor (the local broker's controller listens on port + 1) is free too:
    with several test runs on one machine, a free port's successor is often taken."""
    while True:
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    port = int(os.environ.get("CCMON_TEST_KAFKA_PORT", "29092"))
    broker = LocalKafka(port=port, data_dir=tmp_path_factory.mktemp("kafka"))
    print(broker.start(), file=sys.stderr)
    yield broker
    broker.stop()


@dataclass
class Env:
    """One isolated ccmon deployment on the shared broker: its own topics, group and port."""

    kafka: LocalKafka
    tmp: Path
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}")

    @property
    def topics(self) -> dict[str, str]:
        return {"calls": f"{self.prefix}.calls", "chats": f"{self.prefix}.chats",
                "agents": f"{self.prefix}.agents", "dead": f"{self.prefix}.dead-letter"}

    def vars(self, **extra: str) -> dict[str, str]:
        t = self.topics
        env = {**os.environ, "CCMON_BROKER": f"kafka://{self.kafka.address}", "CCMON_APP_ID": self.prefix,
               "CCMON_CALLS_TOPIC": t["calls"], "CCMON_CHATS_TOPIC": t["chats"], "CCMON_AGENTS_TOPIC": t["agents"],
               "CCMON_DEAD_LETTER_TOPIC": t["dead"], "CCMON_FACTS_TOPIC": f"{self.prefix}.facts",
               "CCMON_PARTITIONS": "4", "CCMON_DATA_DIR": str(self.tmp), "CCMON_SWEEP_INTERVAL_S": "1",
               "CCMON_LOG_LEVEL": "warning", "PYTHONUNBUFFERED": "1"}
        env.update(extra)
        return env

    def ccmon(self, *args: str, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "streams", *args], env=self.vars(**extra), cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)


class Worker:
    def __init__(self, env: Env, ready: bool = True, **extra: str) -> None:
        """Start a worker; with ``ready`` (the default), return once /health says it is ready."""
        self.port = free_port()
        self.log = env.tmp / f"worker-{self.port}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker", "--web-port", str(self.port)],
            env=env.vars(**extra), cwd=ROOT, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        if ready:
            self.wait_ready()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url("/health"), timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"worker not ready in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def scrape(self) -> dict[tuple[str, frozenset], float]:
        with urllib.request.urlopen(self.url("/metrics"), timeout=10) as resp:
            text = resp.read().decode()
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[(s.name, frozenset(s.labels.items()))] = s.value
        return out

    def wait_for(self, predicate, timeout: float = 60, what: str = "") -> dict:
        deadline = time.monotonic() + timeout
        metrics: dict = {}
        while time.monotonic() < deadline:
            metrics = self.scrape()
            if predicate(metrics):
                return metrics
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}; last scrape had {len(metrics)} samples")

    def wait_settled(self, predicate, timeout: float = 60, quiet_s: float = 1.5, what: str = "") -> dict:
        """Wait for ``predicate``, then until the KPI series stop changing for ``quiet_s``
        (stage 2 applies facts a moment after stage 1 counted the inputs)."""
        deadline = time.monotonic() + timeout
        m = self.wait_for(predicate, timeout, what)
        def kpis(m: dict) -> dict:
            return {k: v for k, v in m.items() if k[0].startswith("ccmon_contacts_")}
        stable_since, last = time.monotonic(), kpis(m)
        while time.monotonic() < deadline:
            time.sleep(0.3)
            m = self.scrape()
            if kpis(m) != last or not predicate(m):
                stable_since, last = time.monotonic(), kpis(m)
            elif time.monotonic() - stable_since >= quiet_s:
                return m
        raise AssertionError(f"metrics did not settle while waiting for {what}")

    def rss(self) -> int:
        """Resident memory of the worker process, in bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def env(kafka: LocalKafka, tmp_path: Path) -> Env:
    return Env(kafka, tmp_path)


@pytest.fixture
def workers(env: Env) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for w in started:
        w.stop(signal.SIGKILL)


def metric(m: dict, name: str, **labels: str) -> float | None:
    return m.get((name, frozenset(labels.items())))
