"""`ccmon demo` as a newcomer runs it: numbers on the wallboard, then Ctrl-C leaves nothing running."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest

from streams.dev.harness import free_kafka_port, free_port
from streams.dev.net import port_free
from streams.processes import alive
from tests.integration.support import ROOT, run_demo

pytestmark = pytest.mark.integration


def test_demo_starts_shows_numbers_and_ctrl_c_stops_everything(tmp_path):
    data = tmp_path / "demo"
    kafka_port, web_port, prom_port = free_kafka_port(), free_port(), free_port()
    # at the default log level, as `make demo` runs it: the worker's own lines, none of Faust's INFO
    first, output = run_demo(data, kafka_port, web_port, prom_port, CCMON_LOG_LEVEL="info")
    info = [line for line in output.splitlines() if "[INFO]" in line]
    assert not [line for line in info if "[^" in line or "Starting..." in line], info  # Faust's services
    assert "Subscription" not in output and "[ERROR]" not in output and len(info) <= 5, output
    assert f"http://127.0.0.1:{web_port}/wallboard" in output
    assert f"http://127.0.0.1:{web_port}/agents" in output  # the agents page, next to the wallboard
    assert "everything it started is stopped" in output
    assert first < 120
    found = re.search(r"running \(pid (\d+)\)", output)
    assert found, output
    pid = int(found.group(1))
    assert not alive(pid)
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
        result = subprocess.run(
            [sys.executable, "-m", "streams", "demo", "--web-port", str(taken)],
            cwd=ROOT,
            env={**os.environ, "CCMON_DATA_DIR": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"worker port {taken} on 127.0.0.1 already in use" in result.stderr
