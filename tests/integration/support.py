"""What the integration tests share: one isolated deployment on the session's broker (``Env``), a
worker process on it (``Worker``, the process harness with the test's own waits), and the helpers
more than one test file reads their scrapes with. Tests import from here, never from each other."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import yaml
from aiokafka import AIOKafkaConsumer

from streams.core.queues import COUNTERS
from streams.dev.harness import Samples, Service, free_port, wait_stable
from streams.dev.kafka_local import LocalCluster, LocalKafka

ROOT = Path(__file__).resolve().parents[2]
#: CCMON_PARTITIONS of every test deployment (Env.vars)
PARTITIONS = 4


@dataclass
class Env:
    """One isolated ccmon deployment on the shared broker (or a cluster): its own topics, group
    and port."""

    kafka: LocalKafka | LocalCluster
    tmp: Path
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}")

    @property
    def topics(self) -> dict[str, str]:
        return {
            "calls": f"{self.prefix}.calls",
            "chats": f"{self.prefix}.chats",
            "agents": f"{self.prefix}.agents",
            "dead": f"{self.prefix}.dead-letter",
        }

    def vars(self, **extra: str) -> dict[str, str]:
        t = self.topics
        env = {
            **os.environ,
            "CCMON_BROKER": ";".join(f"kafka://{a}" for a in self.kafka.address.split(",")),
            "CCMON_APP_ID": self.prefix,
            "CCMON_CALLS_TOPIC": t["calls"],
            "CCMON_CHATS_TOPIC": t["chats"],
            "CCMON_AGENTS_TOPIC": t["agents"],
            "CCMON_DEAD_LETTER_TOPIC": t["dead"],
            "CCMON_FACTS_TOPIC": f"{self.prefix}.facts",
            "CCMON_PARTITIONS": str(PARTITIONS),
            "CCMON_DATA_DIR": str(self.tmp),
            "CCMON_SWEEP_INTERVAL_S": "1",
            # the recordings have fixed event times in the past (never the current hour), whose age
            # grows with the calendar: a century keeps them in, and still rejects year 1
            "CCMON_MAX_EVENT_AGE_S": str(100 * 365 * 86400),
            "CCMON_LOG_LEVEL": os.environ.get("CCMON_TEST_LOG_LEVEL", "warning"),
            "PYTHONUNBUFFERED": "1",
        }
        env.update(extra)
        return env

    def ccmon(self, *args: str, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "streams", *args],
            env=self.vars(**extra),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def start_prometheus(
    tmp_path: Path, target_port: int, rule_files: Sequence[Path] = (), scrape_configs: Sequence[dict] = ()
) -> tuple[subprocess.Popen, int]:
    """A real Prometheus scraping ``127.0.0.1:target_port`` (or as ``scrape_configs`` say) and
    evaluating ``rule_files`` every second, its config and TSDB under ``tmp_path``; the process (the
    caller stops it) and its port."""
    port = free_port()
    config: dict = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}}
    if rule_files:
        config["rule_files"] = [str(f) for f in rule_files]
    config["scrape_configs"] = list(scrape_configs) or [
        {"job_name": "ccmon", "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}
    ]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prom = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return prom, port


def prom_query(port: int, expr: str) -> dict:
    """The body of Prometheus' instant query API for ``expr`` (raises on HTTP errors)."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def flat_traffic(seed: int, backfill: int, rate: float, *more: str) -> list[str]:
    """``ccmon simulate`` arguments for traffic that does not hang on the hour (the flat profile)."""
    return [
        "simulate",
        "--profile",
        "flat",
        "--seed",
        str(seed),
        "--backfill",
        str(backfill),
        "--rate",
        str(rate),
        *more,
    ]


def record_flat(env: Env, path: Path, seed: int, backfill: int, rate: float, *more: str) -> list[bytes]:
    """Flat traffic recorded to ``path`` (``ccmon simulate --output``); its lines, ends kept."""
    made = env.ccmon(*flat_traffic(seed, backfill, rate, *more, "--output", str(path)))
    assert made.returncode == 0, made.stderr
    return path.read_bytes().splitlines(keepends=True)


