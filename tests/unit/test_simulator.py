"""The simulator: scenarios, incidents and compressed time."""

from collections import Counter

import orjson
import pytest

from producers.scenario import Scenario, parse, parse_incident
from producers.simulate import Simulator
from streams.dev.local_pipeline import LocalPipeline
from streams.errors import CcmonError
from tests.unit.helpers import settings

START = 1_795_420_800.0  # 2026-11-23 08:00 UTC


def kinds(events, queue=None):
    out: Counter[str] = Counter()
    for topic, _, value in events:
        if isinstance(value, bytes):
            out["bad"] += 1
        elif topic == "agents":
            out["agent:" + value["state"]] += 1
        elif queue is None or value.get("queue", queue) == queue:
            out[value["type"]] += 1
    return out


def abandons_by_queue(events):
    queue_of: dict[str, str] = {}
    out: Counter[str] = Counter()
    for _, _, value in events:
        if isinstance(value, dict) and value.get("type") in ("offered", "transferred"):
            queue_of[value["contact_id"]] = value["queue"]
        if isinstance(value, dict) and value.get("type") == "abandoned":
            out[queue_of[value["contact_id"]]] += 1
    return out


def test_abandon_spike_hits_its_queue_only():
    calm = Simulator(3, START).advance(START + 1800)
    spiked = Simulator(3, START, incidents=(parse_incident("abandon-spike:billing@300+900"),)).advance(
        START + 1800
    )
    a, b = abandons_by_queue(calm), abandons_by_queue(spiked)
    assert b["billing"] >= 5 * max(1, a["billing"]) and b["billing"] >= 20
    assert b["sales"] <= a["sales"] + 5


def test_agents_away_and_bad_input_bursts():
    events = Simulator(
        4, START, incidents=(parse_incident("agents-away:10@60+600"), parse_incident("bad-input:30@120"))
    ).advance(START + 900)
    k = kinds(events)
    assert k["bad"] == 30
    assert k["agent:away"] >= 10
    p = LocalPipeline(settings())
    names = {"calls": "cc.calls", "chats": "cc.chats", "agents": "cc.agents"}
    p.feed([p.record(names[t], v, key=key) for t, key, v in events], now=START + 901)
    assert sum(n for (topic, result), n in p.results.items() if result == "rejected") == 30


def test_day_profile_shapes_arrivals():
    doc = orjson.loads(
        orjson.dumps(
            {
                "queues": [
                    {
                        "name": "q",
                        "channel": "voice",
                        "per_hour": 600,
                        "talk_mean_s": 60,
                        "patience_mean_s": 60,
                    }
                ],
                "agents": [{"count": 50, "channel": "voice", "skills": ["q"]}],
                "profile": {"hourly": [0.0] * 8 + [1.0] + [0.0] * 15},
            }
        )
    )
    sc = parse(doc, "test")
    events = Simulator(1, START - 3600, sc).advance(START + 3600)  # 07:00-09:00 UTC; only 08-09 has traffic
    offered = [v["ts"] / 1000 for t, k, v in events if isinstance(v, dict) and v.get("type") == "offered"]
    assert offered and min(offered) >= START and 450 <= len(offered) <= 750


def test_chat_agents_take_several_chats_at_once_and_voice_agents_one():
    events = Simulator(2, START, Scenario.default().scaled(rate=3, agents=0.3)).advance(START + 1800)
    agent_of: dict = {}
    open_now: Counter = Counter()
    peak = {"chats": 0, "calls": 0}
    for topic, _, v in events:
        if topic in peak and isinstance(v, dict):
            if v["type"] == "answered":
                agent_of[v["contact_id"]] = v["agent_id"]
                open_now[v["agent_id"]] += 1
                peak[topic] = max(peak[topic], open_now[v["agent_id"]])
            elif v["type"] in ("ended", "transferred") and v["contact_id"] in agent_of:
                open_now[agent_of.pop(v["contact_id"])] -= 1
    assert peak == {"chats": 2, "calls": 1}  # default chat concurrency 2; voice one at a time


