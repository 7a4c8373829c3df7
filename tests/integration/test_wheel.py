"""The wheel is the whole product: built from a clean checkout, installed into a fresh venv, and run
from outside any source tree, ccmon resolves and starts Kafka from its packaged pom, serves
/metrics and the wallboard, and runs the demo (with its packaged Prometheus rules)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from streams.dev.harness import free_kafka_port, free_port
from tests.integration.support import clean_checkout, run_demo

pytestmark = pytest.mark.integration


def run(*cmd: str | Path | int, cwd: Path, env: dict | None = None, timeout: float = 600) -> str:
    done = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{cmd}: {done.stdout}{done.stderr}"
    return done.stdout + done.stderr


def build_wheel(src: Path, dist: Path, env: dict | None = None) -> Path:
    """``pip wheel`` of the checkout ``src`` (no dependencies) into ``dist``: the one wheel made."""
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", dist, ".", cwd=src, env=env)
    (wheel,) = dist.glob("ccmon-*.whl")
    return wheel


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read()


def test_installed_wheel_runs_kafka_worker_and_demo_outside_the_source_tree(tmp_path: Path):
    src = clean_checkout(tmp_path / "src")
    wheel = build_wheel(src, tmp_path / "dist")
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "streams/resources/kafka/pom.xml",
        "streams/resources/prometheus/prometheus.yml",
        "streams/resources/prometheus/rules/ccmon.yml",
        "streams/resources/prometheus/rules/ccmon-thresholds.yml",
        "streams/wallboard/wallboard.html",
        "streams/wallboard/agents.html",
        "streams/wallboard/pages.js",
        "streams/wallboard/pages.css",
        "producers/scenarios/default.toml",
    } <= names, sorted(names)
    # the source goes away: nothing can be read from it any more
    subprocess.run(["rm", "-rf", str(src)], check=True)

    home = tmp_path / "user"
    home.mkdir()
    run(sys.executable, "-m", "venv", tmp_path / "venv", cwd=home)
    run(tmp_path / "venv/bin/pip", "install", "-q", "--disable-pip-version-check", wheel, cwd=home)
    ccmon = tmp_path / "venv/bin/ccmon"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CCMON_", "PYTHON", "VIRTUAL_ENV"))}
    # a cache of its own: the packaged pom must resolve Kafka (Maven's local repository makes it quick)
    env.update(
        CCMON_KAFKA_CACHE=str(tmp_path / "cache"),
        CCMON_DATA_DIR=str(home / "data"),
        CCMON_LOG_LEVEL="warning",
    )
    where = run(
        tmp_path / "venv/bin/python", "-c", "import streams; print(streams.__file__)", cwd=home, env=env
    )
    assert where.startswith(str(tmp_path / "venv")), where

    port = free_kafka_port()
    kafka_dir = home / "kafka"
    started = run(ccmon, "kafka", "start", "--port", port, "--data-dir", kafka_dir, cwd=home, env=env)
    print(f"ccmon kafka start: {started.strip()}")
    assert "resolved" in started and "running" in started
    web = free_port()
    worker_env = {**env, "CCMON_BROKER": f"kafka://127.0.0.1:{port}", "CCMON_WEB_PORT": str(web)}
    worker = subprocess.Popen(
        [str(ccmon), "worker"],
        cwd=home,
        env=worker_env,
        stdout=(home / "worker.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline, metrics = time.monotonic() + 120, b""
        while b"ccmon_broker_up 1.0" not in metrics:
            assert time.monotonic() < deadline and worker.poll() is None, (home / "worker.log").read_text()[
                -3000:
            ]
            try:
                metrics = get(f"http://127.0.0.1:{web}/metrics")
            except OSError:
                time.sleep(0.5)
        assert b"<title>" in get(f"http://127.0.0.1:{web}/wallboard")
        print(f"ccmon worker: /metrics {len(metrics)} bytes with ccmon_broker_up 1.0; /wallboard served")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    assert worker.returncode == 0, (home / "worker.log").read_text()[-3000:]
    stopped = run(ccmon, "kafka", "stop", "--port", port, "--data-dir", kafka_dir, cwd=home, env=env)
    print(f"ccmon kafka stop: {stopped.strip()}")
    assert "stopped" in stopped

    first, output = run_demo(
        home / "demo",
        free_kafka_port(),
        free_port(),
        free_port(),
        ccmon=(str(ccmon),),
        cwd=home,
        **{k: v for k, v in env.items() if k.startswith("CCMON_KAFKA")},
    )
    print(f"ccmon demo: first numbers on the wallboard after {first:.1f} s")
    assert "everything it started is stopped" in output
    rules = sorted(p.name for p in (home / "demo").glob("demo-rules-*.yml"))
    assert rules == ["demo-rules-ccmon-thresholds.yml", "demo-rules-ccmon.yml"]


def test_compiled_wheel_runs_the_core_as_extension_modules(tmp_path: Path):
    """``CCMON_COMPILE_CORE=1`` (the image's build, deploy/Dockerfile) puts every module of the pure
    core in the wheel compiled by mypyc, beside its source, and the installed package runs them."""
    src = clean_checkout(tmp_path / "src")
    env = {**os.environ, "CCMON_COMPILE_CORE": "1"}
    wheel = build_wheel(src, tmp_path / "dist", env)
    assert "-cp3" in wheel.name and "none-any" not in wheel.name, wheel.name  # a platform wheel
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    core = sorted(p.stem for p in (src / "streams" / "core").glob("*.py"))
    compiled = sorted(
        n.split("/")[-1].split(".")[0] for n in names if n.startswith("streams/core/") and n.endswith(".so")
    )
    assert compiled == core and all(f"streams/core/{m}.py" in names for m in core), (compiled, core)
    assert not any(
        n.startswith(("streams/", "producers/")) and n.endswith(".so") and "/core/" not in n for n in names
    )

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    run(venv / "bin/pip", "install", "-q", "--disable-pip-version-check", wheel, cwd=tmp_path)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CCMON_", "PYTHON", "VIRTUAL_ENV"))}
    where = run(
        venv / "bin/python",
        "-c",
        "import streams.core.intake as m, streams.worker.app; print(m.__file__)",
        cwd=tmp_path,
        env=clean,
    )
    assert where.strip().startswith(str(venv)) and where.strip().endswith(".so"), where
