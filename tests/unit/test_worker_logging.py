"""The worker's Faust ``Worker`` leaves the root logger at the configured level: with Faust's
start-up spinner it is set to DEBUG, and every library's debug call (aiokafka's producer: one per
message sent) builds a record that the handlers then drop (docs/performance.md, p99 at 10,000 /s)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import faust
import pytest

from streams.cli.main import faust_worker


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield root
    root.setLevel(level)
    root.handlers[:] = handlers


@pytest.mark.parametrize("level", ["warning", "error"])
def test_the_root_logger_keeps_the_configured_level(root_logger: logging.Logger, level: str) -> None:
    worker = faust_worker(faust.App("ccmon-logging-test", broker="kafka://127.0.0.1:1"), level)
    worker._setup_logging()  # what the worker does on start (mode.Worker, before the services)
    assert root_logger.level == logging.getLevelName(level.upper())
    assert not logging.getLogger("aiokafka.producer.producer").isEnabledFor(logging.DEBUG)


def test_faust_would_set_it_to_debug_with_its_spinner(root_logger: logging.Logger) -> None:
    """The control: without ``faust_worker`` the same set-up lowers the root logger to DEBUG, so
    the test above can fail."""
    worker = faust.Worker(
        faust.App("ccmon-logging-control", broker="kafka://127.0.0.1:1"), loglevel="WARNING", quiet=True
    )
    worker._setup_logging()
    assert root_logger.level == logging.DEBUG
