"""First response time (SPEC §2): ``responded.ts − offered.ts`` of the segment's queue, through
both stages to /metrics, against values computed by hand in the comments."""

from streams.metrics.kpi_exposition import KpiExposition
from tests.unit.helpers import CHATS, Clock, at, ev, run, sample, samples

NOW = at("10:10:00")
FIRST = ev("responded", "f1", at("10:00:25"), event_id="f1-r1")
SCENARIO = [
    # f1: answered after 10 s, first reply at 25 s (FR 25); a later reply and a duplicate: nothing
    (CHATS, ev("offered", "f1", at("10:00:00"), queue="web")),
    (CHATS, ev("answered", "f1", at("10:00:10"), agent_id="a1")),
    (CHATS, FIRST),
    (CHATS, ev("responded", "f1", at("10:00:40"))),
    (CHATS, FIRST),
    # f2: the agent replies before the chat is assigned (FR 8); the answer comes later
    (CHATS, ev("offered", "f2", at("10:01:00"), queue="web")),
    (CHATS, ev("responded", "f2", at("10:01:08"))),
    (CHATS, ev("answered", "f2", at("10:01:20"), agent_id="a2")),
    # f3: FR 15 in web; transferred to vip at 10:03:00, where its first reply comes 30 s later
    (CHATS, ev("offered", "f3", at("10:02:00"), queue="web")),
    (CHATS, ev("answered", "f3", at("10:02:05"), agent_id="a1")),
    (CHATS, ev("responded", "f3", at("10:02:15"))),
    (CHATS, ev("transferred", "f3", at("10:03:00"), queue="vip")),
    (CHATS, ev("answered", "f3", at("10:03:10"), agent_id="a3")),
    (CHATS, ev("responded", "f3", at("10:03:30"))),
    # f4: FR 20
    (CHATS, ev("offered", "f4", at("10:04:00"), queue="web")),
    (CHATS, ev("answered", "f4", at("10:04:10"), agent_id="a2")),
    (CHATS, ev("responded", "f4", at("10:04:20"))),
    # f5 arrives after f4 but happened before it (out of order, within the lateness): FR 9
    (CHATS, ev("offered", "f5", at("10:03:50"), queue="web")),
    (CHATS, ev("responded", "f5", at("10:03:59"))),
    # f6 is 19 min behind the newest event time (10:04:20): late, FR 30 in the histogram only
    (CHATS, ev("offered", "f6", at("09:45:00"), queue="web")),
    (CHATS, ev("responded", "f6", at("09:45:30"))),
]
WEB = {"queue": "web", "channel": "chat"}
VIP = {"queue": "vip", "channel": "chat"}


def _metrics(events):
    p = run(events, now=NOW)
    return p, samples(KpiExposition(lambda: p.store, Clock(NOW)).render())


def test_first_response_histogram_windows_duplicates_late_and_transfer():
    p, m = _metrics(SCENARIO)
    assert p.dead == []
    # web: 25, 8, 15, 20, 9 and the late 30 → 6 observations, sum 107
    assert sample(m, "ccmon_first_response_seconds_count", **WEB) == 6
    assert sample(m, "ccmon_first_response_seconds_sum", **WEB) == 107.0
    buckets = {
        le: sample(m, "ccmon_first_response_seconds_bucket", **WEB, le=le)
        for le in ("5.0", "10.0", "15.0", "20.0", "30.0", "+Inf")
    }
    assert buckets == {"5.0": 0, "10.0": 2, "15.0": 3, "20.0": 4, "30.0": 6, "+Inf": 6}
    # windows leave the late one out: (25 + 8 + 15 + 20 + 9) / 5 = 15.4
    for window in ("15m", "1h", "today"):
        assert sample(m, "ccmon_first_response_seconds_avg", **WEB, window=window) == 77 / 5
    # 5m is 10:05-10:10: no first response there: absent, not 0
    assert sample(m, "ccmon_first_response_seconds_avg", **WEB, window="5m") is None
    # vip: f3's second segment, from the transfer: 10:03:30 − 10:03:00
    assert sample(m, "ccmon_first_response_seconds_count", **VIP) == 1
    assert sample(m, "ccmon_first_response_seconds_avg", **VIP, window="15m") == 30.0
    assert p.results[(CHATS, "duplicate")] == 1


def test_replaying_every_event_again_changes_nothing():
    _, once = _metrics(SCENARIO)
    _, twice = _metrics(SCENARIO + SCENARIO)
    assert {k: v for k, v in twice.items()} == once