class Worker(Service):
    """``ccmon worker`` on ``env`` with its own web port and log file (``log``), started at once."""

    log: Path  # always written to a file, for the failure messages

    def __init__(self, env: Env, **extra: str) -> None:
        """Start a worker and return once /health says it is ready (``Worker.launched`` does not wait)."""
        self._launch(env, extra)
        self.wait_ready()

    @classmethod
    def launched(cls, env: Env, **extra: str) -> Worker:
        """Start a worker and return at once: for one that is meant to die on its way up (a kill
        point), or several whose readiness is awaited together."""
        worker = cls.__new__(cls)
        worker._launch(env, extra)
        return worker

    def _launch(self, env: Env, extra: dict[str, str]) -> None:
        port = free_port()
        log = env.tmp / f"worker-{port}.log"
        super().__init__(
            [sys.executable, "-m", "streams", "worker", "--web-port", str(port)],
            port=port,
            env=env.vars(**extra),
            log=log,
            cwd=ROOT,
            name=f"worker :{port}",
        )
        self.log = log
        self.start()

    def wait_for(self, predicate: Callable[[Samples], bool], timeout: float = 60, what: str = "") -> Samples:
        return self.wait_metrics(predicate, timeout, what or "a condition on /metrics")

    def wait_settled(
        self, predicate: Callable[[Samples], bool], timeout: float = 60, quiet_s: float = 1.5, what: str = ""
    ) -> Samples:
        """Wait for ``predicate``, then until the KPI series stop changing for ``quiet_s``
        (stage 2 applies facts a moment after stage 1 counted the inputs)."""
        deadline = time.monotonic() + timeout
        self.wait_for(predicate, timeout, what)

        def contacts(m: Samples) -> Samples:
            return {k: v for k, v in m.items() if k[0].startswith("ccmon_contacts_")}

        return wait_stable(
            self.scrape,
            quiet_s=quiet_s,
            timeout=max(0.0, deadline - time.monotonic()),
            what=f"the KPI series after {what}",
            key=contacts,
            accept=predicate,
            check=self.check,
            interval=0.3,
        )


def metric(m: Samples, name: str, **labels: str) -> float | None:
    """The sample ``name{labels}`` of a scrape, None when it is not exported."""
    return m.get((name, frozenset(labels.items())))


def exported(m: Samples, name: str, **labels: str) -> float:
    """The sample ``name{labels}``, which must be exported."""
    value = metric(m, name, **labels)
    assert value is not None, f"{name}{labels} is not exported"
    return value


def replay_lines(env: Env, lines: list[bytes], path: Path) -> None:
    """Recorded lines written to ``path`` and sent with ``ccmon replay`` (the broker acknowledged
    every one when it returns)."""
    path.write_bytes(b"".join(lines))
    done = env.ccmon("replay", str(path), "--quiet", timeout=300)
    assert done.returncode == 0, done.stderr


async def dead_letters(env: Env, n: int, timeout: float) -> list[dict]:
    """The first ``n`` dead letters of the run's dead-letter topic, decoded (fewer when ``timeout``
    seconds pass first: the caller's count assertion says so); big records (a letter keeps up to
    its input's 1 MiB) fit one fetch."""
    consumer = AIOKafkaConsumer(
        env.topics["dead"],
        bootstrap_servers=env.kafka.address,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=1000, max_records=20000)).values():
                out += [orjson.loads(r.value) for r in records]
    finally:
        await consumer.stop()
    return out


def reference_worker(env: Env, **extra: str) -> Worker:
    """A worker in a consumer group of its own, with its own facts topic: it reads the same input
    as the workers under test and shares no state with them, so its series are the truth."""
    return Worker(env, CCMON_APP_ID=f"{env.prefix}-ref", CCMON_FACTS_TOPIC=f"{env.prefix}.ref-facts", **extra)


#: name prefixes of the process metrics: they describe this process, not the state (SPEC §4)
PROCESS_METRICS = (
    "ccmon_events",
    "ccmon_event_lag",
    "ccmon_pipeline_delay",
    "ccmon_dead_letters",
    "ccmon_broker",
    "ccmon_consumer_lag",
    "ccmon_kafka_client",
    "ccmon_state_records",
)


#: series computed from state and the clock, which move between two scrapes: the oldest wait,
#: per-agent state seconds, and the prediction (EWT, projected service level, time to breach: the
#: windows they read slide and the waiting contacts age)
CLOCK_SERIES = (
    "ccmon_queue_oldest",
    "ccmon_agent_state_seconds",
    "ccmon_ewt_seconds",
    "ccmon_service_level_projected",
    "ccmon_service_level_breach",
    "ccmon_abandons_unrecovered_oldest",
)


def state_series(m: dict) -> dict:
    """Everything computed from state: all ccmon series but the process metrics and those that
    move with the clock between two scrapes (CLOCK_SERIES)."""
    return {
        k: v
        for k, v in m.items()
        if k[0].startswith("ccmon_") and not k[0].startswith((*PROCESS_METRICS, *CLOCK_SERIES))
    }


