"""Whether the worker can reach the broker: one log line per change, a gauge, and /health.

During an outage aiokafka and Faust retry on their own and log every failed attempt (often
with a traceback); an on-call engineer needs one line saying the broker went away, and one
saying it came back and how long it was gone. ``BrokerWatch`` probes with a metadata request on a
timer, logs transitions only, and :class:`RetryNoise` turns the libraries' per-retry errors into
debug records while the broker is known to be unreachable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("ccmon.broker")

#: loggers whose warnings and errors during an outage are retries of the same failure
RETRYING_LOGGERS = ("aiokafka", "faust.transport", "faust.tables", "faust.app", "mode", "faust.sensors")
#: aiokafka's messages about a connection attempt that failed and will be retried: hundreds a
#: second when the broker goes away, before any probe can notice. Counted, not printed.
RETRY_MESSAGES = (
    "Unable connect to node",
    "Unable to update metadata",
    "Unable to request metadata",
    "Failed fetch messages",
    "Group Coordinator Request failed",
    "Marking the coordinator dead",
    "Heartbeat",
    "Got error produce response",
    "NodeNotReadyError",
    "KafkaConnectionError",
    "Connection at",
    "Coordinator",
    "coordinator",
    "not found in cluster metadata",  # a topic just created, its metadata not yet everywhere
)


class BrokerWatch(Collector):
    def __init__(
        self,
        address: str,
        probe: Callable[[], Awaitable[bool]],
        timeout_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.address = address
        self._probe = probe
        self._timeout_s = timeout_s
        self._clock = clock
        self.up: bool | None = None  #: None until the first probe
        self.since = clock()
        self.outages = 0
        self.retries = 0  #: client retry messages kept out of the log

    async def check(self) -> bool:
        try:
            ok = bool(await asyncio.wait_for(self._probe(), self._timeout_s))
            reason = ""
        except Exception as exc:  # any failure to get an answer is "unreachable"
            ok, reason = False, f" ({type(exc).__name__}: {exc})" if str(exc) else f" ({type(exc).__name__})"
        if ok != self.up:
            self._change(ok, reason)
        return ok

    def _change(self, ok: bool, reason: str) -> None:
        now = self._clock()
        if ok and self.up is False:
            log.warning(
                "broker %s reachable again after %.1f s unreachable; consuming resumes from the "
                "committed offsets, nothing was lost",
                self.address,
                now - self.since,
            )
        elif ok:
            log.info("broker %s reachable", self.address)
        else:
            self.outages += 1
            log.error(
                "broker %s unreachable%s; retrying every few seconds, /health answers 503 until it is back",
                self.address,
                reason or " (no answer to a metadata request)",
            )
        self.up, self.since = ok, now

    def describe(self) -> Iterable:
        return []

    def collect(self) -> Iterator:
        if self.up is None:  # not probed yet: unknown is no sample, not 0
            return
        up = GaugeMetricFamily("ccmon_broker_up", "1 while the worker gets answers from the Kafka broker")
        up.add_metric([], 1.0 if self.up else 0.0)
        yield up
        since = GaugeMetricFamily(
            "ccmon_broker_state_since_seconds", "Unix time of the last change of ccmon_broker_up"
        )
        since.add_metric([], self.since)
        yield since
        outages = CounterMetricFamily("ccmon_broker_outages", "Times the broker became unreachable")
        outages.add_metric([], self.outages)
        yield outages
        retries = CounterMetricFamily(
            "ccmon_kafka_client_retries", "Kafka client retry messages kept out of the log"
        )
        retries.add_metric([], self.retries)
        yield retries


class RetryNoise(logging.Filter):
    """Keeps the client libraries' retries out of the log: aiokafka's connection-retry messages
    always (the probe reports a lasting failure within ``CCMON_BROKER_PROBE_S``), and every
    library warning or error while the broker is known to be unreachable."""

    def __init__(self, watch: BrokerWatch) -> None:
        super().__init__()
        self._watch = watch

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(RETRYING_LOGGERS):
            return True
        if self._watch.up is False or (
            record.name.startswith("aiokafka") and any(m in record.getMessage() for m in RETRY_MESSAGES)
        ):
            self._watch.retries += 1
            return False
        return True
