"""The built-in wallboard in a real headless Chromium against a real worker."""

from __future__ import annotations

import math
import shutil
import signal
import time

import pytest

from producers.recording import line
from tests.integration.conftest import ROOT, Env, Worker, metric
from tests.integration.test_pipeline_e2e import scripted

pytestmark = pytest.mark.integration

ARTIFACTS = ROOT / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

# DOM data-kpi → (metric, window) on /metrics
KPI_METRICS = {
    "waiting": ("ccmon_queue_waiting_contacts", None),
    "service_level_today": ("ccmon_service_level_ratio", "today"),
    "service_level_15m": ("ccmon_service_level_ratio", "15m"),
    "abandon_ratio_15m": ("ccmon_abandon_ratio", "15m"),
    "asa_seconds_15m": ("ccmon_asa_seconds", "15m"),
    "aht_seconds_15m": ("ccmon_aht_seconds", "15m"),
    "agents_required": ("ccmon_agents_required", None),
    "csat_today": ("ccmon_csat_ratio", "today"),
    "nps_today": ("ccmon_nps_score", "today"),
    "fcr_today": ("ccmon_fcr_ratio", "today"),
    "ces_today": ("ccmon_ces_score", "today"),
}
# counts in the last 15 min have no gauge on /metrics: (queue, channel) → values by hand from the
# scripted recording (all of it lies within the last 15 min); every other card shows 0
COUNTS_15M = {("billing", "voice"): {"dequeued_15m": 2, "missed_15m": 3}}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def dom_values(page) -> dict:
    """(queue, channel, kpi) → data-value (None when shown as absent)."""
    return page.evaluate("""() => {
        const out = [];
        for (const card of document.querySelectorAll('section.card')) {
            for (const el of card.querySelectorAll('[data-kpi]'))
                out.push([card.dataset.queue, card.dataset.channel, el.dataset.kpi, el.dataset.value, el.textContent]);
            for (const el of card.querySelectorAll('[data-agents]'))
                out.push([card.dataset.queue, card.dataset.channel, 'agents:' + el.dataset.agents, el.dataset.value,
                          el.textContent]);
        }
        return out;
    }""")


def test_wallboard_shows_metrics_numbers_updates_and_goes_stale(env: Env, workers: list[Worker], browser):
    ARTIFACTS.mkdir(exist_ok=True)
    workers.append(Worker(env))
    w = workers[0]
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    page.goto(w.url("/wallboard"))
    page.wait_for_function("document.body.classList.contains('empty')", timeout=10_000)
    assert "No contacts yet" in page.inner_text("#empty")

    base = math.floor(time.time() / 10) * 10 - 430
    path, _ = scripted(env, base)
    assert env.ccmon("replay", str(path)).returncode == 0
    m = w.wait_settled(lambda m: metric(m, "ccmon_contacts_offered_total", queue="sales", channel="voice") == 6,
                       what="scripted recording applied")
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
    assert compared == 4 * (len(KPI_METRICS) + 2 + 5)  # 4 cards x (KPIs vs /metrics, 2 counts, 5 agent states)
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
    nps = metric(m, "ccmon_nps_score", queue="sales", channel="chat", window="today")
    assert shown[("sales", "chat", "nps_today")] == ("–" if nps is None else f"{nps:.0f}")
    oldest = float(next(v for q, c, k, v, _ in rows if (q, c, k) == ("sales", "voice", "oldest_wait_s")))
    assert abs(oldest - metric(m, "ccmon_queue_oldest_wait_seconds", queue="sales", channel="voice")) < 5
    page.screenshot(path=str(ARTIFACTS / "wallboard.png"), full_page=True)

    # new events arrive: the page follows without a reload
    more = env.tmp / "more.jsonl"
    more.write_bytes(line(env.topics["calls"], "n1", {"event_id": "n1", "type": "offered", "contact_id": "n1",
                                                      "queue": "sales", "ts": int(time.time() * 1000)}))
    assert env.ccmon("replay", str(more)).returncode == 0
    page.wait_for_function("""() => {
        const card = document.querySelector('section.card[data-queue="sales"][data-channel="voice"]');
        return card && card.querySelector('[data-kpi="waiting"]').dataset.value === '2';
    }""", timeout=15_000)

    # the worker stops: the stale warning appears
    w.stop(signal.SIGTERM)
    page.wait_for_function("document.body.classList.contains('stale')", timeout=20_000)
    assert page.is_visible("#stale") and "STALE DATA" in page.inner_text("#stale")
    page.screenshot(path=str(ARTIFACTS / "wallboard-stale.png"), full_page=True)
    page.close()
