"""The agent view end to end: a real worker on the real broker, /api/agents and the per-agent
series against hand-computed figures, and the /agents page in a real headless Chromium."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from datetime import UTC, datetime

import pytest

from producers.recording import line
from tests.integration.support import ARTIFACTS, Env, Worker, metric

pytestmark = pytest.mark.integration


def noon_zone() -> str:
    """A fixed-offset zone in which it is about noon now: the recording (the last 5 minutes) never
    straddles the contact center's midnight, whatever the hour the test runs at."""
    offset = (12 - datetime.now(UTC).hour) % 24
    offset = offset - 24 if offset > 14 else offset
    return "Etc/GMT" + ("-" if offset > 0 else "+") + str(abs(offset)) if offset else "UTC"


def recording(env: Env, base: float) -> bytes:
    t = env.topics
    out = []

    def a(aid: str, state: str, queues: list[str], dt: float, **kw) -> None:
        out.append(
            line(
                t["agents"],
                aid,
                {
                    "event_id": f"{aid}-{dt}",
                    "type": "state",
                    "agent_id": aid,
                    "state": state,
                    "queues": queues,
                    "ts": int((base + dt) * 1000),
                    **kw,
                },
            )
        )

    def c(topic: str, cid: str, etype: str, dt: float, **kw) -> None:
        out.append(
            line(
                t[topic],
                cid,
                {
                    "event_id": f"{cid}-{etype}-{dt}",
                    "type": etype,
                    "contact_id": cid,
                    "ts": int((base + dt) * 1000),
                    **kw,
                },
            )
        )

    a("a1", "available", ["sales", "support"], 0, name="Ann Lee")
    a("a2", "available", ["support"], 0, name="Bob Stone")
    a("a3", "available", ["support"], 0, name="Cy Young")
    a("a4", "away", ["sales"], 0, name="Dee Park", reason="lunch")
    a("a5", "available", ["sales"], 0, name="Eve Moss")
    # c1: a1 answers, holds 10 s, ends, wraps up 30 s: handled 90 s
    c("calls", "c1", "offered", 5, queue="sales")
    c("calls", "c1", "answered", 10, agent_id="a1")
    a("a1", "busy", ["sales", "support"], 10)
    c("calls", "c1", "hold", 30)
    c("calls", "c1", "resume", 40)
    c("calls", "c1", "ended", 70)
    a("a1", "acw", ["sales", "support"], 70)
    c("calls", "c1", "wrapup_ended", 100)
    a("a1", "available", ["sales", "support"], 100)
    # c2 (chat): a2 misses it, a3 answers and transfers it to sales after 60 s
    c("chats", "c2", "offered", 15, queue="support")
    c("chats", "c2", "missed", 20, agent_id="a2")
    c("chats", "c2", "answered", 30, agent_id="a3")
    a("a3", "busy", ["support"], 30)
    c("chats", "c2", "transferred", 90, queue="sales")
    a("a3", "available", ["support"], 90)
    # c3: a5 answers, ends, and lingers in ACW
    c("calls", "c3", "offered", 110, queue="sales")
    c("calls", "c3", "answered", 120, agent_id="a5")
    a("a5", "busy", ["sales"], 120)
    c("calls", "c3", "ended", 150)
    a("a5", "acw", ["sales"], 150)
    return b"".join(out)


def api(w: Worker) -> dict:
    with urllib.request.urlopen(w.url("/api/agents"), timeout=10) as resp:
        return json.loads(resp.read())


