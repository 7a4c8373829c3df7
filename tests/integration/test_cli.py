"""The ccmon command as a user meets it: help, bad usage, local Kafka management."""

from __future__ import annotations

import subprocess
import sys

import pytest

from streams.dev.harness import free_kafka_port, free_port
from tests.integration.support import ROOT, Env

pytestmark = pytest.mark.integration


def ccmon(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.mark.parametrize("args", [[], ["kafka"], ["worker"], ["simulate"], ["replay"], ["demo"]])
def test_every_command_explains_itself(args):
    result = ccmon(*args, "--help")
    assert result.returncode == 0 and "usage: ccmon" in result.stdout
    assert len(result.stdout.splitlines()) > 5


@pytest.mark.parametrize(
    "args, needle",
    [
        (["frobnicate"], "invalid choice"),
        (["kafka", "restart"], "invalid choice"),
        (["kafka", "start", "--port", "99999"], "not a TCP port"),
        (["replay"], "the following arguments are required: file"),
        (["replay", "x.jsonl", "--speed", "-2"], "must be greater than 0"),
        (["simulate", "--duration", "soon"], "is not a number"),
    ],
)
def test_bad_usage_is_one_message_and_exit_2(args, needle):
    result = ccmon(*args)
    assert result.returncode == 2
    assert needle in result.stderr and "Traceback" not in result.stderr


def test_bad_configuration_is_one_line(env: Env):
    result = env.ccmon("worker", CCMON_PARTITIONS="many")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip() == "ccmon: configuration error: CCMON_PARTITIONS='many' is not a whole number"
    )


def test_unreachable_broker_and_missing_recording(env: Env, tmp_path):
    port = free_port()
    result = env.ccmon("worker", CCMON_BROKER=f"kafka://127.0.0.1:{port}", timeout=90)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"cannot reach Kafka at 127.0.0.1:{port}" in result.stderr and "ccmon kafka start" in result.stderr
    result = env.ccmon("replay", str(tmp_path / "missing.jsonl"))
    assert result.returncode == 1 and "does not exist" in result.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"topic": "cc.calls", "key": "k", "value": {}}\n{oops\n')
    result = env.ccmon("replay", str(bad))
    assert result.returncode == 1 and f"{bad}:2: not a recording line" in result.stderr


def test_kafka_start_twice_status_stop_and_port_taken(kafka, tmp_path):
    data = str(tmp_path / "k")
    # the session broker's port is taken: a second broker there is refused in one line
    result = ccmon("kafka", "start", "--port", str(kafka.port), "--data-dir", data)
    assert result.returncode == 1 and f"port {kafka.port} on 127.0.0.1 is in use" in result.stderr
    # the session broker itself: start again is harmless, status says running
    same = ccmon("kafka", "start", "--port", str(kafka.port), "--data-dir", str(kafka.data_dir))
    assert same.returncode == 0 and "already running" in same.stdout
    status = ccmon("kafka", "status", "--port", str(kafka.port), "--data-dir", str(kafka.data_dir))
    assert status.returncode == 0 and "running" in status.stdout
    # nothing at an unused data dir: status exits 3, stop is harmless
    assert ccmon("kafka", "status", "--port", "1", "--data-dir", data).returncode == 3
    assert ccmon("kafka", "stop", "--data-dir", data).stdout.strip() == "not running"


def test_kafka_full_cycle_leaves_no_process(tmp_path):
    port = free_kafka_port()
    data = str(tmp_path / "cycle")
    start = ccmon("kafka", "start", "--port", str(port), "--data-dir", data, timeout=120)
    assert start.returncode == 0, start.stderr
    pid = int((tmp_path / "cycle" / "kafka.pid").read_text())
    stop = ccmon("kafka", "stop", "--port", str(port), "--data-dir", data)
    log = tmp_path / "cycle" / "server.log"
    detail = f"start: {start.stdout} {start.stderr}\nstop: {stop.stdout} {stop.stderr}\n" + (
        log.read_text()[-2000:] if log.exists() else "no server.log"
    )
    assert stop.returncode == 0 and f"stopped (pid {pid})" in stop.stdout, detail
    from streams.processes import alive

    assert not alive(pid)  # gone (or a zombie where PID 1 does not reap orphans): not running
    assert (tmp_path / "cycle" / "server.log").exists()


def test_worker_creates_a_missing_data_dir_and_refuses_an_unwritable_one(env: Env, tmp_path):
    from tests.integration.support import Worker

    fresh = tmp_path / "does" / "not" / "exist"
    worker = Worker(env, CCMON_DATA_DIR=str(fresh))
    try:
        assert (fresh / "worker").is_dir()
    finally:
        worker.stop()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = env.ccmon("worker", CCMON_DATA_DIR=str(blocker / "sub"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot create the data directory" in result.stderr


def test_missing_java_or_maven_is_one_clear_line(tmp_path):
    import os
    import shutil

    bindir = tmp_path / "bin"
    bindir.mkdir()
    env = {**os.environ, "PATH": str(bindir), "CCMON_KAFKA_CACHE": str(tmp_path / "cache")}
    result = ccmon("kafka", "start", "--port", str(free_port()), "--data-dir", str(tmp_path / "k"), env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "Java not found" in result.stderr and "apt-get install" in result.stderr
    (bindir / "java").symlink_to(shutil.which("java"))
    result = ccmon("kafka", "start", "--port", str(free_port()), "--data-dir", str(tmp_path / "k"), env=env)
    assert result.returncode == 1 and "Maven (mvn) not found" in result.stderr


def test_replay_speed_follows_recorded_pace(env: Env, tmp_path):
    import time as _time

    from producers.recording import line

    rec = tmp_path / "paced.jsonl"
    now_ms = int(_time.time() * 1000)
    rec.write_bytes(
        b"".join(
            line(
                env.topics["calls"],
                f"p{i}",
                {
                    "event_id": f"p{i}",
                    "type": "offered",
                    "contact_id": f"p{i}",
                    "queue": "q",
                    "ts": now_ms - 4000 + i * 2000,
                },
            )
            for i in range(3)
        )
    )
    started = _time.monotonic()
    fast = env.ccmon("replay", str(rec), "--quiet")
    fast_s = _time.monotonic() - started
    started = _time.monotonic()
    paced = env.ccmon("replay", str(rec), "--speed", "2")
    paced_s = _time.monotonic() - started
    assert fast.returncode == 0 and paced.returncode == 0
    assert "messages" not in fast.stderr and "retrying" not in fast.stderr  # --quiet, and topics were ready
    assert "3 messages from" in paced.stderr
    assert (
        paced_s >= 2.0 > fast_s
    )  # 4 s of recorded time at twice the pace take at least 2 s; unpaced far less
