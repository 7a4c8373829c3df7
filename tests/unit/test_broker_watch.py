"""The broker probe of a cluster: up while any broker answers, down only when none does.

With one broker of three SIGKILLed, the worker's metadata request (on its producer's connection,
behind produce requests waiting for the ISR to shrink) timed out and /health said 503 for 8 to
10 s although two brokers led every partition. The probe now asks every broker at once on
connections of its own; these fakes stand for brokers that answer, refuse, or hang."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import SimpleNamespace

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    LeaderNotAvailableError,
    NodeNotReadyError,
    NotEnoughReplicasError,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
)
from aiokafka.protocol.transaction import InitProducerIdRequest

from streams.kafka.broker_watch import BrokerWatch, ClusterProbe, RetryNoise, any_answers

Ask = Callable[[], Awaitable[bool]]


def answers() -> Ask:
    async def ask() -> bool:
        await asyncio.sleep(0)
        return True

    return ask


def refuses() -> Ask:
    async def ask() -> bool:
        raise NodeNotReadyError("Attempt to send a request to node which is not ready (node id 2).")

    return ask


class Hangs:
    """A broker that neither answers nor fails (SIGKILLed behind a connection not yet closed)."""

    def __init__(self) -> None:
        self.cancelled = False

    async def __call__(self) -> bool:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return True


def watch(asks: list[Ask], timeout_s: float = 0.2) -> BrokerWatch:
    return BrokerWatch("b1:9092,b2:9092,b3:9092", lambda: any_answers(asks), timeout_s=timeout_s)


@pytest.mark.parametrize("down", [refuses, Hangs], ids=["refused", "hanging"])
def test_one_broker_of_three_down_is_no_outage(down: Callable[[], Ask]) -> None:
    hanging = down()
    w = watch([hanging, answers(), answers()])
    assert asyncio.run(w.check()) is True
    assert w.up is True and w.outages == 0
    if isinstance(hanging, Hangs):
        assert hanging.cancelled, "the unanswered question must not outlive the probe"


def test_two_of_three_down_and_the_third_answers_late() -> None:
    async def slow() -> bool:
        await asyncio.sleep(0.05)
        return True

    w = watch([refuses(), Hangs(), slow])
    assert asyncio.run(w.check()) is True


def test_every_broker_refusing_is_an_outage_with_the_reason() -> None:
    w = watch([refuses(), refuses(), refuses()])
    assert asyncio.run(w.check()) is False
    assert w.up is False and w.outages == 1


def test_every_broker_silent_is_an_outage_at_the_timeout() -> None:
    hanging = [Hangs(), Hangs(), Hangs()]
    w = watch(list(hanging), timeout_s=0.05)
    assert asyncio.run(w.check()) is False
    assert w.outages == 1 and all(h.cancelled for h in hanging)


def test_no_broker_known_is_no_answer() -> None:
    assert asyncio.run(any_answers([])) is False


def test_a_broker_answering_false_is_not_an_answer() -> None:
    async def no() -> bool:
        return False

    assert asyncio.run(any_answers([no, no])) is False
    assert asyncio.run(any_answers([no, answers()])) is True


class FakeClient:
    """aiokafka's client as the probe uses it: bootstrap, the brokers its metadata names, a
    request to one node, close."""

    def __init__(self, nodes: dict[int, Ask], bootstraps: bool = True) -> None:
        self.nodes, self.bootstraps, self.closed = nodes, bootstraps, False
        self.asked: list[int] = []
        self.cluster = self

    def brokers(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(nodeId=n) for n in self.nodes]

    async def bootstrap(self) -> None:
        if not self.bootstraps:
            raise KafkaConnectionError("Unable to bootstrap from [('b1', 9092, 0)]")

    async def send(self, node: int, request: object) -> object:
        self.asked.append(node)
        return await self.nodes[node]()

    async def close(self) -> None:
        self.closed = True


def test_the_probe_asks_every_broker_the_metadata_names() -> None:
    # broker 1 holds its answer back (its connection is busy with a produce request waiting for
    # the ISR to drop the dead broker 3); broker 2 answers: the cluster is up
    client = FakeClient({1: Hangs(), 2: answers(), 3: refuses()})
    probe = ClusterProbe(lambda: client)
    assert asyncio.run(probe()) is True
    assert sorted(client.asked) == [1, 2, 3]


def test_the_probe_bootstraps_again_after_a_failed_bootstrap() -> None:
    made: list[FakeClient] = []

    def make() -> FakeClient:
        made.append(FakeClient({1: answers()}, bootstraps=len(made) > 0))
        return made[-1]

    probe = ClusterProbe(make)
    with pytest.raises(KafkaConnectionError):
        asyncio.run(probe())
    assert made[0].closed, "a client that could not bootstrap is closed, not leaked"
    assert asyncio.run(probe()) is True and len(made) == 2
    asyncio.run(probe.close())
    assert made[1].closed


def test_the_reason_names_the_error_once(caplog: pytest.LogCaptureFixture) -> None:
    for error, said in (
        (NodeNotReadyError("not ready (node id 2)."), "(NodeNotReadyError: not ready (node id 2).)"),
        (TimeoutError(), "(TimeoutError)"),
        (OSError("refused"), "(OSError: refused)"),
    ):

        async def fail(error: BaseException = error) -> bool:
            raise error

        caplog.clear()
        assert asyncio.run(watch([fail]).check()) is False
        assert said in caplog.text and "NodeNotReadyError: NodeNotReadyError" not in caplog.text


def record(logger: str, msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(logger, level, __file__, 1, msg, args, None)


#: aiokafka's own lines (its format strings and arguments) for a request it retries: the
#: consumer's offset commit and the idempotent producer's producer-id request while the broker
#: goes away, before the probe has noticed
RETRIES = [
    record(
        "aiokafka.consumer.group_coordinator",
        "OffsetCommit failed for group %s on partition %s with offset %s: %s",
        "ccmon",
        "t.calls-0",
        812,
        "RequestTimedOutError",
    ),
    record(
        "aiokafka.producer.sender",
        "Cannot send %r to %s: %r",
        InitProducerIdRequest,
        1,
        RequestTimedOutError(),
        level=logging.WARNING,
    ),
    record(
        "aiokafka.consumer.fetcher",
        "Attempt to fetch offsets for partition %s failed due to: %s",
        "t.calls-0",
        LeaderNotAvailableError,
        level=logging.WARNING,
    ),
    record(
        "aiokafka.producer.sender",
        "Got error produce response on topic-partition %s, retrying. Error: %s",
        "t.facts-1",
        NotEnoughReplicasError,
        level=logging.WARNING,
    ),
]


@pytest.mark.parametrize("line", RETRIES, ids=lambda r: r.getMessage()[:40])
def test_aiokafka_lines_naming_a_retriable_error_are_counted_not_printed(line: logging.LogRecord) -> None:
    w = watch([answers()])
    asyncio.run(w.check())
    assert w.up is True  # before the probe has noticed anything
    assert RetryNoise(w).filter(line) is False
    assert w.retries == 1


def test_aiokafka_errors_that_are_not_retried_are_printed() -> None:
    w = watch([answers()])
    asyncio.run(w.check())
    noise = RetryNoise(w)
    for line in (
        record(
            "aiokafka.consumer.group_coordinator", "OffsetCommit failed for unauthorized topics %s", {"t"}
        ),
        record(
            "aiokafka.cluster", "Error fetching metadata for topic %s: %s", "t", TopicAuthorizationFailedError
        ),
        record("aiokafka.consumer.consumer", "error in consumer iterator: %s", "Cancelled"),
        record("faust.transport", "OffsetCommit failed: %s", "RequestTimedOutError"),  # not aiokafka's
    ):
        assert noise.filter(line) is True, line.getMessage()
    assert w.retries == 0
