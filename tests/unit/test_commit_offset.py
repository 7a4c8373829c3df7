"""The commit arithmetic of streams/faust_ext/consumer.py (``HandOffConsumer._new_offset``, issue 15)
is Faust's: from every history of acknowledgements, holes, gaps, commits and revocations it returns
the offset Faust's ``Consumer._new_offset`` returns and leaves the same bookkeeping behind
(``_acked``, ``_acked_index``, ``_gap``), call after call. Faust's method is the reference, run on
a copy of the same state; only the speed differs (a batch acknowledged whole is one run, found
without Faust's per-offset scan)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import faust.transport.consumer as faust_consumer
import pytest
from faust.types import TP
from hypothesis import given, settings
from hypothesis import strategies as st
from intervaltree import IntervalTree  # type: ignore[import-untyped]

from streams.faust_ext.consumer import HandOffConsumer

P0, P1 = TP(topic="calls", partition=0), TP(topic="calls", partition=1)
FAUST_NEW_OFFSET = faust_consumer.Consumer._new_offset


def state() -> dict[str, Any]:
    """The attributes both methods read and write, as Faust's Consumer.__init__ creates them."""
    return {
        "_acked": defaultdict(list),
        "_acked_index": defaultdict(set),
        "_committed_offset": defaultdict(lambda: None),
        "_gap": defaultdict(IntervalTree),
    }


def ours() -> HandOffConsumer:
    c = HandOffConsumer.__new__(HandOffConsumer)
    c.__dict__.update(state())
    return c


def ack(c: Any, tp: TP, offsets: list[int]) -> None:
    """What ``ack``/``ack_batch`` record for each offset: once, and only from the committed one on."""
    committed = c._committed_offset[tp]
    for offset in offsets:
        if (committed is None or offset >= committed) and offset not in c._acked_index[tp]:
            c._acked_index[tp].add(offset)
            c._acked[tp].append(offset)


def commit(c: Any, tp: TP, new_offset: Any) -> int | None:
    """One partition's part of Faust's commit: the new offset, committed when it is ahead."""
    offset = new_offset(c, tp)
    committed = c._committed_offset[tp]
    if offset is not None and (committed is None or bool(offset) and offset > committed):
        c._committed_offset[tp] = offset
    return offset


def revoke(c: Any, tp: TP) -> None:
    """What Faust's on_partitions_revoked drops for a partition it loses."""
    for name in ("_gap", "_acked", "_acked_index", "_committed_offset"):
        getattr(c, name).pop(tp, None)


def snapshot(c: Any) -> Any:
    return (
        {tp: list(v) for tp, v in c._acked.items()},
        {tp: set(v) for tp, v in c._acked_index.items()},
        {tp: sorted(v) for tp, v in c._gap.items()},
        dict(c._committed_offset),
    )


offsets = st.integers(min_value=0, max_value=24)  # a small range: acks, holes, gaps and commits meet
steps = st.lists(
    st.one_of(
        # a batch acknowledged whole, or with some of its messages skipped (a rebalance came)
        st.tuples(
            st.just("batch"),
            st.sampled_from([P0, P1]),
            offsets,
            st.integers(min_value=1, max_value=12),
            st.frozensets(st.integers(min_value=0, max_value=11), max_size=3),
        ),
        st.tuples(st.just("acks"), st.sampled_from([P0, P1]), st.lists(offsets, max_size=12)),
        st.tuples(st.just("commit"), st.sampled_from([P0, P1])),
        st.tuples(st.just("gap"), st.sampled_from([P0, P1]), offsets, st.integers(min_value=0, max_value=6)),
        st.tuples(st.just("revoke"), st.sampled_from([P0, P1])),
        st.tuples(st.just("assigned"), st.sampled_from([P0, P1]), st.none() | offsets),
    ),
    max_size=40,
)


@settings(max_examples=1500, deadline=None)
@given(steps)
def test_new_offset_is_fausts_for_any_history(history: list[tuple]) -> None:
    ref, mine = SimpleNamespace(**state()), ours()
    for step in history:
        kind, tp = step[0], step[1]
        if kind == "batch":
            _, _, start, size, skipped = step
            acked = [start + i for i in range(size) if i not in skipped]
            ack(ref, tp, acked)
            ack(mine, tp, acked)
        elif kind == "acks":
            ack(ref, tp, step[2])
            ack(mine, tp, step[2])
        elif kind == "commit":
            assert commit(mine, tp, HandOffConsumer._new_offset) == commit(ref, tp, FAUST_NEW_OFFSET)
        elif kind == "gap":  # offsets the fetch skipped (compaction, transaction markers)
            _, _, start, length = step
            for c in (ref, mine):
                asyncio.run(faust_consumer.Consumer._add_gap(c, tp, start, start + length))  # type: ignore[arg-type]
        elif kind == "revoke":
            revoke(ref, tp)
            revoke(mine, tp)
        else:  # assigned again: the committed offset Faust reads from the broker
            ref._committed_offset[tp] = mine._committed_offset[tp] = step[2]
        assert snapshot(mine) == snapshot(ref), step


def test_a_whole_batch_is_one_run_without_fausts_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    """The common case, batches acknowledged whole and in order, never reaches Faust's per-offset
    scan (``consecutive_numbers``); a hole does, and commits only up to it, as Faust does."""
    calls: list[int] = []
    scan = faust_consumer.consecutive_numbers

    def counted(it: Any) -> Any:
        calls.append(1)
        return scan(it)

    monkeypatch.setattr(faust_consumer, "consecutive_numbers", counted)
    c = ours()
    c._committed_offset[P0] = 100
    ack(c, P0, list(range(100, 2100)))
    ack(c, P0, list(range(2100, 4100)))
    assert commit(c, P0, HandOffConsumer._new_offset) == 4100
    assert (c._acked[P0], c._acked_index[P0], calls) == ([], set(), [])
    ack(c, P0, [o for o in range(4100, 4200) if o not in (4150, 4151)])  # skipped: not processed
    assert commit(c, P0, HandOffConsumer._new_offset) == 4150
    assert calls == [1]
    assert c._acked[P0] == list(range(4152, 4200))
    # the hole holds the rest back (a hole of one offset would not: Faust lets the first offset
    # after the committed one be missing, and so does this method, being Faust's)
    assert commit(c, P0, HandOffConsumer._new_offset) is None


def test_hand_computed_cases() -> None:
    c = ours()
    assert c._new_offset(P0) is None  # nothing acknowledged
    ack(c, P0, [7, 5, 6])  # acknowledged out of order: sorted, one run
    assert c._new_offset(P0) == 8
    c._committed_offset[P1] = 10
    ack(c, P1, [13, 14])  # Faust's rule: more than one offset missing before the first acked one
    assert c._new_offset(P1) is None
    assert c._acked[P1] == [13, 14]
    ack(c, P1, [12])
    assert c._new_offset(P1) is None
    ack(c, P1, [11])  # Faust lets one offset be missing there (10: committed is the next to read)
    assert c._new_offset(P1) == 15
