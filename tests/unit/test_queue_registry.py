"""The queue registry behind CCMON_MAX_QUEUES forgets a queue a retention period after its last
event, once nothing holds it open (issue 21 §4): made-up names no longer fill the cap for good."""

from __future__ import annotations

import orjson

from streams.core.intake import Intake
from streams.dev.local_pipeline import LocalPipeline
from tests.unit.helpers import AGENTS, CALLS, agent, at, ev, settings

DAY0, DAY3 = "2026-11-23", "2026-11-26"


def _day(day: str) -> int:
    """The registry's day number (UTC) of a date."""
    return int(at("12:00:00", day) // 86400)


def _made_up(p: LocalPipeline, names: list[str], day: str) -> list:
    out = []
    for i, name in enumerate(names):
        out += [
            p.record(CALLS, ev("offered", f"{name}-{i}", at("10:00:00", day), queue=name)),
            p.record(CALLS, ev("abandoned", f"{name}-{i}", at("10:00:10", day))),
        ]
    return out


def _clock(p: LocalPipeline, day: str) -> None:
    """An event of the day on the partition (its watermark moves), and a sweep."""
    p.feed([p.record(AGENTS, agent("clock", "offline", [], at("09:00:00", day)))], now=at("09:00:01", day))
    p.sweep(at("09:00:01", day))


def test_five_made_up_names_no_longer_block_a_real_queue_three_days_later():
    p = LocalPipeline(settings(max_queues=5))
    junk = [f"junk{i}" for i in range(5)]
    p.feed(_made_up(p, junk, DAY0), now=at("10:01:00", DAY0))
    p.sweep(at("10:01:00", DAY0))
    p.feed(
        [p.record(CALLS, ev("offered", "x", at("10:02:00", DAY0), queue="sales"))], now=at("10:02:01", DAY0)
    )
    assert [d.reason for d in p.dead] == ["queue_limit"]  # the cap holds while they are recent
    _clock(p, DAY3)
    assert set(p.intake.known_queues) == set()
    p.feed(
        [p.record(CALLS, ev("offered", "c1", at("10:00:00", DAY3), queue="sales"))], now=at("10:00:01", DAY3)
    )
    assert [d.reason for d in p.dead] == ["queue_limit"]
    assert p.store.view("sales", "voice", at("10:00:01", DAY3)).counters["offered"] == 1
    assert set(p.intake.known_queues) == {"sales"} and p.lifecycle["q|0"] == {"sales": _day(DAY3)}


def test_a_queue_is_kept_while_seen_within_the_retention_or_held_open():
    p = LocalPipeline(settings(max_queues=3))
    # sales: an agent logs in on day 0 and stays; junk: made up on day 0; late: seen on day 2
    p.feed(
        [
            p.record(AGENTS, agent("a1", "available", ["sales"], at("08:00:00", DAY0))),
            *_made_up(p, ["junk"], DAY0),
            p.record(CALLS, ev("offered", "w1", at("10:00:00", "2026-11-25"), queue="late")),
        ],
        now=at("10:00:01", "2026-11-25"),
    )
    _clock(p, DAY3)
    # junk: last seen on day 0, nothing open, forgotten; sales: its agent is logged in; late: the
    # day before yesterday is within a retention period after its day
    assert set(p.intake.known_queues) == {"sales", "late"}
    p.feed(
        [
            p.record(CALLS, ev("offered", "c1", at("10:00:00", DAY3), queue="support")),
            p.record(CALLS, ev("offered", "c2", at("10:00:00", DAY3), queue="extra")),
        ],
        now=at("10:00:01", DAY3),
    )
    assert [(d.reason, d.source.offset) for d in p.dead] == [("queue_limit", 4)]
    # an event of a known queue renews its day; once the agent logs off, sales goes in its turn
    p.feed(
        [p.record(AGENTS, agent("a1", "offline", ["sales"], at("11:00:00", DAY3)))], now=at("11:00:01", DAY3)
    )
    _clock(p, "2026-11-27")
    assert set(p.intake.known_queues) == {"sales", "late", "support"}
    _clock(p, "2026-11-28")
    # late and support: their contacts still wait (no event of cc.calls/0 has moved its time)
    assert set(p.intake.known_queues) == {"late", "support"}
    p.feed(
        [p.record(CALLS, ev("offered", "c3", at("10:00:00", "2026-11-28"), queue="extra"))],
        now=at("10:00:01", "2026-11-28"),
    )
    p.sweep(at("10:00:01", "2026-11-28"))
    assert set(p.intake.known_queues) == {"extra"}  # the waiting contacts expired, and their queues


def test_the_registry_is_state_a_restart_recovers_exactly():
    """The forgetting is written to the changelog like the rest of the lifecycle table: a worker
    recovering the writes (JSON, as the changelog holds them) knows the same queues."""
    p = LocalPipeline(settings(max_queues=5))
    changelog: dict = {}

    def keep(out) -> None:
        for key, (_, value) in out.writes.items():
            if value is None:
                changelog.pop(key, None)
            else:
                changelog[key] = orjson.loads(orjson.dumps(value))

    keep(p.feed(_made_up(p, ["a", "b", "c"], DAY0), now=at("10:01:00", DAY0)))
    keep(p.feed(_made_up(p, ["d"], "2026-11-25"), now=at("10:01:00", "2026-11-25")))
    keep(
        p.feed([p.record(AGENTS, agent("x", "offline", [], at("09:00:00", DAY3)))], now=at("09:00:01", DAY3))
    )
    keep(p.sweep(at("09:00:01", DAY3)))
    assert set(p.intake.known_queues) == {"d"}
    assert changelog == orjson.loads(orjson.dumps(p.lifecycle))
    recovered = Intake(changelog, p.settings.kpi)
    assert recovered.known_queues == p.intake.known_queues


def test_an_older_workers_registry_counts_as_seen_at_the_partitions_watermark():
    s = settings(max_queues=5)
    older = {"q|0": ["sales", "junk"], "m|cc.calls|0": [at("10:00:00", DAY0), 7, 0]}
    intake = Intake(older, s.kpi)
    assert older["q|0"] == {"sales": _day(DAY0), "junk": _day(DAY0)} and set(intake.known_queues) == {
        "sales",
        "junk",
    }
