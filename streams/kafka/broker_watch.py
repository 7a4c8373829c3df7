"""Whether the worker can reach the broker: one log line per change, a gauge, and /health.

A cluster is reachable while any of its brokers answers: with one broker of three down the
others lead its partitions within seconds and the worker goes on, so the probe asks every
broker at once (:class:`ClusterProbe`, on connections of its own) and calls the cluster down
only when none answers. A metadata request on the producer's connection reported a
three-broker cluster down for 8 to 10 s after a SIGKILL of one broker
(tests/integration/test_three_brokers.py).

During an outage aiokafka and Faust retry on their own and log every failed attempt (often
with a traceback); an on-call engineer needs one line saying the broker went away, and one
saying it came back and how long it was gone. ``BrokerWatch`` probes with a metadata request on a
timer, logs transitions only, and :class:`RetryNoise` turns the libraries' per-retry errors into
debug records while the broker is known to be unreachable.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any

from aiokafka import errors as aiokafka_errors
from aiokafka.protocol.metadata import MetadataRequest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("ccmon.broker")

#: loggers whose warnings and errors during an outage are retries of the same failure
RETRYING_LOGGERS = ("aiokafka", "faust.transport", "faust.tables", "faust.app", "mode", "faust.sensors")
#: aiokafka's messages about a connection attempt that failed and will be retried: hundreds a
#: second when the broker goes away, before any probe can notice. Counted, not printed.
RETRY_MESSAGES = (
    "Unable connect to",  # a node, or a bootstrap server ("host:port")
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
#: aiokafka's retriable errors (``retriable = True``: the client retries the request itself), by
#: name, as its retry lines name them ("OffsetCommit failed for group g on partition p with offset
#: 5: [Error 7] RequestTimedOutError", "Cannot send <InitProducerIdRequest> to 1:
#: RequestTimedOutError()"). A line that names one is a retry, counted and not printed, like the
#: messages above: a broker going away makes the consumer's coordinator and the idempotent
#: producer log them in the seconds before the probe has noticed. ``Cancelled`` is left out: the
#: word also names an asyncio cancellation, not a broker's answer.
RETRIABLE_ERRORS = re.compile(
    r"\b(?:"
    + "|".join(
        sorted(
            name
            for name, cls in vars(aiokafka_errors).items()
            if isinstance(cls, type)
            and issubclass(cls, aiokafka_errors.KafkaError)
            and getattr(cls, "retriable", False)
            and name != "Cancelled"
        )
    )
    + r")\b"
)


async def any_answers(asks: Sequence[Callable[[], Awaitable[bool]]]) -> bool:
    """Ask every broker at once; True as soon as one answers, False once all have failed (the
    last failure is raised, for the log line). A broker that neither answers nor fails keeps
    this waiting only while no other has answered: the caller's timeout ends it."""
    tasks = [asyncio.ensure_future(ask()) for ask in asks]
    pending = set(tasks)
    failure: BaseException | None = None
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.cancelled():
                    continue
                if task.exception() is None and task.result():
                    return True
                failure = task.exception() or failure
    finally:
        for task in pending:
            task.cancel()
        if pending:  # cancelled and collected before returning: no question outlives the probe
            await asyncio.wait(pending)
        for task in tasks:  # every failure retrieved: none logged later as "never retrieved"
            if task.done() and not task.cancelled():
                task.exception()
    if failure is not None:
        raise failure
    return False


def _describe(exc: BaseException) -> str:
    """``Type: message``, once: aiokafka's errors already start their message with their name."""
    name, text = type(exc).__name__, str(exc)
    return text if text.startswith(name) else f"{name}: {text}" if text else name


class ClusterProbe:
    """Asks each broker of the cluster for metadata on connections of its own.

    Not through the worker's producer or consumer: a broker answers the requests of one
    connection in order, and a produce request with ``acks=all`` waits there until the ISR drops
    the dead broker (seconds), so a metadata request queued behind it timed out although the
    broker was up. The probe's client bootstraps on first use (again after a failure) and then
    asks every broker its metadata names."""

    def __init__(self, make_client: Callable[[], Any]) -> None:
        self._make_client = make_client
        self._client: Any = None

    async def __call__(self) -> bool:
        if self._client is None:
            client = self._make_client()
            try:
                await client.bootstrap()  # raises when no bootstrap server answers
            except BaseException:
                await client.close()
                raise
            self._client = client
        client = self._client
        nodes = sorted(broker.nodeId for broker in client.cluster.brokers())
        return await any_answers([partial(_ask_node, client, node) for node in nodes])

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


async def _ask_node(client: Any, node: int) -> bool:
    """True once ``node`` answers a metadata request naming no topic; raises if it cannot."""
    await client.send(node, MetadataRequest([]))
    return True


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
            ok, reason = False, f" ({_describe(exc)})"
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
    and the lines naming a retriable error always (the probe reports a lasting failure within
    ``CCMON_BROKER_PROBE_S``), and every library warning or error while the broker is known to
    be unreachable."""

    def __init__(self, watch: BrokerWatch) -> None:
        super().__init__()
        self._watch = watch

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(RETRYING_LOGGERS):
            return True
        if self._watch.up is False or (record.name.startswith("aiokafka") and _is_retry(record.getMessage())):
            self._watch.retries += 1
            return False
        return True


def _is_retry(message: str) -> bool:
    return any(m in message for m in RETRY_MESSAGES) or RETRIABLE_ERRORS.search(message) is not None
