"""End to end on a real worker (issue 24): a log with returning customers gives exactly the
repeat, recovery, operational FCR, resolution and at-risk figures the definitions give (hand
computed below), also after the worker SIGKILLed itself right after a stage-2 batch (its customer
facts sent, its records not yet written: streams/killpoints.py), and the call-back list shows the
one customer still to reach."""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest

from producers.recording import line
from streams.dev.harness import NotReady
from tests.integration.support import Env, Worker, exported, metric

pytestmark = pytest.mark.integration

DAY = "2026-09-21"


def ms(hhmmss: str) -> int:
    return int(datetime.fromisoformat(f"{DAY}T{hhmmss}+00:00").timestamp() * 1000)


def contact(topic: str, cid: str, *steps: tuple[str, str, dict]) -> list[bytes]:
    return [
        line(
            topic,
            cid,
            {"event_id": f"{cid}-{etype}", "type": etype, "contact_id": cid, "ts": ms(t), **fields},
        )
        for etype, t, fields in steps
    ]


#: R = 2 min, W = 1 min, lateness 30 s, one facts partition (one customer clock)
SETTINGS = {
    "CCMON_REPEAT_WINDOW_S": "120",
    "CCMON_RECOVERY_WINDOW_S": "60",
    "CCMON_LATENESS_S": "30",
    "CCMON_PARTITIONS": "1",
}


def recording(topics: dict[str, str]) -> bytes:
    calls = topics["calls"]
    return b"".join(
        [
            # A abandons sales and never comes back: lost at 10:01:10 (decided once the clock
            # passes 10:01:40), at risk
            *contact(
                calls,
                "k1",
                ("offered", "10:00:00", {"queue": "sales", "customer": "+491111"}),
                ("abandoned", "10:00:10", {}),
            ),
            # B abandons sales, calls back 15 s later on support and is answered: recovered, a
            # repeat (previous abandoned) on support, handled, and no new contact within R:
            # resolved on first contact (decided at 10:02:40). On the calls topic: a call and a
            # chat are not ordered with each other (the unit tests cover the chat case)
            *contact(
                calls,
                "k2",
                ("offered", "10:00:20", {"queue": "sales", "customer": "+492222"}),
                ("abandoned", "10:00:25", {}),
            ),
            *contact(
                calls,
                "k3",
                ("offered", "10:00:40", {"queue": "support", "customer": "+492222"}),
                ("answered", "10:00:45", {"agent_id": "a1"}),
                ("ended", "10:01:00", {}),
                ("wrapup_ended", "10:01:01", {}),
            ),
            # C's case T9: offered 10:05:00, resolved 10:05:55 (55 s, one contact)
            *contact(
                calls,
                "k4",
                ("offered", "10:05:00", {"queue": "sales", "customer": "+493333", "case_id": "T9"}),
                ("answered", "10:05:05", {"agent_id": "a2"}),
                ("resolved", "10:05:55", {}),
            ),
            # a withheld number: no customer feature
            *contact(calls, "k5", ("offered", "10:06:00", {"queue": "sales"}), ("abandoned", "10:06:10", {})),
            # D abandons at 10:08:10: still to call back at the end (the clock stops at 10:08:10)
            *contact(
                calls,
                "k6",
                ("offered", "10:08:00", {"queue": "sales", "customer": "+494444"}),
                ("abandoned", "10:08:10", {}),
            ),
        ]
    )


