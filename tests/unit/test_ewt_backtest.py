"""The back-test's scoring (benchmarks/ewt_backtest.py): alerts' for/keep_firing_for, breaches and
their crossing, catches, false alarms and leads, on hand-made timelines; and one short replay."""

from zoneinfo import ZoneInfo

from benchmarks import ewt_backtest as bt
from producers.scenario import parse


def test_an_alert_fires_after_its_for_and_keeps_firing_for_its_keep():
    a = bt.Alert(hold_s=30, keep_s=30)
    for t, cond in [(0, True), (15, True), (30, True), (45, False), (60, False), (75, False), (90, True)]:
        a.step(t, cond)
    assert a.episodes == [[30, 60]]  # fired at 30 (held 30 s), kept until 60, off at 75; 90 is pending
    a.step(105, True)
    a.step(120, True)
    assert a.episodes == [[30, 60], [120, 120]]


def test_breaches_cross_where_the_service_level_stays_below_the_target():
    s = bt.Series()
    start = 0.0
    hits = [1] * 20 + [0] * 3 + [1] * 2 + [0] * 10  # 22/35 = 0.63 at the end
    n = h = 0
    running = []
    for i, x in enumerate(hits):
        n, h = n + 1, h + x
        running.append((float(i), h / n))
    s.intervals[start] = [float(h), float(n)]
    s.running[start] = running
    # 20/23 = 0.87 after the first misses; 22/27 = 0.815 at i=26, 22/28 = 0.786 at i=27: stays below
    assert bt.breaches(s) == [(0.0, 27.0)]
    s.intervals[start] = [15.0, 19.0]  # too few contacts to speak of
    assert bt.breaches(s) == []


def test_scoring_counts_catches_false_alarms_and_leads():
    sc = parse(
        {
            "queues": [
                {"name": "q", "channel": "voice", "per_hour": 1, "talk_mean_s": 1, "patience_mean_s": 1}
            ],
            "agents": [{"count": 1, "channel": "voice", "skills": ["q"]}],
        },
        "s.toml",
    )
    r = bt.Replay(sc, ZoneInfo("UTC"))
    s = r.series[("q", "voice")]
    s.intervals = {0.0: [10.0, 20.0], 1800.0: [20.0, 20.0]}
    s.running = {0.0: [(600.0, 0.9), (900.0, 0.5)], 1800.0: [(2000.0, 1.0)]}
    r.alerts[("q", "voice")]["predictive"].episodes = [[500.0, 950.0], [5000.0, 5100.0]]
    r.alerts[("q", "voice")]["reactive"].episodes = [[1500.0, 2000.0]]
    pred, reac = bt.Score(), bt.Score()
    bt.score(r, "predictive", pred)
    bt.score(r, "reactive", reac)
    assert (pred.caught, pred.false_alarms, pred.leads) == (1, 1, [400.0])
    assert (reac.caught, reac.false_alarms, reac.leads) == (1, 0, [-600.0])


def test_a_short_replay_grades_every_estimator_on_the_same_contacts():
    sc = bt.backtest_scenario().replace(incidents=())
    r = bt.Replay(sc, ZoneInfo("UTC"))
    for topic, _, ev in bt.simulate_day(sc, 3, bt.DAY0 + 9 * 3600):
        if topic == "tick":
            if ev >= bt.DAY0 + 9.5 * 3600:
                break
            r.evaluate(ev)
        else:
            r.event(topic, ev)
    errors = bt._errors(r.errors)
    assert errors["contacts"] > 100
    assert all(errors[kind]["mae_s"] is not None for kind in ("cisco", "asterisk", "erlang", "throughput"))
