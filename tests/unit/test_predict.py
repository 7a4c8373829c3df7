"""Prediction (streams/core/predict.py): every formula against values computed by hand."""

import math
from zoneinfo import ZoneInfo

import pytest

from streams.config import EWT_ESTIMATORS, ConfigError, load
from streams.core.predict import (
    ESTIMATORS,
    QueueNow,
    asterisk_update,
    estimate,
    gamma_cdf,
    interval_bounds,
    project,
)
from tests.unit.helpers import at, settings

UTC = ZoneInfo("UTC")


def ewts(q: QueueNow) -> dict[str, float | None]:
    return {kind: estimate(kind, q) for kind in ESTIMATORS}


def test_the_configuration_names_the_core_estimators():
    assert set(EWT_ESTIMATORS) == set(ESTIMATORS) - {"asterisk"}
    assert settings().ewt_estimator == "erlang" and settings().sl_interval_s == 1800
    s = load({"CCMON_EWT_ESTIMATOR": "Cisco", "CCMON_SL_INTERVAL_MIN": "15"}).kpi
    assert (s.ewt_estimator, s.sl_interval_s) == ("cisco", 900)
    for bad in (
        {"CCMON_EWT_ESTIMATOR": "genesys"},
        {"CCMON_EWT_ESTIMATOR": "asterisk"},
        {"CCMON_SL_INTERVAL_MIN": "20"},
    ):
        with pytest.raises(ConfigError) as err:
            load(bad)
        assert next(iter(bad)) in str(err.value)


def test_ewt_with_no_agents():
    """Nobody to answer: no estimate but Asterisk's, which only remembers past answers."""
    q = QueueNow(waiting=3, available=0, busy=0, acw=0, aht_s=300.0, hold_avg_s=42.0)
    assert ewts(q) == {"cisco": None, "asterisk": 42.0, "erlang": None, "throughput": None}
    assert estimate("asterisk", QueueNow(0, 0, 0, 0, None)) is None  # nothing answered yet


def test_ewt_with_free_agents():
    """One waiting, three free: the new contact is second in line and an agent is free for it.
    Cisco ignores that: (1 + 1) × 300 / (2 talking + 3 ready) = 120 s."""
    q = QueueNow(waiting=1, available=3, busy=2, acw=0, aht_s=300.0, answered_per_s=0.01, hold_avg_s=7.5)
    assert ewts(q) == {"cisco": 120.0, "asterisk": 7.5, "erlang": 0.0, "throughput": 0.0}


def test_ewt_with_a_long_queue():
    """Nine waiting, nobody free, 8 talking + 2 in ACW, AHT 300 s, 1.2 answers a minute lately.
    The new contact needs 10 agents to finish: erlang 10 × 300 / 10 = 300 s; Cisco (9 + 1) × 300 /
    8 = 375 s; throughput: 0.02 answers/s from 10 working agents, all 10 at that share: 0.02/s,
    10 / 0.02 = 500 s."""
    q = QueueNow(waiting=9, available=0, busy=8, acw=2, aht_s=300.0, answered_per_s=0.02, hold_avg_s=60.0)
    assert ewts(q) == {"cisco": 375.0, "asterisk": 60.0, "erlang": 300.0, "throughput": 500.0}
    # the throughput never claims more than the staffed agents can do: 0.05/s × 10/10 > 10/300
    fast = QueueNow(waiting=9, available=0, busy=8, acw=2, aht_s=300.0, answered_per_s=0.05)
    assert estimate("throughput", fast) == 300.0
    assert estimate("cisco", QueueNow(9, 0, 8, 2, None)) is None  # nothing handled lately


def test_asterisk_moves_a_quarter_of_the_way():
    assert asterisk_update(None, 40.0) == 10.0  # from 0, as Asterisk starts
    assert asterisk_update(10.0, 20.0) == 12.5
    assert asterisk_update(12.5, 12.5) == 12.5


