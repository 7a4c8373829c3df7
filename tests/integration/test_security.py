"""Security: the worker, the simulator and replay through a SASL_SSL (SCRAM-SHA-512) listener of a
real local broker, a wrong password failing with one clear line, the HTTP bind address, and the
wallboard never interpreting data as markup."""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from pathlib import Path

import pytest

from producers.recording import line
from streams.dev.harness import free_kafka_port, free_port
from streams.dev.kafka_local import LocalKafka
from tests.integration.support import ROOT, Env, Worker, flat_traffic, metric

pytestmark = pytest.mark.integration

USER = "ccmon"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory):
    """A broker of its own with a SASL_SSL listener, and the ccmon user's password in a file."""
    tmp = tmp_path_factory.mktemp("sasl")
    password = uuid.uuid4().hex
    broker = LocalKafka(
        port=free_kafka_port(), sasl_port=free_port(), scram_users=((USER, password),), data_dir=tmp / "kafka"
    )
    broker.start()
    secret = tmp / "kafka-password"
    secret.write_text(password + "\n")
    yield broker, password, secret
    broker.stop()


def sasl_vars(broker: LocalKafka, secret: Path) -> dict[str, str]:
    return {
        "CCMON_BROKER": f"kafka://127.0.0.1:{broker.sasl_port}",
        "CCMON_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "CCMON_KAFKA_USERNAME": USER,
        "CCMON_KAFKA_PASSWORD_FILE": str(secret),
        "CCMON_KAFKA_CA_FILE": str(broker.ca_file),
    }


def test_worker_replay_and_simulator_work_through_sasl_ssl(secured, tmp_path: Path):
    broker, password, secret = secured
    env = Env(broker, tmp_path)
    extra = sasl_vars(broker, secret)
    rec = tmp_path / "rec.jsonl"
    events = [
        {
            "event_id": f"e{i}",
            "type": "offered",
            "contact_id": f"c{i}",
            "queue": "secure",
            "ts": 1_700_000_000_000,
        }
        for i in range(5)
    ]
    rec.write_bytes(b"".join(line(env.topics["calls"], f"c{i}", e) for i, e in enumerate(events)))
    replay = env.ccmon("replay", str(rec), "--quiet", timeout=120, **extra)
    assert replay.returncode == 0, replay.stderr
    worker = Worker(env, **extra)
    try:
        worker.wait_for(
            lambda m: metric(m, "ccmon_contacts_offered_total", queue="secure", channel="voice") == 5,
            what="5 offers through SASL_SSL",
        )
        worker.wait_for(lambda m: metric(m, "ccmon_broker_up") == 1, what="the broker probe through SASL_SSL")
        sim = env.ccmon(*flat_traffic(3, 300, 2, "--duration", "1"), timeout=120, **extra)
        assert sim.returncode == 0, sim.stderr
        worker.wait_for(
            lambda m: sum(v for (n, _), v in m.items() if n == "ccmon_contacts_offered_total") > 5,
            what="simulated contacts through SASL_SSL",
        )
    finally:
        worker.stop()
    for text in (worker.log.read_text(), replay.stderr, sim.stderr):
        assert password not in text


@pytest.mark.parametrize("command", ["worker", "replay", "simulate"])
def test_a_wrong_password_fails_with_one_clear_line(secured, tmp_path: Path, command: str):
    broker, password, _ = secured
    env = Env(broker, tmp_path)
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    rec = tmp_path / "rec.jsonl"
    rec.write_bytes(
        line(
            env.topics["calls"],
            "c1",
            {"event_id": "e1", "type": "offered", "contact_id": "c1", "queue": "q", "ts": 1_700_000_000_000},
        )
    )
    args = {
        "worker": ["worker"],
        "replay": ["replay", str(rec)],
        "simulate": ["simulate", "--backfill", "60", "--duration", "1"],
    }[command]
    result = env.ccmon(*args, timeout=90, **sasl_vars(broker, wrong))
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    lines = [x for x in result.stderr.strip().splitlines() if x.startswith("ccmon")]
    assert lines[-1] == (
        f"ccmon: error: Kafka at 127.0.0.1:{broker.sasl_port} rejected the credentials of user "
        f"'{USER}' (SCRAM-SHA-512): check CCMON_KAFKA_USERNAME and CCMON_KAFKA_PASSWORD "
        f"(or CCMON_KAFKA_PASSWORD_FILE)"
    )
    assert (
        "Traceback" not in result.stderr
        and password not in result.stderr
        and "not-the-password" not in result.stderr
    )


def test_sasl_without_credentials_is_a_configuration_error(secured, tmp_path: Path):
    broker, _, _ = secured
    result = Env(broker, tmp_path).ccmon("worker", CCMON_KAFKA_SECURITY_PROTOCOL="SASL_SSL")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "ccmon: configuration error: CCMON_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs "
        "CCMON_KAFKA_USERNAME and CCMON_KAFKA_PASSWORD (or CCMON_KAFKA_PASSWORD_FILE)"
    )


def test_http_endpoints_bind_to_the_configured_address(env: Env):
    port = free_port()
    import subprocess
    import sys
    import time

    log = env.tmp / "bind.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams", "worker", "--web-port", str(port)],
        env=env.vars(CCMON_WEB_HOST="127.0.0.2"),
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.2:{port}/health", timeout=2) as resp:
                    assert json.loads(resp.read())["broker"] in ("up", "unknown")
                    break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.3)
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_the_wallboard_never_turns_data_into_markup():
    """Both pages and the script they share (pages.js, with the el() they make elements with)."""
    pages = ROOT / "streams" / "wallboard"
    sinks = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function")
    for name in ("wallboard.html", "agents.html", "pages.js"):
        page = (pages / name).read_text()
        for sink in sinks:
            assert sink not in page, (name, sink)
    assert re.search(r"e\.textContent = text", (pages / "pages.js").read_text())