@pytest.mark.parametrize(
    "doc, needle",
    [
        ({}, "needs at least one [[queues]]"),
        (
            {
                "queues": [
                    {"name": "a b", "channel": "voice", "per_hour": 1, "talk_mean_s": 1, "patience_mean_s": 1}
                ]
            },
            "queues[0].name",
        ),
        (
            {
                "queues": [
                    {"name": "q", "channel": "fax", "per_hour": 1, "talk_mean_s": 1, "patience_mean_s": 1}
                ]
            },
            "queues[0].channel",
        ),
        (
            {
                "queues": [
                    {"name": "q", "channel": "voice", "per_hour": -1, "talk_mean_s": 1, "patience_mean_s": 1}
                ]
            },
            "per_hour must be > 0",
        ),
        (
            {
                "queues": [
                    {"name": "q", "channel": "voice", "per_hour": 1, "talk_mean_s": 1, "patience_mean_s": 1}
                ],
                "agents": [{"count": 1, "channel": "voice", "skills": ["nope"]}],
            },
            "skills must list",
        ),
        (
            {
                "queues": [
                    {"name": "q", "channel": "voice", "per_hour": 1, "talk_mean_s": 1, "patience_mean_s": 1}
                ],
                "agents": [{"count": 1, "channel": "voice", "skills": ["q"]}],
                "profile": {"hourly": [1]},
            },
            "24 multipliers",
        ),
    ],
)
def test_bad_scenarios_say_what_is_wrong(doc, needle):
    with pytest.raises(CcmonError) as err:
        parse(doc, "s.toml")
    assert needle in str(err.value)


@pytest.mark.parametrize("text", ["spike:q@1+2", "abandon-spike:q@10", "agents-away:0@1+5", "bad-input:x@3"])
def test_bad_incidents(text):
    with pytest.raises(ValueError):
        parse_incident(text)


def test_compressed_time_spans_speed_times_duration_and_ends_at_the_wall_clock(tmp_path):
    import asyncio
    import time

    from producers.simulate import run

    out = tmp_path / "fast.jsonl"
    wall0 = time.time()
    n = asyncio.run(
        run(
            settings(),
            seed=1,
            duration=30,
            backfill=0,
            output=out,
            speed=20,
            scenario=Scenario.default().flat(),
        )
    )  # as much traffic at 03:00 as at 11:00
    ts = [orjson.loads(line)["value"]["ts"] / 1000 for line in out.read_bytes().splitlines()]
    assert n == len(ts) > 100
    # 30 s at 20x = 600 s of simulated time, ending when the 30 s would end
    assert wall0 - 600 - 1 <= min(ts) <= wall0 - 560
    assert max(ts) <= time.time() + 30 + 1


@pytest.mark.parametrize("seed", [1, 2, 3, 11])
def test_simulated_traffic_is_always_valid_even_with_many_transfers_and_holds(seed):
    # a hold scheduled after an earlier transfer once produced hold/resume for a contact that was
    # waiting in another queue: rejected by the worker. Frequent transfers and holds expose it.
    sc = Scenario.default().replace(transfer_probability=0.4, hold_probability=0.6)
    events = Simulator(seed, START, sc).advance(START + 2 * 3600)
    p = LocalPipeline(settings())
    names = {"calls": "cc.calls", "chats": "cc.chats", "agents": "cc.agents"}
    p.feed([p.record(names[t], v, key=key) for t, key, v in events], now=START + 2 * 3600 + 1)
    assert [(d.reason, d.detail) for d in p.dead] == []
    assert sum(n for (t, r), n in p.results.items() if r == "accepted") > 1000


def test_flat_profile_gives_the_same_traffic_at_any_hour():
    """Tests and benchmarks use it: their workload must not depend on when they run."""

    def shape(start: float, sc: Scenario) -> list:
        return [
            (t, v["type"] if isinstance(v, dict) else "bad", round(v["ts"] / 1000 - start, 3))
            for t, _, v in Simulator(8, start, sc).advance(start + 3600)
        ]

    night, day = START - 6 * 3600, START + 4 * 3600  # 02:00 and 12:00 UTC
    flat = Scenario.default().flat()
    assert shape(night, flat) == shape(day, flat) and len(shape(day, flat)) > 2000
    assert len(shape(night, Scenario.default())) < len(shape(day, Scenario.default())) / 3  # the day profile


def test_chat_agents_reply_first_within_the_segment_and_calls_have_no_reply():
    """Every answered chat segment that lasts gets one ``responded`` (its first response time on
    the wallboard's chat cards); voice contacts none; all accepted (the test above)."""
    events = Simulator(4, START, Scenario.default().replace(transfer_probability=0.3)).advance(START + 3600)
    replies = Counter(
        (t, v["contact_id"]) for t, _, v in events if isinstance(v, dict) and v.get("type") == "responded"
    )
    assert replies and {t for t, _ in replies} == {"chats"}
    p = LocalPipeline(settings())
    names = {"calls": "cc.calls", "chats": "cc.chats", "agents": "cc.agents"}
    p.feed([p.record(names[t], v, key=key) for t, key, v in events], now=START + 3601)
    assert p.dead == []
    views = [p.store.view(q, ch, START + 3601) for q, ch in p.store.series()]
    assert sum(sum(v.first_response_hist[:-1]) for v in views if v.channel == "chat") == sum(replies.values())
    assert all(not any(v.first_response_hist[:-1]) for v in views if v.channel == "voice")
