"""Any sequence of queue_log lines, sensible or not: the mapping never fails, ids never repeat,
a contact's events never go back in time, the worker's pure core accepts every event (no
lifecycle error), and a restart from saved state changes nothing."""

from __future__ import annotations

import json
import random

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.sources.asterisk.mapping import HANDLED_VERBS, INFORMATIONAL, Config, Mapper
from producers.sources.asterisk.queue_log import LineIds, Malformed, epoch_of, parse
from streams.config import Settings
from streams.dev.local_pipeline import LocalPipeline

#: every verb the mapper knows, handled or informational, taken from the mapper so that a new
#: handler is fuzzed too, plus one it does not know
VERBS = sorted(HANDLED_VERBS | set(INFORMATIONAL)) + ["BOGUS"]

#: a call's own verbs come often, so that sequences reach connects, transfers and their next queue
WEIGHTED = (
    ["ENTERQUEUE"] * 8 + ["CONNECT"] * 5 + ["RINGNOANSWER", "BLINDTRANSFER", "COMPLETECALLER"] * 3 + VERBS
)
DATA = ["", "1", "15000", "PAUSED", "Lunch", "BRIDGE", "x|y"]


def rows_from(rnd: random.Random) -> list:
    """40-80 lines from few callids, queues and agents, mostly 0-10 s apart (hypothesis draws the
    seed: uniform choices reach the multi-line stories, transfers included, far more often than
    hypothesis' own element-by-element draws, which favour the simplest values)."""
    return [
        (
            rnd.choice([0, 1, 0, 1, rnd.randint(0, 40)]),
            rnd.choice(["c1", "c1", "c2", "NONE"]),
            rnd.choice(["sales", "support"] * 3 + ["NONE", "two words"]),
            rnd.choice(["PJSIP/400", "Local/401@ctx/n", "NONE"]),
            rnd.choice(WEIGHTED),
            [rnd.choice(DATA) for _ in range(rnd.randint(0, 5))],
        )
        for _ in range(rnd.randint(40, 80))
    ]


def render(rows: list) -> list[str]:
    """Lines with times; a callid carries its day, as Asterisk's uniqueid (epoch.sequence) carries
    its creation time: the same callid never comes back days later."""
    t, texts = 1_700_000_000, []
    for step, callid, queue, agent, verb, data in rows:
        t += step * step * 10  # up to 4.4 h between two lines
        callid = callid if callid == "NONE" else f"{t // 86400}.{callid}"
        texts.append("|".join([str(t), callid, queue, agent, verb, *data]))
    return texts


def feed(texts: list[str], config: Config, m: Mapper | None = None, ids: LineIds | None = None):
    m, ids, out = m or Mapper(config), ids or LineIds("asterisk"), []
    for text in texts:
        lid = ids.next(text, epoch_of(text))
        try:
            events, _ = m.feed(parse(text), lid)
        except Malformed:
            continue
        out += events
    return out, m, ids


@settings(max_examples=300, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(0, 80), st.sampled_from([0.0, 20.0]))
def test_any_lines_map_safely_and_a_restart_anywhere_changes_nothing(rnd, cut, wrapup):
    texts = render(rows_from(rnd))
    config = Config(wrapup_s=wrapup)
    whole, m, _ = feed(texts, config)
    whole += m.release(2e9)
    ids = [o.event["event_id"] for o in whole]
    assert len(ids) == len(set(ids))
    last: dict[str, int] = {}
    for o in whole:
        if o.stream == "calls":
            assert o.event["ts"] >= last.get(o.key, 0), o.event  # the worker's lifecycle needs this
            last[o.key] = o.event["ts"]
    # the worker's own pure core accepts every event: no lifecycle error, nothing malformed
    # (its clock, 2e9, is after every line and release; the lines are 2023's: no age bound here)
    settings = Settings(max_event_age_s=1e9)
    pipe = LocalPipeline(settings)
    topics = {"calls": settings.calls_topic, "agents": settings.agents_topic}
    pipe.feed([pipe.record(topics[o.stream], o.event, o.key) for o in whole], now=2e9)
    assert [(d.reason, d.detail, orjson.loads(d.source.value)) for d in pipe.dead] == []
    cut = min(cut, len(texts))
    head, m1, ids1 = feed(texts[:cut], config)
    state = json.loads(json.dumps({"m": m1.to_state(), "i": ids1.to_state()}))
    rest, m2, _ = feed(
        texts[cut:], config, Mapper(config, state["m"]), LineIds.from_state("asterisk", state["i"])
    )
    rest += m2.release(2e9)
    assert [o.event for o in head + rest] == [o.event for o in whole]
