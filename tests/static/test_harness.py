"""The process harness (streams/dev/harness.py) against real child processes: Python's own
http.server as the service, so no broker is needed and every path (ready, crash, hang, stop,
kill, scrape, RSS) is taken for real."""

from __future__ import annotations

import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from streams.dev.harness import (
    NotReady,
    ProcessExited,
    Service,
    free_kafka_port,
    free_port,
    wait_stable,
    wait_until,
)

METRICS = """\
# HELP ccmon_events_total Events read.
# TYPE ccmon_events_total counter
ccmon_events_total{topic="calls"} 7.0
ccmon_events_total{topic="chats"} 2.0
# HELP ccmon_queue_waiting_contacts Waiting now.
# TYPE ccmon_queue_waiting_contacts gauge
ccmon_queue_waiting_contacts{queue="sales",channel="voice"} 3.0
"""


def http_server(tmp_path: Path) -> Service:
    """python -m http.server serving ``tmp_path``; /metrics is the file ``metrics`` in it."""
    port = free_port()
    return Service(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(tmp_path), str(port)],
        port=port,
        log=tmp_path / "server.log",
        name="http.server",
    )


def python(tmp_path: Path, code: str) -> Service:
    return Service([sys.executable, "-c", code], port=free_port(), log=tmp_path / "child.log", name="child")


def test_ready_scrape_rss_and_sigterm(tmp_path: Path):
    (tmp_path / "metrics").write_text(METRICS)
    server = http_server(tmp_path).start()
    try:
        waited = server.wait_ready(timeout=60, path="/metrics")
        assert waited is not None and waited < 60
        assert server.running
        samples = server.scrape()
        assert samples[("ccmon_events_total", frozenset({("topic", "calls")}))] == 7.0
        assert (
            samples[("ccmon_queue_waiting_contacts", frozenset({("queue", "sales"), ("channel", "voice")}))]
            == 3.0
        )
        assert len(samples) == 3
        assert b"ccmon_events_total" in server.metrics_text()
        assert server.rss() > 1_000_000  # a Python interpreter holds megabytes
    finally:
        code = server.stop()
    assert code == -signal.SIGTERM and not server.running
    assert server.stop() == -signal.SIGTERM  # stopping again only collects the code
    with pytest.raises(ProcessExited):
        server.rss()


def test_wait_metrics_waits_for_the_condition_to_hold(tmp_path: Path):
    (tmp_path / "metrics").write_text(METRICS)
    with http_server(tmp_path) as server:
        server.wait_ready(timeout=60, path="/metrics")
        done = 7.0 + 5

        def total(samples: dict) -> float:
            return sum(v for (name, _), v in samples.items() if name == "ccmon_events_total")

        assert total(server.scrape()) < done
        (tmp_path / "metrics").write_text(METRICS.replace("} 2.0", "} 5.0"))  # what the service does next
        samples = server.wait_metrics(lambda m: total(m) == done, timeout=30, what="12 events")
        assert total(samples) == done
        with pytest.raises(NotReady, match="13 events"):
            server.wait_metrics(lambda m: total(m) == 13, timeout=0.5, what="13 events")
    assert not server.running  # the context manager stopped it


def test_a_process_that_dies_fails_the_wait_at_once_with_its_log(tmp_path: Path):
    child = python(tmp_path, "import sys; print('cannot bind: boom', flush=True); sys.exit(3)").start()
    t0 = time.monotonic()
    with pytest.raises(ProcessExited, match=r"(?s)exited with 3.*cannot bind: boom"):
        child.wait_ready(timeout=60)
    assert time.monotonic() - t0 < 30  # not the deadline: the exit ended the wait


def test_a_process_that_never_answers_times_out_with_its_log(tmp_path: Path):
    child = python(tmp_path, "import time; print('still starting', flush=True); time.sleep(600)").start()
    try:
        with pytest.raises(NotReady, match=r"(?s)child to answer /health.*still starting"):
            child.wait_ready(timeout=1.0)
        assert child.running
    finally:
        assert child.kill() == -signal.SIGKILL


def test_give_up_ends_the_wait_quietly(tmp_path: Path):
    child = python(tmp_path, "import time; time.sleep(600)").start()
    try:
        asked: list[int] = []

        def fourth() -> bool:
            asked.append(1)
            return len(asked) > 3

        assert child.wait_ready(timeout=None, give_up=fourth) is None
        assert len(asked) == 4
    finally:
        child.kill()


def test_stop_kills_a_process_that_ignores_sigterm_after_the_grace(tmp_path: Path):
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('armed', flush=True); "
        "time.sleep(600)"
    )
    child = python(tmp_path, code).start()
    wait_until(lambda: "armed" in child.log_tail(), timeout=60, what="the handler", check=child.check)
    t0 = time.monotonic()
    assert child.stop(grace_s=0.5) == -signal.SIGKILL
    assert time.monotonic() - t0 < 30


def test_wait_exit_returns_the_code_or_times_out(tmp_path: Path):
    assert python(tmp_path, "raise SystemExit(4)").start().wait_exit(timeout=60) == 4
    hanging = python(tmp_path, "import time; time.sleep(600)").start()
    try:
        with pytest.raises(NotReady, match="still running"):
            hanging.wait_exit(timeout=0.2)
    finally:
        hanging.kill()


def test_a_service_starts_once_and_must_be_started_to_be_asked(tmp_path: Path):
    child = python(tmp_path, "pass")
    with pytest.raises(RuntimeError, match="not started"):
        child.check()
    child.start()
    with pytest.raises(RuntimeError, match="started already"):
        child.start()
    child.wait_exit(timeout=60)


def test_wait_until_returns_the_value_and_names_what_timed_out():
    values = iter([None, 0, "", "done"])
    assert wait_until(lambda: next(values), timeout=60, what="x", interval=0.01) == "done"
    with pytest.raises(NotReady, match="the moon"):
        wait_until(lambda: False, timeout=0.05, what="the moon", interval=0.01)

    def dead() -> None:
        raise ProcessExited("gone")

    with pytest.raises(ProcessExited, match="gone"):
        wait_until(lambda: False, timeout=60, what="x", check=dead)


def test_free_ports_are_free_and_the_kafka_one_has_a_free_successor():
    for port in (free_port(), free_kafka_port()):
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
    port = free_kafka_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port + 1))


def test_wait_stable_returns_once_the_value_holds_still_and_is_accepted():
    values = iter([1, 2, 2, 3, 3, 3, 3] + [3] * 10_000)
    looked: list[int] = []

    def look() -> int:
        looked.append(next(values))
        return looked[-1]

    assert wait_stable(look, quiet_s=0.05, timeout=60, what="x", accept=lambda v: v == 3, interval=0.01) == 3
    assert looked[:4] == [1, 2, 2, 3]  # 2 held still but was not accepted
    with pytest.raises(NotReady, match="the count to hold still"):
        ticks = iter(range(10**9))
        wait_stable(lambda: next(ticks), quiet_s=0.05, timeout=0.3, what="the count", interval=0.01)
    # the key decides what must hold still: here only the parity
    ticks2 = iter(range(0, 10**9, 2))
    assert (
        wait_stable(
            lambda: next(ticks2), quiet_s=0.05, timeout=60, what="parity", key=lambda v: v % 2, interval=0.01
        )
        % 2
        == 0
    )
