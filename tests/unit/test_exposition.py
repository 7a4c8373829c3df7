"""The cached KPI exposition: valid text format, equal to the store's views, and never stale."""

import pytest

from streams.dev.local_pipeline import LocalPipeline
from streams.metrics import catalog
from streams.metrics.kpi_exposition import KpiExposition
from tests.unit.helpers import (
    AGENTS,
    CALLS,
    CHATS,
    SCENARIO,
    Clock,
    agent,
    at,
    ev,
    feed,
    sample,
    samples,
    settings,
)


def test_text_matches_hand_computed_values_and_every_family_is_typed_once():
    clock = Clock(at("10:10:00"))
    p = LocalPipeline(settings())
    feed(p, SCENARIO + [(AGENTS, agent("a1", "busy", ["sales", "support"], at("10:00:00")))], clock.now)
    text = KpiExposition(lambda: p.store, clock).render()
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(types) == len(set(types)) == len(catalog.KPIS) == 46
    m = samples(text)
    # no customer in the scenario (and no key): none of the customer families has a sample
    customer = (
        "ccmon_contacts_repeat",
        "ccmon_abandons_",
        "ccmon_abandon_recovery",
        "ccmon_resolution",
        "ccmon_contacts_per_case",
    )
    assert not [n for n, _ in m if n.startswith((*customer, "ccmon_contacts_fcr", "ccmon_customers_at_risk"))]
    assert not [n for n, _ in m if n.startswith(("ccmon_repeat", "ccmon_operational_fcr"))]
    q = {"queue": "sales", "channel": "voice"}
    assert sample(m, "ccmon_contacts_offered_total", **q) == 6
    assert sample(m, "ccmon_contacts_short_abandoned_total", **q) == 1
    assert sample(m, "ccmon_wait_seconds_bucket", **q, outcome="answered", le="20.0") == 1
    assert sample(m, "ccmon_wait_seconds_bucket", **q, outcome="answered", le="+Inf") == 2
    assert sample(m, "ccmon_wait_seconds_sum", **q, outcome="answered") == 41.0
    assert sample(m, "ccmon_handle_seconds_count", **q) == 2
    assert sample(m, "ccmon_queue_waiting_contacts", **q) == 1
    assert sample(m, "ccmon_queue_oldest_wait_seconds", **q) == 120.0  # c5 offered 10:08:00
    # 15m: answered 2, abandoned 2 of which 1 short -> abandon 1/3, SL 1/3
    assert sample(m, "ccmon_abandon_ratio", **q, window="15m") == 1 / 3
    assert sample(m, "ccmon_service_level_ratio", **q, window="15m") == 1 / 3
    assert sample(m, "ccmon_csat_ratio", **q, window="15m") is None  # no surveys: absent, not 0
    # prediction (docs/kpis.md "Prediction"), by hand: a1 busy is sales' only agent, c5 waits, AHT
    # 15m 195 s. EWT (erlang): c5 and the new contact need 2 completions of 1 agent: 2 × 195 s.
    assert sample(m, "ccmon_ewt_seconds", **q) == 390.0
    # interval 10:00-10:30: 1 of 3 within T so far; c5 (past T) completes at 10:13:15, a miss; 1
    # offered in 5m: 1/300 per s, 4 expected until 10:30, no backlog (the agent drains it faster),
    # each at Erlang C with N = 1, A = 195/300 = 0.65: 1 − 0.65·e^(−0.35·20/195) = 0.372919
    assert sample(m, "ccmon_service_level_projected_ratio", **q, horizon="interval") == pytest.approx(
        (1 + 4 * 0.372919) / 8, abs=1e-6
    )
    # the day adds 6 offered in 36,600 s since midnight, over the 48,600 s after 10:30: 7.967213
    # more, at N = 1, A = 0.031967: SL 0.971054
    assert sample(m, "ccmon_service_level_projected_ratio", **q, horizon="day") == pytest.approx(
        (1 + 4 * 0.372919 + 7.967213 * 0.971054) / (8 + 7.967213), abs=1e-6
    )
    assert sample(m, "ccmon_service_level_breach_seconds", **q) == 0.0  # below target already
    assert sample(m, "ccmon_agents", queue="support", state="busy") == 1
    assert sample(m, "ccmon_agents", queue="support", state="available") == 0


