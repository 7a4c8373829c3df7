"""Twilio TaskRouter and Amazon Connect deliveries, end to end: ``ccmon ingest webhooks`` on the real
broker, a real worker. The deliveries are POSTed scrambled, repeated and late, signed (Twilio) or
credentialed (AWS) per each platform's scheme; forged, oversized and unknown ones are refused or
acknowledged without events; the wallboard's waiting contacts, abandonment rate and service level
must equal the values computed by hand below from the deliveries' own times (SPEC §2: threshold
20 s, short abandon < 5 s).
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import pytest

from producers.sources.events import SourceEvent
from producers.sources.webhooks.amazon_connect import AmazonConnect
from producers.sources.webhooks.platform import Platform, PlatformConfig
from producers.sources.webhooks.twilio import Twilio
from streams.dev.harness import Service, free_port, wait_until
from tests.integration.support import ROOT, Env, Worker
from tests.unit.helpers_cloud import (
    CONNECT_KEY,
    TWILIO_TOKEN,
    TWILIO_URL,
    agent_event,
    connect_body,
    connect_headers,
    contact_event,
    firehose_body,
    firehose_headers,
    sid,
    tr_event,
    twilio_body,
    twilio_headers,
    uuid_of,
)

pytestmark = pytest.mark.integration

Delivery = tuple[dict[str, str], bytes]


def base_time() -> float:
    """Every event of a test falls inside the wallboard's 15 minute window, none in the future."""
    return math.floor(time.time() / 10) * 10 - 400.0