def stream_lags(m: dict) -> dict[str, float]:
    """topic/partition → lag in messages, of the stream partitions (not the changelogs its recovery
    reads: their lag is 0 long before it has processed anything)."""
    return {
        f"{dict(labels)['topic']}/{dict(labels).get('partition', '?')}": v
        for (name, labels), v in m.items()
        if name == "ccmon_consumer_lag_messages"
        and not dict(labels)["topic"].endswith("-changelog")
        and "__assignor" not in dict(labels)["topic"]
    }


def caught_up(m: dict) -> bool:
    """The worker has read its stream partitions to the end."""
    lags = stream_lags(m)
    return bool(lags) and sum(lags.values()) == 0


KPI_PREFIXES = ("ccmon_contacts_", "ccmon_wait_seconds", "ccmon_handle_seconds", "ccmon_queue_waiting")


def kpis(m: dict) -> dict:
    return {k: v for k, v in m.items() if k[0].startswith(KPI_PREFIXES)}


def total_events(*scrapes: dict) -> float:
    return sum(v for m in scrapes for (n, _), v in m.items() if n == "ccmon_events_total")


def queues_of(m: dict) -> set[str]:
    return {q for _, labels in state_series(m) if (q := dict(labels).get("queue")) is not None}


def agents_of(m: dict) -> set[str]:
    """Agents with per-agent series (CCMON_AGENT_METRICS): on the facts partition of their id."""
    return {
        a
        for name, labels in state_series(m)
        if name.startswith("ccmon_agent_") and (a := dict(labels).get("agent")) is not None
    }


def summed(scrapes: list[dict]) -> dict:
    """The workers' state series added up."""
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
    if (
        not all(shares)
        or sum(map(len, shares)) != PARTITIONS
        or set().union(*shares) != set(range(PARTITIONS))
    ):
        return f"partitions not shared out yet: {shares}"
    scrapes = [w.scrape() for w in workers]
    seen: dict[tuple[str, str], int] = {}
    for i, m in enumerate(scrapes):
        for what, names in (("queue", queues_of(m)), ("agent", agents_of(m))):
            for name in names:
                if (what, name) in seen:
                    return f"{what} {name!r} exported by workers {seen[what, name]} and {i}"
                seen[what, name] = i
    total = summed(scrapes)
    if total != ref:
        diff = sorted(
            (k[0], sorted(k[1]), total.get(k), ref.get(k))
            for k in set(total) | set(ref)
            if total.get(k) != ref.get(k)
        )
        return f"{len(diff)} series differ from the reference (sum, reference), e.g. {diff[:4]}"
    return None


SALES = {"queue": "sales", "channel": "voice"}


def counters(m: dict, labels: dict) -> dict:
    return {n: metric(m, f"ccmon_contacts_{n}_total", **labels) for n in COUNTERS}


def summary_events(stdout: str) -> int:
    found = re.search(r"; (\d+) events produced, all acknowledged", stdout)
    assert found, stdout
    return int(found.group(1))


def accepted(m: dict, env: Env) -> float:
    return sum(
        v
        for (n, labels), v in m.items()
        if n == "ccmon_events_total" and dict(labels)["result"] in ("accepted",)
    )


def run_demo(
    data: Path,
    kafka_port: int,
    web_port: int,
    prom_port: int,
    ccmon: tuple[str, ...] = (sys.executable, "-m", "streams"),
    cwd: Path = ROOT,
    **extra_env: str,
) -> tuple[float, str]:
    """Runs ``ccmon demo`` until its first wallboard numbers, then Ctrl-C; its output."""
    env = {
        **os.environ,
        "CCMON_DATA_DIR": str(data),
        "CCMON_LOG_LEVEL": os.environ.get("CCMON_TEST_LOG_LEVEL", "warning"),
        **extra_env,
    }
    proc = subprocess.Popen(
        [
            *ccmon,
            "demo",
            "--kafka-port",
            str(kafka_port),
            "--web-port",
            str(web_port),
            "--prometheus-port",
            str(prom_port),
            "--backfill",
            "600",
        ],
        cwd=cwd,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    output = ""
    deadline = time.monotonic() + 180
    try:
        while "Ctrl-C stops everything" not in output:
            assert time.monotonic() < deadline and proc.poll() is None, output[-3000:]
            ready, _, _ = select.select([proc.stderr], [], [], 1.0)
            if ready:
                output += proc.stderr.readline()
        found = re.search(r"first numbers on the wallboard after ([\d.]+) s", output)
        assert found, output[-3000:]
        first = float(found.group(1))
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=120)
        output += rest
        assert proc.returncode == 0, output[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    return first, output


def clean_checkout(dest: Path) -> Path:
    """The files git tracks, as they are in the working tree: a fresh clone of HEAD when the tree
    is committed (as in CI), and the edits under test when it is not. Nothing untracked or
    ignored (.venv, caches, artifacts) comes along."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


ARTIFACTS = ROOT / "artifacts"


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
