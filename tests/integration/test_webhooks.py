"""``ccmon ingest webhooks`` with Chatwoot and libredesk, on the real broker and a real worker:
deliveries signed per each platform's scheme, reordered and duplicated, a receiver killed between
Kafka's acknowledgement and its answer, a restart with a held reply in the state file, a broker
outage; the worker's KPIs equal the values computed by hand."""

from __future__ import annotations

import asyncio
import random
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from streams.core.events import Rejection, parse_contact
from streams.dev.harness import Service, free_kafka_port, free_port, wait_until
from streams.dev.kafka_local import LocalKafka
from tests.integration.support import ROOT, Env, Worker, exported, metric
from tests.unit.helpers_webhooks import (
    CHATWOOT_SECRET,
    LIBREDESK_SECRET,
    chatwoot_conversation,
    chatwoot_event,
    chatwoot_message,
    chatwoot_signed,
    libredesk_conversation,
    libredesk_delivery,
    libredesk_message,
    libredesk_signed,
)

pytestmark = pytest.mark.integration

Q = {"queue": "inbox-1", "channel": "chat"}


class Receiver(Service):
    """``ccmon ingest webhooks`` with the Chatwoot and libredesk routes, on its own port, ready
    when /health answers."""

    def __init__(self, env: Env, name: str, *args: str, **extra: str) -> None:
        port = free_port()
        log = env.tmp / f"webhooks-{name}-{port}.log"
        super().__init__(
            [sys.executable, "-m", "streams", "ingest", "webhooks", "--port", str(port), *args],
            port=port,
            env=env.vars(
                CCMON_WEBHOOKS_CHATWOOT_SECRET=CHATWOOT_SECRET.decode(),
                CCMON_WEBHOOKS_LIBREDESK_SECRET=LIBREDESK_SECRET.decode(),
                **extra,
            ),
            log=log,
            cwd=ROOT,
            name=f"webhooks :{port}",
        )
        self.start()
        self.wait_ready(60)

    def _send(self, route: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        request = urllib.request.Request(self.url(route), data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def post(self, doc: dict | bytes, now: float | None = None, **headers: str) -> tuple[int, str]:
        """A Chatwoot delivery, signed for ``now``."""
        body, signed = chatwoot_signed(doc, time.time() if now is None else now)
        return self._send("/webhooks/chatwoot", body, {**signed, **headers})

    def post_libredesk(self, doc: dict) -> tuple[int, str]:
        body, signed = libredesk_signed(doc)
        return self._send("/webhooks/libredesk", body, signed)


async def _read(address: str, topic: str, quiet_s: float = 2.0) -> list[dict]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=address,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    out: list[dict] = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=int(quiet_s * 1000))
            if not batch:
                return out
            for records in batch.values():
                out += [orjson.loads(r.value) for r in records]
    finally:
        await consumer.stop()


def read(address: str, topic: str) -> list[dict]:
    return asyncio.run(_read(address, topic))


def deliveries(base: float) -> list[tuple[str, dict]]:
    """Five conversations in inbox 1, as Chatwoot delivers them (name, delivery):
    c1 assigned after 10 s, replied at 15 s, resolved; c2 assigned after 60 s, replied, resolved;
    c3 resolved after 120 s without an agent (abandoned); c4 still waiting; c5 assigned after 5 s,
    replied at 10 s (its reply is delivered before its creation and assignment)."""
    out: list[tuple[str, dict]] = []

    def conv(n: int, created: float, **kw: object) -> dict:
        return chatwoot_conversation(n, created=created, contact=600 + n, **kw)  # type: ignore[arg-type]

    for n, t0, assign, reply, resolve in ((1, 0, 10, 15, 200), (2, 5, 65, 70, 300), (5, 40, 45, 50, None)):
        c = base + t0
        out.append((f"c{n}-created", chatwoot_event("conversation_created", conv(n, c))))
        out.append(
            (
                f"c{n}-assigned",
                chatwoot_event(
                    "conversation_updated",
                    conv(n, c, updated=base + assign, assignee=7 + n),
                    assignee_id=(None, 7 + n),
                ),
            )
        )
        replied = conv(n, c, updated=base + reply, assignee=7 + n, first_reply=base + reply)
        out.append((f"c{n}-reply", chatwoot_message(replied, 1000 + n, base + reply, agent=7 + n)))
        if resolve is not None:
            done = conv(
                n, c, updated=base + resolve, assignee=7 + n, first_reply=base + reply, status="resolved"
            )
            out.append(
                (
                    f"c{n}-resolved",
                    chatwoot_event("conversation_status_changed", done, status=("open", "resolved")),
                )
            )
    out.append(("c3-created", chatwoot_event("conversation_created", conv(3, base + 20))))
    out.append(("c3-message", chatwoot_message(conv(3, base + 20, updated=base + 30), 1003, base + 30)))
    gone = conv(3, base + 20, updated=base + 140, status="resolved")
    out.append(
        ("c3-resolved", chatwoot_event("conversation_status_changed", gone, status=("open", "resolved")))
    )
    out.append(("c4-created", chatwoot_event("conversation_created", conv(4, base + 30))))
    return out


def test_chatwoot_deliveries_reordered_duplicated_and_retried_give_the_hand_computed_kpis(
    env: Env, workers: list[Worker]
):
    base = float(int(time.time()) - 600)
    worker = Worker(env)
    workers.append(worker)
    todo = deliveries(base)
    named = dict(todo)
    rng = random.Random(23)
    order = [name for name, _ in todo if name not in ("c5-reply", "c5-created", "c5-assigned")]
    rng.shuffle(order)
    order = ["c5-reply", *order, "c5-created", "c5-assigned"]  # c5's reply overtakes its creation
    order += rng.sample(order, 4)  # and four deliveries come twice

    # a receiver killed after Kafka acknowledged c1's creation, before answering it
    doomed = Receiver(env, "doomed", CCMON_TEST_KILL_AT="webhook-acked:1")
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        doomed.post(named["c1-created"])
    doomed.wait_exit(30)
    receiver = Receiver(env, "main")
    try:
        assert receiver.post(named["c1-created"])[0] == 200  # Chatwoot's retry: a duplicate in the worker
        for name in order:
            status, text = receiver.post(named[name])
            assert status == 200, (name, status, text)

        expected = {
            "ccmon_contacts_offered_total": 5,
            "ccmon_contacts_answered_total": 3,  # c1, c2, c5
            "ccmon_contacts_answered_in_threshold_total": 2,  # c1 (10 s), c5 (5 s or 10 s): within 20 s
            "ccmon_contacts_abandoned_total": 1,  # c3, after 120 s: not a short abandon
            "ccmon_contacts_handled_total": 2,  # c1, c2 resolved
            # first response = the first agent reply - the offer: c1 15 - 0, c2 70 - 5, c5 50 - 40
            # (c3's message is the customer's: no response)
            "ccmon_first_response_seconds_count": 3,
            "ccmon_first_response_seconds_sum": 15 + 65 + 10,
        }

        def done(m: dict) -> bool:
            return all(metric(m, name, **Q) == value for name, value in expected.items())

        m = worker.wait_settled(done, timeout=60, what="the hand-computed chat KPIs")
        assert exported(m, "ccmon_queue_waiting_contacts", **Q) == 1  # c4
        assert exported(m, "ccmon_contacts_short_abandoned_total", **Q) == 0
        # the wallboard, by hand: answered 3, abandoned 1 (none short), dequeued 0; within 20 s: 2
        board = next(
            row
            for row in orjson.loads(worker.get("/api/wallboard"))["series"]
            if (row["queue"], row["channel"]) == ("inbox-1", "chat")
        )
        assert board["waiting"] == 1
        assert board["service_level_15m"] == pytest.approx(2 / 4)
        assert board["abandon_ratio_15m"] == pytest.approx(1 / 4)
        assert board["first_response_seconds_15m"] == pytest.approx(90 / 3)
        assert exported(m, "ccmon_first_response_seconds_avg", **Q, window="15m") == pytest.approx(30.0)

        # every event on the topic passes the worker's own validation, and the retried delivery's
        # events are there twice with the same ids
        events = read(env.kafka.address, env.topics["chats"])
        for ev in events:
            assert not isinstance(parse_contact(orjson.dumps(ev), time.time(), 300), Rejection), ev
        ids = [ev["event_id"] for ev in events]
        assert ids.count("chatwoot-1:offered") >= 2
        assert {ev["type"] for ev in events} >= {"offered", "answered", "responded", "ended", "resolved"}
        responded = sorted(ev["ts"] for ev in events if ev["type"] == "responded")
        assert set(responded) == {int((base + s) * 1000) for s in (15, 70, 50)}

        # the time from one delivery to the metric changing
        started = time.monotonic()
        assert (
            receiver.post(
                chatwoot_event("conversation_created", chatwoot_conversation(9, created=base + 500))
            )[0]
            == 200
        )
        worker.wait_for(lambda m: metric(m, "ccmon_contacts_offered_total", **Q) == 6, timeout=30)
        elapsed = time.monotonic() - started
        print(f"delivery to metric: {elapsed:.2f} s", file=sys.stderr)
        assert elapsed < 10

        scraped = receiver.scrape()
        ok = exported(scraped, "ccmon_webhook_deliveries_total", platform="chatwoot", result="ok")
        assert ok == len(order) + 2
        acks = exported(scraped, "ccmon_webhook_ack_seconds_count", platform="chatwoot")
        assert acks == ok
        mean = exported(scraped, "ccmon_webhook_ack_seconds_sum", platform="chatwoot") / acks
        print(
            f"arrival to answer (Kafka acknowledged), mean of {acks:.0f}: {mean * 1000:.1f} ms",
            file=sys.stderr,
        )
    finally:
        receiver.stop()


def test_bad_signatures_stale_times_big_bodies_bad_json_and_unknown_types_reach_nothing(env: Env):
    receiver = Receiver(env, "guard", CCMON_WEBHOOKS_MAX_BODY="4096")
    try:
        now = time.time()
        doc = chatwoot_event("conversation_created", chatwoot_conversation(1, created=now - 60))
        body, headers = chatwoot_signed(doc, now, secret=b"not the secret")
        request = urllib.request.Request(
            receiver.url("/webhooks/chatwoot"), data=body, headers=headers, method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as bad:
            urllib.request.urlopen(request, timeout=10)
        assert bad.value.code == 401
        status, text = receiver.post(doc, now=now - 600)
        assert status == 401 and "stale" in text and text.count("\n") == 1
        status, text = receiver.post(b'{"event": "conversation_created", "id": ' + b"1" * 5000 + b"}")
        assert status == 413
        status, text = receiver.post(b"{not json")
        assert status == 400 and "not JSON" in text and text.count("\n") == 1
        status, text = receiver.post({"event": "some_future_event", "id": 3})
        assert status == 200 and "ignored" in text
        m = receiver.scrape()
        for result, n in (
            ("unauthorized", 2),
            ("too_large", 1),
            ("bad_request", 1),
            ("ignored", 1),
            ("ok", 0),
        ):
            assert exported(m, "ccmon_webhook_deliveries_total", platform="chatwoot", result=result) == n, (
                result
            )
        assert read(env.kafka.address, env.topics["chats"]) == []
    finally:
        receiver.stop()


def test_a_broker_outage_is_answered_503_and_nothing_is_lost(tmp_path: Path):
    broker = LocalKafka(port=free_kafka_port(), data_dir=tmp_path / "kafka")
    broker.start()
    env = Env(broker, tmp_path)
    receiver = Receiver(env, "outage")
    try:
        now = time.time()
        first = chatwoot_event("conversation_created", chatwoot_conversation(1, created=now - 30))
        assert receiver.post(first)[0] == 200
        broker.stop()
        second = chatwoot_event("conversation_created", chatwoot_conversation(2, created=now - 20))
        started = time.monotonic()
        status, text = receiver.post(second)
        assert status == 503 and "deliver again" in text
        assert time.monotonic() - started < 6  # answered within Chatwoot's 5 s timeout
        broker.start()
        wait_until(lambda: receiver.post(second)[0] == 200, timeout=60, what="the retry after the outage")
        got = {ev["event_id"] for ev in read(broker.address, env.topics["chats"])}
        assert got == {"chatwoot-1:offered", "chatwoot-2:offered"}
        m = receiver.scrape()
        assert exported(m, "ccmon_webhook_deliveries_total", platform="chatwoot", result="unavailable") >= 1
    finally:
        receiver.stop(signal.SIGTERM)
        broker.stop()


def test_libredesk_a_reply_before_its_creation_survives_a_restart_and_the_kpis_are_exact(
    env: Env, workers: list[Worker]
):
    """libredesk's worker pool sends a reply before its conversation; the receiver holds it in its
    state file, is restarted, and releases it after the creation: offered, answered, responded, in
    order, on one key. A second conversation is closed without an agent: abandoned."""
    base = float(int(time.time()) - 600)
    worker = Worker(env)
    workers.append(worker)
    state = env.tmp / "webhooks.state"
    a, b = "0b7a7e52-0000-4000-8000-00000000000a", "0b7a7e52-0000-4000-8000-00000000000b"
    now = time.time()
    reply = libredesk_delivery("message.created", libredesk_message(a, "m-1", base + 12, agent=4), now)
    # killed after the acknowledgement, before the state is saved and the 2xx: not accepted
    doomed = Receiver(env, "libredesk-0", "--state-file", str(state), CCMON_TEST_KILL_AT="webhook-acked:1")
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        doomed.post_libredesk(reply)
    doomed.wait_exit(30)
    first = Receiver(env, "libredesk-1", "--state-file", str(state))
    try:
        assert first.post_libredesk(reply)[0] == 200  # delivered again: held, saved before the 2xx
    finally:
        first.stop()
    receiver = Receiver(env, "libredesk-2", "--state-file", str(state))
    try:
        closed = libredesk_conversation(b, created=base + 5, updated=base + 100, status="Closed")
        todo = [
            libredesk_delivery(
                "conversation.status_changed",
                {"previous_status": "Open", "new_status": "Closed", "conversation": closed},
                now,
            ),
            libredesk_delivery("conversation.created", libredesk_conversation(a, created=base), now),
            libredesk_delivery("conversation.created", libredesk_conversation(b, created=base + 5), now),
        ]
        for doc in todo + todo[1:2]:  # the creation twice
            assert receiver.post_libredesk(doc)[0] == 200
        expected = {
            "ccmon_contacts_offered_total": 2,
            "ccmon_contacts_answered_total": 1,  # a, from its held reply: waited 12 s
            "ccmon_contacts_answered_in_threshold_total": 1,
            "ccmon_contacts_abandoned_total": 1,  # b, after 95 s
            # a's first response: its held reply at 12 s (b never had one)
            "ccmon_first_response_seconds_count": 1,
            "ccmon_first_response_seconds_sum": 12,
        }

        def done(m: dict) -> bool:
            return all(metric(m, name, **Q) == value for name, value in expected.items())

        m = worker.wait_settled(done, timeout=60, what="the hand-computed libredesk KPIs")
        assert exported(m, "ccmon_queue_waiting_contacts", **Q) == 0
        evs = [e for e in read(env.kafka.address, env.topics["chats"]) if e["contact_id"] == f"libredesk-{a}"]
        assert [e["type"] for e in evs][:3] == ["offered", "answered", "responded"]
        assert evs[2]["ts"] == int((base + 12) * 1000)
        board = next(
            row
            for row in orjson.loads(worker.get("/api/wallboard"))["series"]
            if (row["queue"], row["channel"]) == ("inbox-1", "chat")
        )
        assert board["first_response_seconds_15m"] == pytest.approx(12.0)
    finally:
        receiver.stop()


def test_a_state_that_cannot_be_saved_is_answered_503_and_saved_with_the_retry(env: Env, tmp_path: Path):
    """The held reply is accepted only once its state is on disk: when the save fails (the state's
    directory is gone), the delivery is answered 503, and its retry, once the directory is back,
    is saved and answered 200."""
    from aiohttp.test_utils import TestClient, TestServer

    from producers.sources.webhooks.options import platforms
    from producers.sources.webhooks.receiver import Receiver as App
    from producers.sources.webhooks.receiver import ReceiverConfig
    from streams.config import load

    state_dir = tmp_path / "state"
    state_dir.mkdir()
    settings = load(env.vars())
    reply = libredesk_delivery(
        "message.created",
        libredesk_message("0b7a7e52-0000-4000-8000-0000000000cc", "m-9", time.time() - 60, agent=4),
        time.time(),
    )
    body, headers = libredesk_signed(reply)

    async def run() -> tuple[int, int]:
        app = App(
            settings,
            ReceiverConfig(state_file=state_dir / "webhooks.state", quiet=True),
            platforms({"CCMON_WEBHOOKS_LIBREDESK_SECRET": LIBREDESK_SECRET.decode()}),
        )
        await app.start()
        client = TestClient(TestServer(app.app()))
        await client.start_server()
        try:
            state_dir.rename(tmp_path / "gone")
            failed = (await client.post("/webhooks/libredesk", data=body, headers=headers)).status
            (tmp_path / "gone").rename(state_dir)
            retried = (await client.post("/webhooks/libredesk", data=body, headers=headers)).status
            return failed, retried
        finally:
            await client.close()
            await app.stop()

    assert asyncio.run(run()) == (503, 200)
    saved = orjson.loads((state_dir / "webhooks.state").read_bytes())
    assert list(saved["platforms"]["libredesk"]["held"]) == ["0b7a7e52-0000-4000-8000-0000000000cc"]
