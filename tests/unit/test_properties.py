"""Property tests of the pure core: any sequence of events, valid or not, keeps the invariants."""

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from streams.core import kpis
from streams.core.events import CONTACT_TYPES
from streams.dev.local_pipeline import LocalPipeline
from tests.unit.helpers import AGENTS, CALLS, CHATS, at, settings

BASE = at("10:00:00")
#: the contact types the invariants below were written for: all of the core's but the dequeue and
#: missed-offer records (their counters are checked by hand in test_dequeued_missed_ces.py)
TYPES = sorted(CONTACT_TYPES - {"dequeued", "missed"})

event = st.fixed_dictionaries(
    {
        "event_id": st.sampled_from([f"e{i}" for i in range(40)]),
        "type": st.sampled_from(TYPES),
        "contact_id": st.sampled_from(["c1", "c2", "c3", "c4"]),
        "ts": st.integers(0, 3 * 3600 * 1000).map(lambda ms: int(BASE * 1000) + ms),
        "queue": st.sampled_from(["q1", "q2", "q3"]),
        "agent_id": st.just("a1"),
        "csat": st.integers(1, 5),
        "nps": st.integers(0, 10),
        "resolved": st.booleans(),
    }
)
agent_event = st.fixed_dictionaries(
    {
        "event_id": st.text(min_size=1, max_size=3),
        "type": st.just("state"),
        "agent_id": st.sampled_from(["a", "b"]),
        "state": st.sampled_from(["available", "busy", "acw", "away", "offline", "bogus"]),
        "queues": st.lists(st.sampled_from(["q1", "q2", "bad name"]), max_size=3),
        "ts": st.integers(0, 3 * 3600 * 1000).map(lambda ms: int(BASE * 1000) + ms),
    }
)
item = st.one_of(
    st.tuples(st.sampled_from([CALLS, CHATS]), event),
    st.tuples(st.just(AGENTS), agent_event),
    st.tuples(st.sampled_from([CALLS, AGENTS]), st.binary(max_size=40)),
)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(item, max_size=25), min_size=1, max_size=4))
def test_any_event_sequence_keeps_invariants(batches):
    p = LocalPipeline(settings(max_queues=2))
    now = BASE + 4 * 3600
    previous: dict = {}
    total_in = 0
    for batch in batches:
        records = [p.record(topic, value, partition=i % 2) for i, (topic, value) in enumerate(batch)]
        total_in += len(records)
        p.feed(records, now=now)
        p.sweep(now)
        for q, ch in p.store.series():
            view = p.store.view(q, ch, now)
            c = view.counters
            assert all(v >= 0 for v in c.values())
            assert (
                c["answered"] + c["abandoned"] + c["transferred_out"] <= c["offered"] + c["transferred_out"]
            )
            assert c["short_abandoned"] <= c["abandoned"] and c["answered_in_threshold"] <= c["answered"]
            for name, value in c.items():  # counters are monotonic
                assert value >= previous.get((q, ch, name), 0)
                previous[(q, ch, name)] = value
            assert view.handle_hist[-1] >= 0 and all(h[-1] >= 0 for h in view.wait_hist.values())
            assert view.waiting >= 0 and view.oldest_wait_s >= 0
            for vec in view.windows.values():
                for fn in (kpis.abandon_ratio, kpis.service_level, kpis.csat, kpis.fcr):
                    r = fn(vec)
                    assert r is None or 0.0 <= r <= 1.0
                n = kpis.nps(vec)
                assert n is None or -100.0 <= n <= 100.0
                for fn in (kpis.asa, kpis.aht):
                    m = fn(vec)
                    assert m is None or m >= 0
        assert len(p.store.queues()) <= 2
    assert sum(p.results.values()) == total_in  # every input is accounted for exactly once
