"""The built-in wallboard in a real headless Chromium against a real worker."""

from __future__ import annotations

import math
import re
import signal
import time

import pytest

from producers.recording import line
from streams.metrics import catalog
from tests.integration.recordings import scripted
from tests.integration.support import ARTIFACTS, Env, Worker, metric

pytestmark = pytest.mark.integration

# DOM data-kpi → (metric, window) on /metrics, for every gauge cell the catalog declares (the
# oldest wait moves with the clock: compared apart; staffed is a sum of ccmon_agents)
KPI_METRICS = {
    t.field: (k.name, t.window)
    for k, t in catalog.tiles()
    if k.type == "gauge" and t.field not in ("oldest_wait_s", "staffed")
}
CHANNELS = {t.field: t.channels for _, t in catalog.tiles()}
# counts in the last 15 min have no gauge on /metrics: (queue, channel) → values by hand from the
# scripted recording (all of it lies within the last 15 min); every other card shows 0
COUNTS_15M = {("billing", "voice"): {"dequeued_15m": 2, "missed_15m": 3}}


def dom_values(page) -> dict:
    """(queue, channel, kpi) → data-value (None when shown as absent)."""
    return page.evaluate("""() => {
        const out = [];
        for (const card of document.querySelectorAll('section.card')) {
            for (const el of card.querySelectorAll('[data-kpi]'))
                out.push([card.dataset.queue, card.dataset.channel, el.dataset.kpi, el.dataset.value,
                          el.textContent]);
            for (const el of card.querySelectorAll('[data-agents]'))
                out.push([card.dataset.queue, card.dataset.channel, 'agents:' + el.dataset.agents,
                          el.dataset.value,
                          el.textContent]);
        }
        return out;
    }""")


