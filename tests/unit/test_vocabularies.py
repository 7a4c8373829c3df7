"""Each vocabulary is one Literal type in the core; its runtime tuple is derived from it, and the
pages take the agent states from the JSON rather than from a copy of their own."""

from __future__ import annotations

from typing import get_args

from streams.core import events, facts, lifecycle
from streams.core.events import AGENT_STATES, Reason, RejectionReason
from streams.dev.local_pipeline import LocalPipeline
from streams.wallboard import agents as agent_view
from streams.wallboard import queues as queue_view
from tests.unit.helpers import AGENTS, agent, at, settings


def test_the_runtime_values_are_the_ones_of_before():
    assert AGENT_STATES == ("available", "busy", "acw", "away", "offline")
    assert events.LOGGED_IN_STATES == AGENT_STATES[:4] and events.STAFFED_STATES == AGENT_STATES[:3]
    assert events.DEQUEUE_REASONS == ("timeout", "empty", "key", "withdraw", "overflow", "other")
    contact_types = "offered answered hold resume transferred ended wrapup_ended abandoned dequeued missed "
    contact_types += "survey responded resolved"
    assert events.CONTACT_TYPES == set(contact_types.split())
    assert lifecycle.PHASES == ("W", "H", "E", "D", "A", "Q")
    assert facts.HAND_PHASES == (facts.TALKING, facts.ON_HOLD, facts.IN_ACW) == ("talking", "hold", "acw")


def test_every_rejection_reason_has_its_name_and_nothing_else():
    named = {v for k, v in vars(Reason).items() if k.isupper()}
    assert named == set(get_args(RejectionReason))


def test_both_pages_get_the_agent_states_from_the_json_and_keep_no_copy():
    p = LocalPipeline(settings())
    p.feed([p.record(AGENTS, agent("a1", "busy", ["sales"], at("10:00:00")))], now=at("10:00:01"))
    s, now = p.settings, at("10:00:01")
    assert queue_view.snapshot(p.store, s, now, "all")["states"] == list(AGENT_STATES)
    assert agent_view.snapshot(p.agent_store, s, now, "all")["states"] == list(AGENT_STATES)
    for page in (queue_view.page(), agent_view.page()):
        assert b'"available", "busy"' not in page and b"data.states" in page