def test_cached_text_follows_new_facts_the_clock_and_sliding_windows():
    clock = Clock(at("10:10:00"))
    p = LocalPipeline(settings())
    feed(p, SCENARIO, clock.now)
    exposition = KpiExposition(lambda: p.store, clock)
    first = samples(exposition.render())
    q = {"queue": "sales", "channel": "voice"}
    assert samples(exposition.render()) == first  # unchanged state, same second: same text

    clock.now += 1  # same bucket: only the oldest wait moves
    m = samples(exposition.render())
    assert sample(m, "ccmon_queue_oldest_wait_seconds", **q) == 121.0
    assert {k: v for k, v in m.items() if "oldest" not in k[0]} == {
        k: v for k, v in first.items() if "oldest" not in k[0]
    }

    feed(p, [(CALLS, ev("answered", "c5", at("10:10:01"), agent_id="a9"))], clock.now)
    m = samples(exposition.render())
    assert sample(m, "ccmon_contacts_answered_total", **q) == 3
    assert sample(m, "ccmon_queue_waiting_contacts", **q) == 0
    assert sample(m, "ccmon_queue_oldest_wait_seconds", **q) == 0

    clock.now = at("10:19:00")  # 15m window now starts after 10:04:00: c1, c2, c3 and c4's answer left it
    m = samples(exposition.render())
    # buckets strictly after 10:04:00 count: only c5 (10:08:00); c6 at 10:04:00 just left
    assert sample(m, "ccmon_offered_contacts", **q, window="15m") == 1
    assert sample(m, "ccmon_offered_contacts", **q, window="1h") == 6

    feed(p, [(CHATS, ev("offered", "x1", at("10:18:59"), queue="web"))], clock.now)
    m = samples(exposition.render())
    assert sample(m, "ccmon_queue_waiting_contacts", queue="web", channel="chat") == 1


def test_a_rebuilt_store_is_rendered_from_scratch():
    clock = Clock(at("10:10:00"))
    p = LocalPipeline(settings())
    feed(p, SCENARIO, clock.now)
    store = [p.store]
    exposition = KpiExposition(lambda: store[0], clock)
    assert (
        sample(samples(exposition.render()), "ccmon_contacts_offered_total", queue="sales", channel="voice")
        == 6
    )
    store[0] = LocalPipeline(settings()).store  # e.g. the partitions moved to another worker
    assert not [k for k in samples(exposition.render()) if k[0].startswith("ccmon_contacts")]


def test_one_writer_writes_the_registry_as_prometheus_client_would_and_the_agent_families():
    """``page`` is all of /metrics: the registry's families in exactly generate_latest's text (with
    label values to escape, a histogram, an info and _created samples), then the per-agent ones."""
    from prometheus_client import CollectorRegistry, Gauge, Info, generate_latest

    from streams.metrics.kpi_exposition import registry_text
    from streams.metrics.worker_metrics import ProcessMetrics, StateSizeCollector

    registry = CollectorRegistry(auto_describe=False)
    metrics = ProcessMetrics(registry, ["cc.calls", 'we"ird\\topic\n'])
    metrics.events_child("cc.calls", "accepted").inc(3)
    metrics.lag_child("cc.calls").observe(0.3)
    metrics.dead_letter_child("lifecycle").inc()
    Gauge("ccmon_test_up", "Help with \\ and\nnewline", registry=registry).set(1)
    Info("ccmon_test_build", "Build", registry=registry).info({"version": "1"})
    registry.register(StateSizeCollector(lambda: {"lifecycle": 4, "queues": 2}))
    assert registry_text(registry) == generate_latest(registry).decode()

    clock = Clock(at("10:10:00"))
    p = LocalPipeline(settings())
    feed(p, SCENARIO + [(AGENTS, agent('a"1', "busy", ["sales"], at("10:00:00")))], clock.now)
    exposition = KpiExposition(lambda: p.store, clock)
    page = exposition.page(registry, (p.agent_store, None)).decode()
    head = exposition.render() + generate_latest(registry).decode()
    assert page.startswith(head) and page[len(head) :].startswith("# HELP ccmon_agent_state ")
    types = [line.split()[2:] for line in page.splitlines() if line.startswith("# TYPE ccmon_agent_")]
    assert types == [[k.name, k.type] for k in catalog.AGENT_KPIS]
    m = samples(page)
    assert sample(m, "ccmon_agent_state", agent='a"1', state="busy") == 1
    assert sample(m, "ccmon_agent_state", agent='a"1', state="away") == 0
    assert "ccmon_agent_" not in exposition.page(registry).decode()  # off unless asked for