class Receiver(Service):
    """``ccmon ingest webhooks`` with the Twilio and Amazon Connect routes, on its own port."""

    def __init__(self, env: Env, *args: str, **extra: str) -> None:
        port = free_port()
        super().__init__(
            [sys.executable, "-m", "streams", "ingest", "webhooks", "--port", str(port), *args],
            port=port,
            env=env.vars(
                CCMON_WEBHOOKS_PLATFORMS="twilio,amazon_connect",
                CCMON_WEBHOOKS_TWILIO_SECRET=TWILIO_TOKEN.decode(),
                # the public URL Twilio calls (a proxy in front): what it signs, whatever the port
                CCMON_WEBHOOKS_TWILIO_URL=TWILIO_URL,
                CCMON_WEBHOOKS_AMAZON_CONNECT_SECRET=CONNECT_KEY.decode(),
                CCMON_WEBHOOKS_AMAZON_CONNECT_QUEUES=f"{uuid_of('queue', 'Sales')}=Sales",
                CCMON_WEBHOOKS_MAX_BODY="65536",
                **extra,
            ),
            log=env.tmp / f"webhooks-{port}.log",
            cwd=ROOT,
            name=f"webhooks :{port}",
        )
        self.start()
        self.wait_ready(60)

    def post(self, route: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        path = route + ("?site=lyon" if route.endswith("twilio") else "")
        request = urllib.request.Request(self.url(path), data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


def run(
    w: Worker,
    r: Receiver,
    route: str,
    p: Platform,
    deliveries: list[Delivery],
    earlier: Sequence[Delivery] = (),
) -> None:
    """POST each delivery (every one answered 200 once Kafka has its events), then wait until the
    worker has seen all of them. ``p``, a platform of the same kind fed the same deliveries (and
    ``earlier``, those that reached Kafka before), only says how many events to wait for."""
    out: list[SourceEvent] = []
    gone = type(p)(p.config)  # the receiver that got them (killed since, its state lost)
    for headers, body in earlier:
        out += gone.parse(headers, body)
    for headers, body in deliveries:
        status, answer = r.post(route, headers, body)
        assert status == 200, (status, answer)
        p.verify(headers, body, time.time())
        out += p.parse(headers, body)
    unique = len({o.event_id for o in out})

    def seen(m: dict) -> bool:
        return sum(by_result(m).values()) >= len(out)

    results = by_result(w.wait_settled(seen, what=f"{len(out)} events, {unique} distinct"))
    assert results.get("rejected", 0) == 0, results
    assert (results.get("accepted"), results.get("duplicate", 0)) == (unique, len(out) - unique)


def deliveries_of(r: Receiver, platform: str) -> dict[str, float]:
    m = r.scrape()
    return {
        dict(labels)["result"]: v
        for (n, labels), v in m.items()
        if n == "ccmon_webhook_deliveries_total" and dict(labels)["platform"] == platform
    }


def by_result(m: dict) -> dict[str, float]:
    """ccmon_events_total by result, summed over the topics."""
    results: dict[str, float] = {}
    for (n, labels), v in m.items():
        if n == "ccmon_events_total":
            results[dict(labels)["result"]] = results.get(dict(labels)["result"], 0) + v
    return results


def board(w: Worker) -> dict[tuple[str, str], dict[str, Any]]:
    with urllib.request.urlopen(w.url("/api/wallboard"), timeout=10) as resp:
        return {(s["queue"], s["channel"]): s for s in json.loads(resp.read())["series"]}


def scrambled(deliveries: list[Delivery], seed: int) -> list[Delivery]:
    """Twilio and AWS promise no order: a fixed shuffle, with every third delivery repeated later."""
    rng = random.Random(seed)
    out = list(deliveries) + deliveries[::3]
    rng.shuffle(out)
    return out


def test_twilio_deliveries_scrambled_repeated_and_late_give_the_hand_computed_wallboard(
    env: Env, workers: list[Worker]
):
    workers.append(Worker(env))
    w = workers[0]
    b = base_time()
    alice, bob, carol = sid("WK", "alice"), sid("WK", "bob"), sid("WK", "carol")
    t = {n: sid("WT", f"it{n}") for n in range(1, 8)}

    def tr(kind: str, at: float, n: int, **kw: Any) -> dict[str, Any]:
        return tr_event(kind, b + at, task=t[n], queue="Support", **kw)

    tasks = [
        # T1 answered by Alice after 12 s (within 20 s), wrapped up, completed
        [
            tr("task-queue.entered", 0, 1),
            tr("reservation.accepted", 12, 1, worker=alice, reservation=sid("WR", 1)),
        ],
        [tr("task.wrapup", 100, 1), tr("task.completed", 130, 1)],
        # T2 rang out at Bob, answered by Carol after 30 s
        [tr("task-queue.entered", 10, 2)],
        [tr("reservation.timeout", 25, 2, worker=bob, reservation=sid("WR", 2))],
        [tr("reservation.accepted", 40, 2, worker=carol, reservation=sid("WR", 3), task_age_in_queue=30)],
        [tr("reservation.wrapup", 150, 2, worker=carol, reservation=sid("WR", 3))],
        [tr("reservation.completed", 160, 2, worker=carol, reservation=sid("WR", 3))],
        # T3 hung up after 2 s (short abandon), T4 after 30 s
        [tr("task-queue.entered", 20, 3), tr("task.canceled", 22, 3, reason="hangup")],
        [tr("task-queue.entered", 30, 4)],
        # T5: the workflow gave up after 120 s, then TaskRouter canceled it
        [tr("task-queue.entered", 50, 5), tr("workflow.timeout", 170, 5)],
        [tr("task.canceled", 170, 5, reason="Workflow Timeout")],
        # T6 still waiting; T7 a chat answered after 5 s
        [tr("task-queue.entered", 200, 6), tr("task.created", 199, 6)],
        [
            tr_event("task-queue.entered", b + 215, task=t[7], queue="Support", channel="chat"),
            tr_event(
                "reservation.accepted",
                b + 220,
                task=t[7],
                queue="Support",
                channel="chat",
                worker=alice,
                reservation=sid("WR", 7),
            ),
        ],
    ]
    url = TWILIO_URL
    deliveries = [(twilio_headers(body, url=url), body) for body in map(twilio_body, tasks)]
    late = twilio_body([tr("task.canceled", 60, 4, reason="hangup")])  # T4's end, delivered last
    activities = twilio_body(
        [
            tr_event("worker.activity.update", b + 300, worker=alice, activity="Available"),
            tr_event("worker.activity.update", b + 300, worker=bob, activity="Break"),
        ]
    )
    p = Twilio(PlatformConfig(TWILIO_TOKEN, {"url": url}))
    order = scrambled(deliveries, seed=23)
    tail = [(twilio_headers(late, url=url), late), (twilio_headers(activities, url=url), activities)]

    # a receiver killed after Kafka acknowledged the first delivery, before answering it: Twilio
    # delivers it again to the next receiver (same state file), a duplicate in the worker
    state = str(env.tmp / "webhooks.state")
    doomed = Receiver(env, "--state-file", state, CCMON_TEST_KILL_AT="webhook-acked:1")
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        doomed.post("/webhooks/twilio", *order[0])
    doomed.wait_exit(30)
    r = Receiver(env, "--state-file", state)
    workers.append(r)  # type: ignore[arg-type]  # stopped with the workers
    run(w, r, "/webhooks/twilio", p, order + tail, earlier=order[:1])

    # refused before anything reaches Kafka: another token, another URL, a body over the bound;
    # a delivery of types the mapping does not use is acknowledged (Twilio must not retry it)
    forged = twilio_body([tr("task.canceled", 210, 6)])
    assert r.post("/webhooks/twilio", twilio_headers(forged, url=url, token=b"x" * 32), forged)[0] == 401
    assert (
        r.post("/webhooks/twilio", twilio_headers(forged, url=TWILIO_URL.replace("lyon", "paris")), forged)[0]
        == 401
    )
    big = twilio_body([tr("task.updated", 205, 6, filler="x" * 70_000)])
    assert r.post("/webhooks/twilio", twilio_headers(big, url=url), big)[0] == 413
    other = twilio_body([dict(tr("task.updated", 206, 6), type="com.twilio.messaging.message.sent")])
    assert r.post("/webhooks/twilio", twilio_headers(other, url=url), other)[0] == 200
    counted = deliveries_of(r, "twilio")
    assert (counted["ok"], counted["unauthorized"], counted["too_large"], counted["ignored"]) == (
        len(order) + 2,
        2,
        1,
        1,
    )

    voice, chat = board(w)[("Support", "voice")], board(w)[("Support", "chat")]
    # voice Support: answered T1 (12 s, within 20 s) and T2 (30 s); abandoned T3 (2 s: short) and
    # T4 (30 s); dequeued T5; waiting T6
    # abandonment = (2 - 1) / (2 + 2 - 1) = 1/3; service level = 1 / (2 + 2 - 1 + 1) = 1/4
    assert voice["waiting"] == 1
    assert voice["abandon_ratio_15m"] == pytest.approx(1 / 3)
    assert voice["service_level_15m"] == pytest.approx(0.25)
    # Bob's ring-out of T2 counts only if delivered before T2's answer (docs/sources/twilio.md)
    rang_out = next(i for i, d in enumerate(order) if b"reservation.timeout" in d[1])
    answer = next(
        i for i, d in enumerate(order) if sid("WR", 3).encode() + b'"' in d[1] and b"accepted" in d[1]
    )
    assert (voice["dequeued_15m"], voice["missed_15m"]) == (1, 1 if rang_out < answer else 0)
    # chat Support: T7 answered after 5 s
    assert (chat["waiting"], chat["service_level_15m"], chat["abandon_ratio_15m"]) == (0, 1.0, 0.0)
    # agents serving Support (learned from their reservations): Carol available again after T2,
    # Alice busy with the chat T7 (Flex keeps her activity Available), Bob on a break
    assert {s: n for s, n in voice["agents"].items() if n} == {"available": 1, "busy": 1, "away": 1}

    # the time from one delivery to the wallboard changing
    started = time.monotonic()
    t8 = twilio_body([tr_event("task-queue.entered", b + 320, task=sid("WT", "it8"), queue="Support")])
    assert r.post("/webhooks/twilio", twilio_headers(t8), t8)[0] == 200
    wait_until(lambda: board(w)[("Support", "voice")]["waiting"] == 2, timeout=30, what="T8 waiting")
    print(f"twilio delivery to wallboard: {time.monotonic() - started:.2f} s", file=sys.stderr)


def test_amazon_connect_contact_and_agent_deliveries_give_the_hand_computed_wallboard(
    env: Env, workers: list[Worker]
):
    workers.append(Worker(env))
    w, r = workers[0], Receiver(env)
    workers.append(r)  # type: ignore[arg-type]  # stopped with the workers
    b = base_time()
    sales = uuid_of("queue", "Sales")
    c = {n: uuid_of("contact", f"it{n}") for n in range(1, 8)}
    kw: dict[str, Any] = {"queue": "Sales"}

    def story(n: int, queued: float, **more: Any) -> list[dict[str, Any]]:
        """The contact events of contact n, each carrying the story so far."""
        q = dict(kw, queued=b + queued, channel=more.pop("channel", "VOICE"))
        events = [contact_event("QUEUED", c[n], **q)]
        if "connected" in more:
            q |= {"agent": more["agent"], "connected": b + more["connected"]}
            events.append(contact_event("CONNECTED_TO_AGENT", c[n], **q))
        if "disconnected" in more:
            q |= {"disconnected": b + more["disconnected"], "reason": more.get("reason", "")}
            events.append(contact_event("DISCONNECTED", c[n], **q))
            acw = more.get("acw_end")
            events.append(contact_event("COMPLETED", c[n], **q, acw_end=b + acw if acw else None))
        return events

    stories = [
        story(1, 0, agent="alice", connected=15, disconnected=100, acw_end=130),  # within 20 s
        story(2, 5, agent="bob", connected=45, disconnected=90, acw_end=100),  # 40 s
        story(3, 10, disconnected=13, reason="CUSTOMER_DISCONNECT"),  # short abandon (3 s)
        story(4, 20, disconnected=60, reason="CUSTOMER_DISCONNECT")[1:],  # 40 s; its QUEUED lost
        story(5, 30, disconnected=200, reason="CONTACT_FLOW_DISCONNECT"),  # dequeued by the flow
        story(6, 250),  # waiting
        story(7, 260, agent="alice", connected=263, channel="CHAT"),  # chat answered after 3 s
    ]
    deliveries = [(connect_headers(), connect_body(ev)) for s in stories for ev in s]
    agents = [
        agent_event("STATE_CHANGE", "alice", b + 300, queues=("Sales",)),
        agent_event("STATE_CHANGE", "bob", b + 300, status="Lunch", status_type="CUSTOM", queues=("Sales",)),
        agent_event("LOGIN", "carol", b + 290, queues=("Sales",)),
        agent_event("LOGOUT", "carol", b + 310, status="Offline", status_type="OFFLINE", queues=("Sales",)),
    ]
    fh = firehose_body(agents[:2], "req-a"), firehose_body(agents[2:], "req-b")
    p = AmazonConnect(PlatformConfig(CONNECT_KEY, {"queues": f"{sales}=Sales"}))
    order = scrambled(deliveries, seed=7)
    order += [
        (firehose_headers("req-a"), fh[0]),
        (firehose_headers("req-b"), fh[1]),
        (firehose_headers("req-a"), fh[0]),
    ]
    run(w, r, "/webhooks/amazon_connect", p, order)

    # Firehose gets its documented answer; a wrong API key or access key is refused
    status, answer = r.post("/webhooks/amazon_connect", firehose_headers("req-a"), fh[0])
    assert status == 200 and json.loads(answer)["requestId"] == "req-a"
    assert isinstance(json.loads(answer)["timestamp"], int)
    body = connect_body(stories[5][0])
    assert r.post("/webhooks/amazon_connect", connect_headers(key=b"guess"), body)[0] == 401
    assert r.post("/webhooks/amazon_connect", firehose_headers("req-c", key=b"guess"), fh[1])[0] == 401
    lens = connect_body(
        {"detail-type": "Contact Lens Analysis State Change", "source": "aws.connect", "detail": {}}
    )
    assert r.post("/webhooks/amazon_connect", connect_headers(), lens)[0] == 200
    counted = deliveries_of(r, "amazon_connect")
    assert (counted["ok"], counted["unauthorized"], counted["ignored"]) == (len(order) + 1, 2, 1)

    voice, chat = board(w)[("Sales", "voice")], board(w)[("Sales", "chat")]
    # voice Sales: answered C1 (15 s, within) and C2 (40 s); abandoned C3 (3 s: short) and C4
    # (40 s, rebuilt from its DISCONNECTED alone); dequeued C5; waiting C6
    # abandonment = (2 - 1) / (2 + 2 - 1) = 1/3; service level = 1 / (2 + 2 - 1 + 1) = 1/4
    assert voice["waiting"] == 1
    assert voice["abandon_ratio_15m"] == pytest.approx(1 / 3)
    assert voice["service_level_15m"] == pytest.approx(0.25)
    assert voice["dequeued_15m"] == 1
    assert (chat["waiting"], chat["service_level_15m"]) == (0, 1.0)
    # agents with Sales in their routing profile: Alice available, Bob at lunch, Carol logged out
    assert {s: n for s, n in voice["agents"].items() if n} == {"available": 1, "away": 1, "offline": 1}

    # the time from one delivery to the wallboard changing
    started = time.monotonic()
    c8 = connect_body(contact_event("QUEUED", uuid_of("contact", "it8"), queue="Sales", queued=b + 320))
    assert r.post("/webhooks/amazon_connect", connect_headers(), c8)[0] == 200
    wait_until(lambda: board(w)[("Sales", "voice")]["waiting"] == 2, timeout=30, what="C8 waiting")
    print(f"amazon_connect delivery to wallboard: {time.monotonic() - started:.2f} s", file=sys.stderr)
