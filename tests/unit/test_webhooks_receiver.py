"""The webhook receiver's own answers and /metrics, in process (aiohttp's test server, no Kafka: the
paths here end before a send, or at a producer that refuses every send): refusals in the sender's
documented error format (Amazon Data Firehose's JSON error body) or as one line of text, and the
platforms' internal counts (ignored, held, released, dropped) on /metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from aiokafka.errors import KafkaConnectionError
from prometheus_client.parser import text_string_to_metric_families

from producers.sources.webhooks.amazon_connect import AmazonConnect
from producers.sources.webhooks.libredesk import HOLD_S, Libredesk
from producers.sources.webhooks.platform import Platform, PlatformConfig
from producers.sources.webhooks.receiver import MAX_DETAILS, Receiver, ReceiverConfig
from producers.sources.webhooks.twilio import Twilio
from tests.unit.helpers import settings
from tests.unit.helpers_cloud import (
    CONNECT_KEY,
    TWILIO_TOKEN,
    TWILIO_URL,
    agent_event,
    connect_body,
    connect_headers,
    firehose_body,
    firehose_headers,
    sid,
    tr_event,
    twilio_body,
    twilio_headers,
)
from tests.unit.helpers_webhooks import (
    LIBREDESK_SECRET,
    libredesk_conversation,
    libredesk_delivery,
    libredesk_message,
    libredesk_signed,
)

T = 1_796_000_000.0
U = "4f6c2a10-0000-4000-8000-00000000c001"


class RefusingProducer:
    """A broker that cannot be reached: every send fails as aiokafka's does."""

    async def send(self, *args: Any, **kwargs: Any) -> Any:
        raise KafkaConnectionError("no broker")


def platforms() -> dict[str, Platform]:
    return {
        "amazon_connect": AmazonConnect(PlatformConfig(CONNECT_KEY, {})),
        "libredesk": Libredesk(PlatformConfig(LIBREDESK_SECRET, {})),
        "twilio": Twilio(PlatformConfig(TWILIO_TOKEN, {"url": TWILIO_URL, "hold_s": "60"})),
    }


def run(body: Callable[[Receiver, TestClient], Awaitable[None]], max_body: int = 1 << 20) -> None:
    async def main() -> None:
        receiver = Receiver(
            settings(), ReceiverConfig(max_body=max_body, quiet=True), platforms(), clock=lambda: T
        )
        receiver.producer = RefusingProducer()
        async with TestClient(TestServer(receiver.app())) as client:
            await body(receiver, client)

    asyncio.run(main())


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_firehose_refusals_carry_its_documented_error_body():
    """Firehose documents {requestId, timestamp, errorMessage} for any non-200: every refusal of a
    Firehose request gives it, with the request's id echoed and the one-line reason."""

    async def body(receiver: Receiver, client: TestClient) -> None:
        fh = firehose_body([agent_event("STATE_CHANGE", "alice", T)], "req-7")
        cases = [
            (firehose_headers("req-7", key=b"guess"), fh, 401, "Access-Key"),
            (firehose_headers("req-7"), b"{not json", 400, "JSON"),
            (firehose_headers("req-7"), b"x" * 20000, 413, "body over 16384 bytes"),
            (firehose_headers("req-7"), fh, 503, "Kafka did not acknowledge"),
        ]
        for headers, data, status, reason in cases:
            resp = await client.post("/webhooks/amazon_connect", data=data, headers=headers)
            assert resp.status == status
            assert resp.content_type == "application/json"
            doc = json.loads(await resp.read())
            assert set(doc) == {"requestId", "timestamp", "errorMessage"}
            assert doc["requestId"] == "req-7" and reason in doc["errorMessage"]
            assert isinstance(doc["timestamp"], int) and doc["timestamp"] > 1_700_000_000_000

    run(body, max_body=16384)


def test_other_senders_get_the_one_line_text_reason():
    """EventBridge (the same route without Firehose's header) and the other platforms keep the
    plain reason: the default of the platform interface."""

    async def body(receiver: Receiver, client: TestClient) -> None:
        resp = await client.post(
            "/webhooks/amazon_connect", data=b"{}", headers=connect_headers(key=b"guess")
        )
        assert resp.status == 401 and resp.content_type == "text/plain"
        text = await resp.text()
        assert text.endswith("\n") and text.count("\n") == 1
        payload, headers = libredesk_signed(
            libredesk_delivery("conversation.created", {}, T), secret=b"wrong"
        )
        resp = await client.post("/webhooks/libredesk", data=payload, headers=headers)
        assert resp.status == 401 and resp.content_type == "text/plain"

    run(body)