def test_names_select_families_as_prometheus_client_exporters_do():
    """``/metrics?name[]=a&name[]=b`` (prometheus_client's convention): only the families named,
    KPI, process and per-agent alike, each exactly as the whole page writes it."""
    from prometheus_client import CollectorRegistry, generate_latest

    from streams.metrics.worker_metrics import ProcessMetrics

    registry = CollectorRegistry(auto_describe=False)
    ProcessMetrics(registry, ["cc.calls"]).events_child("cc.calls", "accepted").inc(3)
    clock = Clock(at("10:10:00"))
    p = LocalPipeline(settings())
    feed(p, SCENARIO + [(AGENTS, agent("a1", "busy", ["sales"], at("10:00:00")))], clock.now)
    exposition = KpiExposition(lambda: p.store, clock)
    whole = exposition.page(registry, (p.agent_store, None)).decode()
    names = ["ccmon_contacts_offered_total", "ccmon_events_total", "ccmon_agent_handled_total"]
    some = exposition.page(registry, (p.agent_store, None), names).decode()
    families = [line.split()[2] for line in some.splitlines() if line.startswith("# TYPE ")]
    assert families == names
    assert all(line in whole.splitlines() for line in some.splitlines())
    offered = [line for line in whole.splitlines() if line.startswith("ccmon_contacts_offered_total{")]
    assert offered and all(line in some.splitlines() for line in offered)
    assert "ccmon_events_total" in generate_latest(registry.restricted_registry(names)).decode()
    assert exposition.page(registry, None, ["ccmon_contacts_offered_total"]).count(b"# TYPE") == 1


def test_each_family_asked_for_alone_is_written_as_the_whole_page_writes_it():
    """``name[]=`` views a changed series with only the parts its families read (no EWT grading
    for a counter): each family alone, from a fresh cache, line for line as in the whole page.
    The scenario has windows, a prediction and graded waits, so no part is vacuous here."""
    clock = Clock(at("10:10:00"))
    p = LocalPipeline(settings())
    feed(p, SCENARIO + [(AGENTS, agent("a1", "available", ["sales", "support"], at("10:00:00")))], clock.now)
    whole = KpiExposition(lambda: p.store, clock).render()
    families: dict[str, list[str]] = {}
    for line in whole.splitlines():
        if line.startswith("# TYPE "):
            current = families.setdefault(line.split()[2], [])
        if not line.startswith("# HELP "):
            current.append(line)
    for name in ("ccmon_ewt_error_seconds", "ccmon_ewt_seconds", "ccmon_service_level_ratio"):
        assert len(families[name]) > 1, f"the scenario exports no {name}"
    for kpi in catalog.KPIS:
        alone = KpiExposition(lambda: p.store, clock).render(frozenset([kpi.name]))
        assert [line for line in alone.splitlines() if not line.startswith("# HELP ")] == families[kpi.name]
    # and a cached whole page is not overwritten by a partial view: the next whole render is equal
    exposition = KpiExposition(lambda: p.store, clock)
    exposition.render(frozenset(["ccmon_contacts_offered_total"]))
    assert exposition.render() == whole