def figures(m: dict) -> dict:
    sales, support = {"queue": "sales", "channel": "voice"}, {"queue": "support", "channel": "voice"}
    return {
        "repeat": metric(m, "ccmon_contacts_repeat_total", **support, previous="abandoned"),
        "recovered": metric(m, "ccmon_abandons_recovered_total", **sales),
        "lost": metric(m, "ccmon_abandons_lost_total", **sales),
        "unrecovered": metric(m, "ccmon_abandons_unrecovered", **sales),
        "fcr": (
            metric(m, "ccmon_contacts_fcr_decided_total", **support),
            metric(m, "ccmon_contacts_fcr_resolved_total", **support),
        ),
        "resolution": (
            metric(m, "ccmon_resolution_seconds_count", **sales),
            metric(m, "ccmon_resolution_seconds_sum", **sales),
        ),
        "per case": metric(m, "ccmon_contacts_per_case_sum", **sales),
        "at risk": metric(m, "ccmon_customers_at_risk", queue="sales"),
    }


EXPECTED = {
    "repeat": 1.0,
    "recovered": 1.0,
    "lost": 1.0,
    "unrecovered": 1.0,
    "fcr": (1.0, 1.0),
    "resolution": (1.0, 55.0),
    "per case": 1.0,
    "at risk": 1.0,
}


def test_returning_customers_on_a_real_worker_also_after_a_sigkill(
    env: Env, workers: list[Worker], tmp_path: Path, browser
):
    key = tmp_path / "customer.key"
    key.write_bytes(b"an-integration-test-customer-key\n")
    cfg = {**SETTINGS, "CCMON_CUSTOMER_KEY_FILE": str(key)}
    path = tmp_path / "customers.jsonl"
    path.write_bytes(recording(env.topics))
    # the replay creates the topics: with the one partition of SETTINGS (every ccmon topic has the
    # worker's partition count: streams/kafka/topics.py)
    one = SETTINGS["CCMON_PARTITIONS"]
    assert env.ccmon("replay", str(path), "--quiet", CCMON_PARTITIONS=one).returncode == 0

    victim = Worker.launched(env, CCMON_TEST_KILL_AT="queues-batch:1", **cfg)
    workers.append(victim)
    deadline = time.monotonic() + 90
    while victim.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert victim.proc.poll() == -signal.SIGKILL, victim.log_tail()

    worker = Worker(env, **cfg)
    workers.append(worker)
    try:
        m = worker.wait_for(lambda m: figures(m) == EXPECTED, timeout=60, what="the hand-computed figures")
    except NotReady:
        m = worker.scrape()
    assert figures(m) == EXPECTED, worker.log_tail()
    # the withheld number counts in the queue's KPIs only
    assert exported(m, "ccmon_contacts_abandoned_total", queue="sales", channel="voice") == 4
    board = json.loads(worker.get("/api/callbacks"))
    assert [(c["queue"], c["contact_id"], c["tries"], c["number"]) for c in board["callbacks"]] == [
        ("sales", "k6", 1, None)
    ]
    assert b"+494444" not in worker.get("/api/callbacks") and b"+49" not in worker.metrics_text()

    # the page shows D, and drops D within a second of D being reached (answered on support)
    page = browser.new_page(viewport={"width": 1600, "height": 900}, bypass_csp=True)
    page.goto(worker.url("/callbacks"))
    page.wait_for_function("document.querySelectorAll('#callbacks tr').length === 1", timeout=10_000)
    assert page.get_attribute("#callbacks tr", "data-contact") == "k6"
    assert "sales" in page.inner_text("#callbacks tr") and "+49" not in page.inner_text("body")
    reached = tmp_path / "reached.jsonl"
    reached.write_bytes(
        b"".join(
            contact(
                env.topics["calls"],
                "k7",
                ("offered", "10:08:20", {"queue": "support", "customer": "+494444"}),
                ("answered", "10:08:30", {"agent_id": "a1"}),
            )
        )
    )
    assert env.ccmon("replay", str(reached), "--quiet", CCMON_PARTITIONS=one).returncode == 0
    worker.wait_for(
        lambda m: metric(m, "ccmon_abandons_recovered_total", queue="sales", channel="voice") == 2,
        timeout=60,
        what="D recovered",
    )
    page.wait_for_function("document.querySelectorAll('#callbacks tr').length === 0", timeout=1_500)
    page.close()