def test_wallboard_shows_metrics_numbers_updates_and_goes_stale(env: Env, workers: list[Worker], browser):
    ARTIFACTS.mkdir(exist_ok=True)
    workers.append(Worker(env))
    w = workers[0]
    # wait_for_function evaluates strings, which the CSP forbids (test_web_security)
    page = browser.new_page(viewport={"width": 1920, "height": 1080}, bypass_csp=True)
    page.goto(w.url("/wallboard"))
    page.wait_for_function("document.body.classList.contains('empty')", timeout=10_000)
    assert "No contacts yet" in page.inner_text("#empty")

    base = math.floor(time.time() / 10) * 10 - 430
    path, _ = scripted(env, base)
    assert env.ccmon("replay", str(path)).returncode == 0
    m = w.wait_settled(
        lambda m: metric(m, "ccmon_contacts_offered_total", queue="sales", channel="voice") == 6,
        what="scripted recording applied",
    )
    page.wait_for_function("document.querySelectorAll('section.card').length === 4", timeout=10_000)
    time.sleep(1.5)  # one more poll after the data settled
    m = w.scrape()
    rows = dom_values(page)
    compared = 0
    for queue, channel, kpi, value, text in rows:
        if kpi.startswith("agents:"):
            expected = metric(m, "ccmon_agents", queue=queue, state=kpi.split(":")[1])
        elif kpi in KPI_METRICS:
            name, window = KPI_METRICS[kpi]
            labels = {"queue": queue, "channel": channel, **({"window": window} if window else {})}
            expected = metric(m, name, **labels)
        elif kpi in ("dequeued_15m", "missed_15m"):
            expected = COUNTS_15M.get((queue, channel), {}).get(kpi, 0)
            assert text == str(expected), (queue, channel, kpi, text)
        else:
            continue
        if expected is None:
            assert value == "" and text == "–", (queue, channel, kpi, value)
        else:
            assert float(value) == pytest.approx(expected, rel=1e-12, abs=1e-12), (queue, channel, kpi)
        compared += 1
    cards = {(q, c) for q, c, *_ in rows}
    shown_here = len([kpi for _, c in cards for kpi in KPI_METRICS if c in (CHANNELS[kpi] or (c,))])
    assert len(cards) == 4 and compared == shown_here + 4 * (
        2 + 5
    )  # KPIs vs /metrics, 2 counts, 5 agent states
    # the formatted text is the value: e.g. sales voice SL today 1/3 -> "33.3%", ASA 20.5 s -> "21 s"
    shown = {(q, c, k): t for q, c, k, _, t in rows}
    assert shown[("sales", "voice", "service_level_15m")] == "33.3%"
    assert shown[("sales", "voice", "asa_seconds_15m")] == "21 s"
    assert shown[("sales", "voice", "aht_seconds_15m")] == "3:15"
    # billing: SL 15m = 1 / (1 + 1 - 0 + 2 dequeued) -> "25.0%"; abandonment 1 / 2 -> "50.0%"
    assert shown[("billing", "voice", "service_level_15m")] == "25.0%"
    assert shown[("billing", "voice", "abandon_ratio_15m")] == "50.0%"
    ces = metric(m, "ccmon_ces_score", queue="billing", channel="voice", window="today")
    assert shown[("billing", "voice", "ces_today")] == ("–" if ces is None else f"{ces:.1f}")
    # first response on the chat card only: h1 offered at 10 s, first reply at 40 s -> "30 s"
    assert shown[("sales", "chat", "first_response_seconds_15m")] == "30 s"
    assert ("sales", "voice", "first_response_seconds_15m") not in shown
    nps = metric(m, "ccmon_nps_score", queue="sales", channel="chat", window="today")
    assert shown[("sales", "chat", "nps_today")] == ("–" if nps is None else f"{nps:.0f}")
    oldest = float(next(v for q, c, k, v, _ in rows if (q, c, k) == ("sales", "voice", "oldest_wait_s")))
    exported = metric(m, "ccmon_queue_oldest_wait_seconds", queue="sales", channel="voice")
    assert exported is not None and abs(oldest - exported) < 5
    page.screenshot(path=str(ARTIFACTS / "wallboard.png"), full_page=True)

    # new events arrive: the page follows without a reload
    more = env.tmp / "more.jsonl"
    more.write_bytes(
        line(
            env.topics["calls"],
            "n1",
            {
                "event_id": "n1",
                "type": "offered",
                "contact_id": "n1",
                "queue": "sales",
                "ts": int(time.time() * 1000),
            },
        )
    )
    assert env.ccmon("replay", str(more)).returncode == 0
    page.wait_for_function(
        """() => {
        const card = document.querySelector('section.card[data-queue="sales"][data-channel="voice"]');
        return card && card.querySelector('[data-kpi="waiting"]').dataset.value === '2';
    }""",
        timeout=15_000,
    )

    # the worker stops: the stale warning appears
    w.stop(signal.SIGTERM)
    page.wait_for_function("document.body.classList.contains('stale')", timeout=20_000)
    assert page.is_visible("#stale") and "STALE DATA" in page.inner_text("#stale")
    page.screenshot(path=str(ARTIFACTS / "wallboard-stale.png"), full_page=True)
    page.close()


WIDE = "W" * 64  #: the longest queue name validation allows, in the widest letter

FITS = """() => {
    // every text of a card: its box inside the card, and its content inside its box
    const bad = [], inside = (r, c) => r.left >= c.left - 0.5 && r.right <= c.right + 0.5
                                        && r.top >= c.top - 0.5 && r.bottom <= c.bottom + 0.5;
    for (const card of document.querySelectorAll('section.card')) {
        const c = card.getBoundingClientRect();
        for (const e of card.querySelectorAll('h2, .label, .value, [data-agents], .agents span')) {
            const r = e.getBoundingClientRect();
            if (!inside(r, c) || (e.clientWidth > 0 && e.scrollWidth > e.clientWidth))
                bad.push([card.dataset.queue.slice(0, 8), e.dataset.kpi || e.className || e.tagName,
                          e.textContent,
                          Math.round(r.right), Math.round(c.right), e.scrollWidth, e.clientWidth]);
        }
    }
    return bad;
}"""


