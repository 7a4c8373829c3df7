"""`ccmon demo` as a newcomer runs it: numbers on the wallboard, then Ctrl-C leaves nothing running."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.dev.kafka_local import _alive
from streams.dev.net import port_free
from tests.integration.conftest import ROOT, free_kafka_port, free_port

pytestmark = pytest.mark.integration


def run_demo(data: Path, kafka_port: int, web_port: int, prom_port: int,
             ccmon: tuple[str, ...] = (sys.executable, "-m", "streams"), cwd: Path = ROOT,
             **extra_env: str) -> tuple[float, str]:
    """Runs ``ccmon demo`` until its first wallboard numbers, then Ctrl-C; its output."""
    env = {**os.environ, "CCMON_DATA_DIR": str(data), "CCMON_LOG_LEVEL": "warning", **extra_env}
    proc = subprocess.Popen([*ccmon, "demo", "--kafka-port", str(kafka_port), "--web-port",
                             str(web_port), "--prometheus-port", str(prom_port), "--backfill", "600"],
                            cwd=cwd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    output = ""
    deadline = time.monotonic() + 180
    try:
        while "Ctrl-C stops everything" not in output:
            assert time.monotonic() < deadline and proc.poll() is None, output[-3000:]
            ready, _, _ = select.select([proc.stderr], [], [], 1.0)
            if ready:
                output += proc.stderr.readline()
        first = float(re.search(r"first numbers on the wallboard after ([\d.]+) s", output).group(1))
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=120)
        output += rest
        assert proc.returncode == 0, output[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    return first, output


def test_demo_starts_shows_numbers_and_ctrl_c_stops_everything(tmp_path):
    data = tmp_path / "demo"
    kafka_port, web_port, prom_port = free_kafka_port(), free_port(), free_port()
    first, output = run_demo(data, kafka_port, web_port, prom_port)
    assert f"http://127.0.0.1:{web_port}/wallboard" in output
    assert f"http://127.0.0.1:{web_port}/agents" in output  # the agents page, next to the wallboard
    assert "everything it started is stopped" in output
    assert first < 120
    pid = int(re.search(r"running \(pid (\d+)\)", output).group(1))
    assert not _alive(pid)
    for port in (kafka_port, kafka_port + 1, web_port, prom_port):
        assert port_free(port), f"port {port} still in use after Ctrl-C"
    # a second demo after that works (Kafka's data dir and topics are reused)
    first_again, output = run_demo(data, kafka_port, web_port, prom_port)
    assert "first numbers on the wallboard" in output and "already in use" not in output
    print(f"demo: first numbers after {first:.1f} s (cold), {first_again:.1f} s (second run)")


def test_demo_says_which_port_is_taken(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "streams", "demo", "--web-port", str(taken)], cwd=ROOT,
                                env={**os.environ, "CCMON_DATA_DIR": str(tmp_path)}, capture_output=True, text=True,
                                timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"worker port {taken} on 127.0.0.1 already in use" in result.stderr