def test_gamma_cdf_by_hand():
    assert gamma_cdf(1, 0.1, 10) == pytest.approx(1 - math.exp(-1))
    assert gamma_cdf(2, 0.1, 10) == pytest.approx(1 - 2 * math.exp(-1))
    assert gamma_cdf(0, 0.1, 0) == 1.0 and gamma_cdf(3, 0.1, 0) == 0.0 and gamma_cdf(3, 0.0, 50) == 0.0
    assert gamma_cdf(1000, 0.1, 10) == 0.0


@pytest.mark.parametrize(
    ("zone", "interval", "expected"),
    [
        ("UTC", 1800, ("10:30:00", "11:00:00")),
        ("UTC", 900, ("10:45:00", "11:00:00")),
        # 10:47:12 UTC is 16:32:12 in Kathmandu (UTC+5:45): the interval is 16:30-17:00 there
        ("Asia/Kathmandu", 1800, ("10:45:00", "11:15:00")),
    ],
)
def test_intervals_are_aligned_to_the_local_clock(zone, interval, expected):
    start, end, day_start, day_end = interval_bounds(at("10:47:12"), ZoneInfo(zone), interval)
    assert (start, end) == (at(expected[0]), at(expected[1]))
    assert day_end - day_start == 86400


def test_the_day_the_clocks_go_forward_has_23_hours_and_its_intervals_follow_the_clock():
    berlin = ZoneInfo("Europe/Berlin")  # 2026-03-29 02:00 CET -> 03:00 CEST
    start, end, day_start, day_end = interval_bounds(at("01:10:00", "2026-03-29"), berlin, 1800)
    assert day_end - day_start == 23 * 3600
    assert (start, end) == (at("01:00:00", "2026-03-29"), at("01:30:00", "2026-03-29"))  # 03:00-03:30 CEST


NOW = at("10:15:00")
END = at("10:30:00")
DAY_END = at("00:00:00", "2026-11-24")


def projection(q: QueueNow, waiting=(), now=NOW, interval=(8.0, 10.0), day=(80.0, 100.0), day_rate=0.0):
    return project(
        q,
        list(waiting),
        now=now,
        interval_end=END,
        day_end=DAY_END,
        interval_sums=interval,
        day_sums=day,
        day_offered_per_s=day_rate,
        threshold_s=20.0,
        target=0.8,
        kind="erlang",
    )


def test_projection_at_the_start_of_an_interval():
    """Nothing known yet, nobody waiting, 0.01 contacts/s expected for the 30 minutes, 5 agents free,
    AHT 100 s: 1 erlang on 5 agents. Erlang C by hand: B(5, 1) = (1/120) / (1 + 1 + 1/2 + 1/6 + 1/24
    + 1/120) = 0.0030675; C = 5B / (5 − (1 − B)) = 0.0038314; SL = 1 − C·e^(−(5 − 1)·20/100)
    = 0.9982785. Every one of the 18 expected arrivals is answered at that level."""
    q = QueueNow(waiting=0, available=5, busy=0, acw=0, aht_s=100.0, offered_per_s=0.01)
    p = projection(q, now=at("10:00:00"), interval=(0.0, 0.0), day_rate=0.01)
    assert p.interval == pytest.approx(0.9982785, abs=1e-7)
    assert p.counted == pytest.approx(18.0)
    assert p.breach_s is None
    # the day: 80/100 so far, plus those 18, plus 0.01/s from 10:30 to midnight (486) at the same level
    assert p.day == pytest.approx((80 + (18 + 486) * 0.9982785) / (100 + 18 + 486))


def test_projection_in_the_middle_of_an_interval_and_the_time_to_breach():
    """8 of 10 within the threshold so far (exactly the target). One contact has waited 10 s, nobody
    is free, one agent is talking, AHT 100 s: it is answered when that agent finishes, expected in
    100 s, within the threshold (10 s more) with probability 1 − e^(−0.01·10) = 0.0951626.
    At that moment the interval is at (8 + 0.0951626) / 11 = 0.7359239: below target from then on."""
    q = QueueNow(waiting=1, available=0, busy=1, acw=0, aht_s=100.0)
    p = projection(q, waiting=[NOW - 10])
    assert p.interval == pytest.approx(8.0951626 / 11, abs=1e-7)
    assert p.breach_s == pytest.approx(100.0)
    assert p.day == pytest.approx(80.0951626 / 101, abs=1e-7)