def wait_api(w: Worker, predicate, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        body = api(w)
        if predicate(body):
            return body
        time.sleep(0.3)
    raise AssertionError(f"/api/agents never matched; last: {body}")


def by_agent(body: dict) -> dict:
    return {a["agent"]: a for a in body["agents"]}


def test_agent_view_figures_metrics_and_live_page(env: Env, workers: list[Worker], browser):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    workers.append(
        Worker(
            env,
            CCMON_AGENT_METRICS="true",
            CCMON_TIMEZONE=noon_zone(),
            CCMON_AGENT_ACW_LIMIT_S="60",
            CCMON_AGENT_AWAY_LIMIT_S="120",
        )
    )
    w = workers[0]
    base = time.time() - 280
    path = env.tmp / "agents.jsonl"
    path.write_bytes(recording(env, base))
    assert env.ccmon("replay", str(path)).returncode == 0
    body = wait_api(
        w,
        lambda b: (
            len(b["agents"]) == 5
            and by_agent(b)["a5"]["state"] == "acw"
            and by_agent(b)["a1"]["handled_today"] == 1
            and by_agent(b)["a3"]["handled_today"] == 1
            and by_agent(b)["a2"]["missed_today"] == 1
        ),
    )
    ag = by_agent(body)
    assert body["scope"].startswith("all agents")
    a1, a2, a3, a4, a5 = (ag[k] for k in ("a1", "a2", "a3", "a4", "a5"))
    assert (a1["name"], a1["state"], a1["since"], a1["queues"]) == (
        "Ann Lee",
        "available",
        pytest.approx(base + 100, abs=1e-3),
        ["sales", "support"],
    )
    assert (a1["handled_today"], a1["aht_s_today"], a1["missed_today"], a1["contact"]) == (
        1,
        pytest.approx(90.0),
        0,
        None,
    )
    assert a1["state_s_today"]["busy"] == pytest.approx(60.0) and a1["state_s_today"]["acw"] == pytest.approx(
        30.0
    )
    now = body["generated_at"]
    assert a1["occupancy_today"] == pytest.approx(90.0 / (now - base), abs=1e-5)  # ts are in ms
    assert (a2["missed_today"], a2["handled_today"], a2["occupancy_today"]) == (1, 0, 0.0)
    assert (a3["handled_today"], a3["aht_s_today"], a3["contact"]) == (1, pytest.approx(60.0), None)
    assert (a4["state"], a4["reason"], a4["over_limit"]) == ("away", "lunch", True)
    assert (a5["state"], a5["over_limit"]) == ("acw", True)
    assert {k: a5["contact"][k] for k in ("id", "queue", "channel", "phase")} == {
        "id": "c3",
        "queue": "sales",
        "channel": "voice",
        "phase": "acw",
    }
    assert a5["contact"]["since"] == pytest.approx(base + 150, abs=1e-3)
    assert not a1["over_limit"] and not a2["over_limit"]

    # the per-agent series (CCMON_AGENT_METRICS=true) say the same
    m = w.scrape()
    assert metric(m, "ccmon_agent_handled_total", agent="a1") == 1
    assert metric(m, "ccmon_agent_handle_seconds_total", agent="a1") == pytest.approx(90.0)
    assert metric(m, "ccmon_agent_handle_seconds_total", agent="a3") == pytest.approx(60.0)
    assert metric(m, "ccmon_agent_offers_missed_total", agent="a2") == 1
    assert metric(m, "ccmon_agent_state_seconds_total", agent="a1", state="busy") == pytest.approx(60.0)
    assert metric(m, "ccmon_agent_state", agent="a4", state="away") == 1
    assert metric(m, "ccmon_agent_state", agent="a4", state="available") == 0
    assert len([k for k in m if k[0].startswith("ccmon_agent_") and k[0] != "ccmon_agents"]) == 5 * 13

    # the page: its numbers are /api/agents', the timers tick, and a state change shows without reload
    # wait_for_function evaluates strings, which the CSP forbids (test_web_security)
    page = browser.new_page(viewport={"width": 1920, "height": 1080}, bypass_csp=True)
    page.goto(w.url("/agents"))
    page.wait_for_function("document.querySelectorAll('#rows tr').length === 5", timeout=15_000)
    page.evaluate("window.notReloaded = true")
    cells = page.evaluate("""() => [...document.querySelectorAll('#rows tr')].map(tr => [tr.dataset.agent,
        Object.fromEntries([...tr.querySelectorAll('td')].map(
            td => [td.dataset.col, [td.dataset.value ?? null, td.textContent]])),
        tr.classList.contains('over')])""")
    ag = by_agent(api(w))
    for agent_id, cols, over in cells:
        a = ag[agent_id]
        assert cols["name"][1].startswith(a["name"])
        assert cols["state"][0] == a["state"] and cols["reason"][0] == (a["reason"] or "")
        assert float(cols["time"][0]) == pytest.approx(a["since"])
        assert int(cols["handled"][0]) == a["handled_today"] and int(cols["missed"][0]) == a["missed_today"]
        if a["aht_s_today"] is None:
            assert cols["aht"] == ["", "–"]
        else:
            assert float(cols["aht"][0]) == pytest.approx(a["aht_s_today"])
        assert float(cols["occupancy"][0]) == pytest.approx(a["occupancy_today"], rel=0.05, abs=1e-9)
        assert cols["contact"][0] == (a["contact"]["id"] if a["contact"] else "")
        assert over == a["over_limit"]
    assert page.inner_text('tr[data-agent="a5"] td[data-col="contact"]').startswith("sales")
    assert "acw" in page.inner_text('tr[data-agent="a5"] td[data-col="contact"]')
    first = page.inner_text('tr[data-agent="a4"] td[data-col="time"]')
    page.wait_for_function(
        f"""() => document.querySelector('tr[data-agent="a4"] td[data-col="time"]')
                                      .textContent !== {json.dumps(first)}""",
        timeout=5_000,
    )

    def agents_shown() -> list[str]:
        """The agents the table shows, top to bottom."""
        return page.eval_on_selector_all("#rows tr", "rs => rs.map(r => r.dataset.agent)")

    # sorting and filtering
    page.select_option("#f-state", "available")
    assert sorted(agents_shown()) == ["a1", "a2", "a3"]
    page.select_option("#f-state", "")
    page.select_option("#f-queue", "support")
    assert sorted(agents_shown()) == ["a1", "a2", "a3"]
    page.select_option("#f-queue", "")
    page.click('th[data-col="handled"]')
    assert agents_shown()[:2] in (["a1", "a3"], ["a3", "a1"])
    page.click('th[data-col="time"]')
    page.screenshot(path=str(ARTIFACTS / "agents.png"), full_page=True)

    more = env.tmp / "more.jsonl"
    more.write_bytes(
        line(
            env.topics["agents"],
            "a2",
            {
                "event_id": "a2-later",
                "type": "state",
                "agent_id": "a2",
                "state": "away",
                "reason": "training",
                "queues": ["support"],
                "ts": int(time.time() * 1000),
            },
        )
    )
    assert env.ccmon("replay", str(more)).returncode == 0
    page.wait_for_function(
        """() => {
        const td = document.querySelector('tr[data-agent="a2"] td[data-col="state"]');
        return td && td.dataset.value === 'away' && window.notReloaded === true;
    }""",
        timeout=15_000,
    )
    assert page.inner_text('tr[data-agent="a2"] td[data-col="reason"]') == "training"

    w.stop(signal.SIGTERM)
    page.wait_for_function("document.body.classList.contains('stale')", timeout=20_000)
    assert "STALE DATA" in page.inner_text("#stale")
    page.close()