def test_the_platforms_own_counts_are_on_metrics():
    """A libredesk reply before its conversation is held (gauge 1, held 1), dropped when event time
    passes the bound; Twilio's held step released at its bound; Amazon Connect's ignored types.
    The counts are the platforms' own, read at the scrape."""

    async def body(receiver: Receiver, client: TestClient) -> None:
        async def post_libredesk(event: str, payload: dict[str, Any]) -> None:
            data, headers = libredesk_signed(libredesk_delivery(event, payload, T))
            resp = await client.post("/webhooks/libredesk", data=data, headers=headers)
            assert resp.status == 200, await resp.text()

        async def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            return samples(await (await client.get("/metrics")).text())

        def step(platform: str, name: str, detail: str) -> tuple[str, tuple[tuple[str, str], ...]]:
            return ("ccmon_webhook_steps_total", (("detail", detail), ("platform", platform), ("step", name)))

        def held(platform: str) -> tuple[str, tuple[tuple[str, str], ...]]:
            return ("ccmon_webhook_held", (("platform", platform),))

        before = await scrape()
        assert before[held("libredesk")] == 0 and before[held("twilio")] == 0
        await post_libredesk("message.created", libredesk_message(U, "m1", T, agent=4))
        await post_libredesk("message.created", libredesk_message(U, "m1", T, agent=4))  # a re-delivery
        m = await scrape()
        assert m[held("libredesk")] == 1
        assert m[step("libredesk", "held", "agent reply before its conversation")] == 1
        assert m[step("libredesk", "dropped", "conversation never came")] == 0
        # event time moves past the bound on another conversation: the held reply is given up on
        # (its own delivery gives events, which the refusing broker answers 503; the drop stands)
        other = "4f6c2a10-0000-4000-8000-00000000c002"
        data, headers = libredesk_signed(
            libredesk_delivery(
                "conversation.created", libredesk_conversation(other, created=T + HOLD_S + 1), T
            )
        )
        assert (await client.post("/webhooks/libredesk", data=data, headers=headers)).status == 503
        m = await scrape()
        assert m[held("libredesk")] == 0
        assert m[step("libredesk", "dropped", "conversation never came")] == 1

        twilio = receiver.platforms["twilio"]
        task = sid("WT", 1)
        tw = twilio_body([tr_event("task.canceled", T + 40, task=task, reason="hangup")])
        resp = await client.post("/webhooks/twilio", data=tw, headers=twilio_headers(tw))
        assert resp.status == 200  # held: nothing to send yet
        m = await scrape()
        assert m[held("twilio")] == 1 and m[step("twilio", "held", "abandoned")] == 1
        # past hold_s (60 s) of event time the held step is released (parsed here: its events
        # would need a broker; the count is the platform's either way)
        tw = twilio_body(
            [tr_event("worker.activity.update", T + 101, worker=sid("WK", 1), activity="Available")]
        )
        twilio.parse(twilio_headers(tw), tw)
        m = await scrape()
        assert m[held("twilio")] == 0 and m[step("twilio", "released", "abandoned")] == 1

        lens = {"detail-type": "Contact Lens Analysis State Change", "source": "aws.connect", "detail": {}}
        resp = await client.post(
            "/webhooks/amazon_connect", data=connect_body(lens), headers=connect_headers()
        )
        assert resp.status == 200
        m = await scrape()
        assert m[step("amazon_connect", "ignored", "Contact Lens Analysis State Change")] == 1
        assert (
            m[("ccmon_webhook_deliveries_total", (("platform", "amazon_connect"), ("result", "ignored")))]
            == 1
        )

    run(body)


def test_details_past_the_bound_add_up_under_other():
    """Ignored type names come from authentic payloads; /metrics keeps MAX_DETAILS of them per step."""

    async def body(receiver: Receiver, client: TestClient) -> None:
        for i in range(MAX_DETAILS + 8):
            doc = {"detail-type": f"Type {i:02d}", "source": "aws.connect", "detail": {}}
            resp = await client.post(
                "/webhooks/amazon_connect", data=connect_body(doc), headers=connect_headers()
            )
            assert resp.status == 200
        m = samples(await (await client.get("/metrics")).text())
        ignored = {
            dict(labels)["detail"]: v
            for (name, labels), v in m.items()
            if name == "ccmon_webhook_steps_total" and dict(labels)["platform"] == "amazon_connect"
        }
        assert len(ignored) == MAX_DETAILS + 1 and ignored["other"] == 8
        assert sum(ignored.values()) == MAX_DETAILS + 8

    run(body)
