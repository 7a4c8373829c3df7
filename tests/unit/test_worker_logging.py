"""The worker's Faust ``Worker`` leaves the root logger at the configured level: with Faust's
start-up spinner it is set to DEBUG, and every library's debug call (aiokafka's producer: one per
message sent) builds a record that the handlers then drop (docs/performance-history.md, p99 at 10,000 /s)."""

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


@pytest.fixture
def library_levels() -> Iterator[None]:
    from streams.cli.main import LIBRARY_LOGGERS

    levels = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_at_info_the_worker_shows_its_own_lines_and_only_the_libraries_warnings(
    root_logger: logging.Logger, library_levels: None
) -> None:
    """``make demo`` printed ~100 of Faust's INFO lines ("Starting...", subscription tables) at the
    default level: at info they are the libraries' and stay out; ccmon's own info lines stay in."""
    worker = faust_worker(faust.App("ccmon-logging-info", broker="kafka://127.0.0.1:1"), "info")
    worker._setup_logging()
    assert root_logger.level == logging.INFO
    assert logging.getLogger("streams.worker.app").isEnabledFor(logging.INFO)
    for name in ("faust.worker", "mode.services", "aiokafka.consumer.group_coordinator"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
        assert logging.getLogger(name).isEnabledFor(logging.WARNING), name


def test_at_debug_every_line_is_shown(root_logger: logging.Logger, library_levels: None) -> None:
    worker = faust_worker(faust.App("ccmon-logging-debug", broker="kafka://127.0.0.1:1"), "debug")
    worker._setup_logging()
    assert logging.getLogger("faust.worker").isEnabledFor(logging.DEBUG)