def worst_case(env: Env, now_ms: int) -> list[bytes]:
    """Real events giving the widest values: 1,000 agents staffed and 1,000 contacts waiting on a
    64-character queue whose only answer waited 59:59 (ASA) and whose oldest contact has waited an
    hour; on sales an AHT of 1:02:03 and a service level of 100.0 %; on billing 100.0 % abandoned."""
    t = env.topics
    rows: list[tuple[int, bytes]] = []

    def contact(cid: str, queue: str, *steps: tuple[str, float]) -> None:
        for i, (etype, ago) in enumerate(steps):
            extra = (
                {"queue": queue}
                if etype == "offered"
                else {"agent_id": "agent-0000"}
                if etype == "answered"
                else {}
            )
            ts = now_ms - int(ago * 1000)
            rows.append(
                (
                    ts,
                    line(
                        t["calls"],
                        cid,
                        {"event_id": f"{cid}-{i}", "type": etype, "contact_id": cid, "ts": ts, **extra},
                    ),
                )
            )

    for n in range(1000):
        ts = now_ms - 3_700_000
        rows.append(
            (
                ts,
                line(
                    t["agents"],
                    f"agent-{n:04d}",
                    {
                        "event_id": f"s{n}",
                        "type": "state",
                        "agent_id": f"agent-{n:04d}",
                        "state": "available",
                        "queues": [WIDE, "sales", "billing"],
                        "ts": ts,
                    },
                ),
            )
        )
        contact(f"w{n}", WIDE, ("offered", 3599 - n))
    contact("asa", WIDE, ("offered", 3620), ("answered", 21))
    contact("aht", "sales", ("offered", 3740), ("answered", 3730), ("ended", 10), ("wrapup_ended", 7))
    contact("sl", "sales", ("offered", 60), ("answered", 50))
    contact("gone", "billing", ("offered", 30), ("abandoned", 20))
    return [raw for _, raw in sorted(rows, key=lambda r: r[0])]


def test_worst_case_values_fit_their_cards_at_1080p_and_720p(env: Env, workers: list[Worker], browser):
    ARTIFACTS.mkdir(exist_ok=True)
    workers.append(Worker(env))
    w = workers[0]
    rows = worst_case(env, int(time.time() * 1000))
    (env.tmp / "worst.jsonl").write_bytes(b"".join(rows))
    assert env.ccmon("replay", str(env.tmp / "worst.jsonl"), "--quiet").returncode == 0
    w.wait_settled(
        lambda m: sum(v for (n, _), v in m.items() if n == "ccmon_events_total") == len(rows),
        what="the worst-case events",
    )
    # wait_for_function evaluates strings, which the CSP forbids (test_web_security)
    page = browser.new_page(viewport={"width": 1920, "height": 1080}, bypass_csp=True)
    page.goto(w.url("/wallboard"))
    shots = []
    for width, height in ((1920, 1080), (1280, 720)):
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_function("document.querySelectorAll('section.card').length === 3", timeout=10_000)
        time.sleep(1.5)  # a poll (and its fit) at this size
        shown = {(q, k): text for q, _, k, _, text in dom_values(page)}
        assert shown[(WIDE, "waiting")] == "1000" and shown[(WIDE, "agents:available")] == "1000"
        assert shown[(WIDE, "staffed")] == "1000" and shown[(WIDE, "asa_seconds_15m")] == "59:59"
        assert re.fullmatch(
            r"59:5\d|1:0\d:\d\d", shown[(WIDE, "oldest_wait_s")]
        )  # an hour, by the wall clock
        assert shown[("sales", "aht_seconds_15m")] == "1:02:03"
        assert shown[("sales", "service_level_15m")] == "100.0%" == shown[("billing", "abandon_ratio_15m")]
        path = ARTIFACTS / f"wallboard-worst-{width}x{height}.png"
        page.screenshot(path=str(path), full_page=True)
        shots.append(path)
        overflowing = page.evaluate(FITS)
        assert overflowing == [], (
            f"{width}x{height}: (queue, cell, text, right, card right, scrollWidth, "
            f"clientWidth): {overflowing}"
        )
    page.close()
    print("worst-case screenshots: " + ", ".join(map(str, shots)))