def test_projection_at_the_end_of_an_interval():
    """Five seconds left: the waiting contact's expected answer (in 100 s) is in the next interval,
    so this one ends as it is; the day still counts it."""
    q = QueueNow(waiting=1, available=0, busy=1, acw=0, aht_s=100.0)
    p = projection(q, waiting=[END - 15], now=END - 5)
    assert p.interval == pytest.approx(0.8) and p.breach_s is None
    assert p.day == pytest.approx(80.0951626 / 101, abs=1e-7)


def test_a_breach_that_already_happened_is_due_now():
    q = QueueNow(waiting=0, available=2, busy=0, acw=0, aht_s=100.0)
    p = projection(q, interval=(7.0, 10.0))
    assert p.interval == pytest.approx(0.7) and p.breach_s == 0.0
    # below target now, but a free agent answers the waiting contact at once: the interval recovers
    recovering = projection(q, waiting=[NOW - 1, NOW - 2], interval=(6.0, 8.0))
    assert recovering.interval == pytest.approx(0.8) and recovering.breach_s is None


def test_a_contact_past_the_threshold_is_a_miss_and_nobody_to_answer_misses_everyone():
    q = QueueNow(waiting=1, available=1, busy=0, acw=0, aht_s=100.0)
    assert projection(q, waiting=[NOW - 30]).interval == pytest.approx(8 / 11)
    nobody = QueueNow(waiting=2, available=0, busy=0, acw=0, aht_s=None)
    p = projection(nobody, waiting=[NOW - 5, NOW - 12])  # misses once they have waited 20 s
    assert p.interval == pytest.approx(8 / 12)
    assert p.breach_s == pytest.approx(8.0)  # 8/11 when the second one has waited 20 s


def test_a_queue_whose_agents_never_reported_is_served_at_its_answer_rate():
    """A chat queue (Chatwoot and libredesk send no agent state): the counts are unknown, not zero.
    Two waiting, 0.1 answered/s lately: the new contact is third, expected in 3 / 0.1 = 30 s by
    erlang and throughput; Cisco's formula needs the agents and cannot say."""
    q = QueueNow(waiting=2, available=0, busy=0, acw=0, aht_s=60.0, answered_per_s=0.1, staffing_known=False)
    assert ewts(q) == {"cisco": None, "asterisk": None, "erlang": 30.0, "throughput": 30.0}
    # the same counts from agents that did report (all offline) mean nobody answers
    assert estimate("erlang", QueueNow(2, 0, 0, 0, 60.0, answered_per_s=0.1)) is None


def test_the_projection_of_unknown_staffing_follows_the_answers_instead_of_paging():
    """The page of issue 25's alerting test: 1 offered and 1 answered per second, nobody waiting,
    agents unknown. With zero staff every arrival would be a miss and the alert would page on a queue
    answering everything in 2 s. At the answer rate, a contact arriving to an empty queue is answered
    within 20 s with probability 1 − e^(−1·20); the 900 expected arrivals of the 15 minutes left
    keep the interval at (8 + 900·(1 − e^(−20))) / 910."""
    q = QueueNow(0, 0, 0, 0, aht_s=2.0, answered_per_s=1.0, offered_per_s=1.0, staffing_known=False)
    hit = 1 - math.exp(-20.0)
    p = projection(q, day_rate=1.0)
    assert p.interval == pytest.approx((8 + 900 * hit) / 910, abs=1e-9)
    assert p.breach_s is None
    rest = (DAY_END - END) * 1.0  # after the interval, at today's rate and the same chance
    assert p.day == pytest.approx((80 + 900 * hit + rest * hit) / (100 + 900 + rest), abs=1e-9)
    zero = projection(QueueNow(0, 0, 0, 0, aht_s=2.0, answered_per_s=1.0, offered_per_s=1.0), day_rate=1.0)
    assert zero.breach_s is not None  # the same numbers from agents that did report: a breach
