"""The simulator's agents for the agent view: names, breaks with reasons, missed offers, agents who
linger in ACW, CES in surveys, and the agent-stuck incident; all of it valid for the worker."""

from collections import Counter, defaultdict

import pytest

from producers.scenario import Incident, Scenario, parse_incident
from producers.simulate import LINGER_FACTOR, MISSED_PAUSE_S, Simulator
from streams.dev.local_pipeline import LocalPipeline
from tests.unit.helpers import settings

START = 1_795_420_800.0  # 2026-11-23 09:00 UTC: a busy hour of the default profile
TOPICS = {"calls": "cc.calls", "chats": "cc.chats", "agents": "cc.agents"}


def run(seconds: float, scenario: Scenario | None = None, incidents=(), seed: int = 5):
    return Simulator(seed, START, scenario, tuple(incidents)).advance(START + seconds)


def core(events, until):
    p = LocalPipeline(settings())
    p.feed([p.record(TOPICS[t], v, key=k) for t, k, v in events], now=until + 1)
    p.sweep(until + 1)
    return p


def test_agents_have_names_breaks_with_reasons_missed_offers_and_ces():
    events = run(4 * 3600)
    states = [v for t, _, v in events if t == "agents"]
    names = {v["agent_id"]: v["name"] for v in states}
    assert len(names) == 50 and len(set(names.values())) == 50  # every agent, a distinct display name
    reasons = Counter(v.get("reason") for v in states if v["state"] == "away")
    assert {"break", "lunch", "missed-offer"} <= set(reasons) and None not in reasons
    lunches = Counter(v["agent_id"] for v in states if v.get("reason") == "lunch")
    assert max(lunches.values()) == 1  # lunch once a day
    contacts = [v for t, _, v in events if t != "agents"]
    missed = [v for v in contacts if v["type"] == "missed"]
    offered = sum(1 for v in contacts if v["type"] == "offered")
    assert 0.01 * offered < len(missed) < 0.08 * offered
    surveys = [v for v in contacts if v["type"] == "survey"]
    assert 0.4 < sum("ces" in v for v in surveys) / len(surveys) < 0.8
    assert all(1 <= v["ces"] <= 7 for v in surveys if "ces" in v)
    p = core(events, START + 4 * 3600)
    assert [(d.reason, d.detail) for d in p.dead] == []
    rows = {r.agent: r for r in p.agent_store.rows(START + 4 * 3600)}
    assert sum(r.missed_total for r in rows.values()) == len(missed)
    assert rows["agent-001"].name == names["agent-001"]


def test_after_a_missed_offer_the_contact_waits_on_and_the_agent_pauses():
    events = run(2 * 3600)
    by_contact = defaultdict(list)
    for t, k, v in events:
        if t != "agents":
            by_contact[k].append(v)
    paused = {
        (v["agent_id"], v["ts"]) for t, _, v in events if t == "agents" and v.get("reason") == "missed-offer"
    }
    checked = 0
    for evs in by_contact.values():
        for i, v in enumerate(evs):
            if v["type"] == "missed":
                if i + 1 < len(evs):  # the contact is still waiting: another offer, an answer or an end
                    assert evs[i + 1]["type"] in ("missed", "answered", "abandoned", "transferred")
                checked += (v["agent_id"], v["ts"]) in paused
    assert checked > 5
    backs = [v for t, _, v in events if t == "agents"]
    first = next(v for v in backs if v.get("reason") == "missed-offer")
    after = next(v for v in backs if v["agent_id"] == first["agent_id"] and v["ts"] > first["ts"])
    assert after["state"] == "available" and after["ts"] - first["ts"] == pytest.approx(
        MISSED_PAUSE_S * 1000, abs=1
    )


def test_lingering_agents_spend_longer_in_acw():
    events = run(6 * 3600, Scenario.default().replace(away_probability=0.0, miss_probability=0.0))
    acw_s: dict[str, list[float]] = defaultdict(list)
    last: dict[str, dict] = {}
    for t, _, v in events:
        if t == "agents":
            prev = last.get(v["agent_id"])
            if prev is not None and prev["state"] == "acw":
                acw_s[v["agent_id"]].append((v["ts"] - prev["ts"]) / 1000)
            last[v["agent_id"]] = v
    mean = {a: sum(x) / len(x) for a, x in acw_s.items() if len(x) >= 10}
    lingerers = {f"agent-{n:03d}" for n in range(46, 51)}  # the last tenth of 50 agents
    slow = [m for a, m in mean.items() if a in lingerers]
    quick = [m for a, m in mean.items() if a not in lingerers]
    assert slow and quick
    assert sum(slow) / len(slow) > (LINGER_FACTOR / 2) * sum(quick) / len(quick)


def test_agent_stuck_incident_keeps_the_agent_in_acw():
    inc = parse_incident("agent-stuck:agent-007@600+1800")
    assert inc == Incident("agent-stuck", 600.0, 1800.0, agent="agent-007")
    events = run(3600, incidents=[inc])
    mine = [v for t, _, v in events if t == "agents" and v["agent_id"] == "agent-007"]

    def state_at(t: float) -> str:
        return [v for v in mine if v["ts"] / 1000 <= t][-1]["state"]

    # from the moment it is in ACW after the incident began (at once, or after the contact in hand),
    # it stays there until the incident ends, then becomes available
    entered = min(
        t
        for t in [START + 600] + [v["ts"] / 1000 for v in mine if v["ts"] / 1000 >= START + 600]
        if state_at(t) == "acw"
    )
    assert entered < START + 1200
    assert all(v["state"] == "acw" for v in mine if entered <= v["ts"] / 1000 < START + 2400)
    back = next(v for v in mine if v["ts"] / 1000 >= START + 2400)
    assert back["state"] == "available" and back["ts"] / 1000 == pytest.approx(START + 2400, abs=0.01)
    p = core(events, START + 3600)
    assert p.dead == []
    row = p.agent_store.row("agent-007", START + 3600)
    assert row is not None and row.state_s_total["acw"] >= START + 2400 - entered


@pytest.mark.parametrize("text", ["agent-stuck:agent-1@10", "agent-stuck:@10+5", "agent-stuck:a b@1+2"])
def test_bad_agent_stuck_incidents(text):
    with pytest.raises(ValueError):
        parse_incident(text)
