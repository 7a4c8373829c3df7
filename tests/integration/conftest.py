"""Integration fixtures: the real local Apache Kafka (one per session), a deployment of its own per
test, the workers a test started (killed at its end) and a headless Chromium. What tests call
lives in support.py."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.dev.kafka_local import LocalKafka
from tests.integration.support import ARGS, CHROMIUM, Env, Worker


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    port = int(os.environ.get("CCMON_TEST_KAFKA_PORT", "29092"))
    broker = LocalKafka(port=port, data_dir=tmp_path_factory.mktemp("kafka"))
    print(broker.start(), file=sys.stderr)
    yield broker
    broker.stop()


@pytest.fixture
def env(kafka: LocalKafka, tmp_path: Path) -> Env:
    return Env(kafka, tmp_path)


@pytest.fixture
def workers(env: Env) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for w in started:
        w.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()
