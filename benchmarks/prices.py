"""What this round's KPI families cost the pure core, on the same events (issue 27).

    python -m benchmarks.prices [N]      (the throughput bench runs it on its own N events)

- in the core: the share of its time spent applying first responses (RESPONDED facts in stage
  2; stage 1's part is the ``responded`` events' parsing, a contact event like any other) and
  keeping the ended waits the EWT error grades from (``QueueStore._apply_ended``, the EWT
  families' only per-fact work: EWT, projected service level and breach have no state of their
  own), timed around those calls in one run. Turning each off and comparing rates was tried
  first: the difference (1-5 %) was below what separates two runs of the same code in one process
  (a process's runs slow by ~2 % each, its first is ~25 % faster), and came out negative;
- at read time: building every series' view with and without the prediction and the EWT
  grading (``QueueStore.view``'s parts), after the same events, on a store that graded nothing
  before: what a scrape of a changed series pays for them (median of 5);
- under load (:func:`under_load`): two hours of a busy center's ended waits kept, a view of every
  series after each 2,000 more events, with the grades the store keeps between views and with
  every wait graded again: what Prometheus's scrape of a busy worker pays.

The customer features are priced in benchmarks/throughput.py (a customer key on and off) and
benchmarks/customers.py (memory per customer).
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from typing import Any

import orjson

from benchmarks import workload
from streams.config import Settings, load
from streams.core.facts import Fact, Kind
from streams.core.queues import VIEW_PARTS, QueueStore
from streams.dev.local_pipeline import LocalPipeline


def _responded(value: bytes) -> bool:
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        return False
    return isinstance(event, dict) and event.get("type") == "responded"


def _rate(s: Settings, events: list[workload.Event]) -> tuple[float, LocalPipeline]:
    from benchmarks.throughput import core_run  # which imports this module

    return core_run(s, events)


def _view_all_s(store: QueueStore, now: float, parts: frozenset[str] = VIEW_PARTS) -> float:
    """Seconds to view every series of ``store`` once with ``parts``."""
    started = time.perf_counter()
    for queue, channel in store.series():
        store.view(queue, channel, now, parts)
    return time.perf_counter() - started


def _new_store(p: LocalPipeline) -> QueueStore:
    """A store over the pipeline's records that has graded nothing yet (the store keeps its grades
    between views: :func:`under_load` prices that)."""
    return QueueStore(p.store.data, p.store.settings)


def _views_s(p: LocalPipeline, parts: frozenset[str]) -> float:
    """Seconds to view every series once with ``parts`` (median of 5), each time on a new store:
    what a changed series pays with nothing graded before."""
    now = time.time()
    return statistics.median(_view_all_s(_new_store(p), now, parts) for _ in range(5))


#: the clock of the scrape under load: a fixed day, so every run grades the same waits
LOAD_NOW = 1_795_420_000.0


def under_load(contacts: int, s: Settings | None = None, step: int = 2000, steps: int = 20) -> dict[str, Any]:
    """A whole scrape's grading while facts keep coming: two hours of a busy center (``contacts``
    contacts, the simulator's flat day ending at ``LOAD_NOW``) fed to the core, then ``steps``
    times ``step`` more events, each followed by a view of every series with every part, as
    Prometheus's scrape asks for while the center is busy: with the store's kept grades (what
    the worker does) and on a new store over the same records (every ended wait graded, as
    before the grades were kept). Medians, and the ended waits not folded at the end."""
    s = s or load({})
    from benchmarks.throughput import as_records  # which imports this module

    events = list(workload.busy_day(contacts, max(100, contacts // 100), 2.0, LOAD_NOW))
    records = as_records(s, events)
    head = max(0, len(records) - step * steps)
    p = LocalPipeline(s)
    for i in range(0, head, step):
        p.feed(records[i : i + step], now=LOAD_NOW)
    kept: list[float] = []
    scratch: list[float] = []
    for i in range(head, len(records), step):
        p.feed(records[i : i + step], now=LOAD_NOW)
        kept.append(_view_all_s(p.store, LOAD_NOW))
        scratch.append(_view_all_s(_new_store(p), LOAD_NOW))
    waits = sum(len(rec["v"]) for key, rec in p.store.data.items() if key.startswith("e|"))
    return {
        "price_load_events": len(records),
        "price_load_waits": waits,
        "price_load_view_kept_ms": round(statistics.median(kept) * 1e3, 2),
        "price_load_view_scratch_ms": round(statistics.median(scratch) * 1e3, 2),
    }


def _timed(s: Settings, events: list[workload.Event]) -> tuple[float, float, float, LocalPipeline]:
    """The core's rate on ``events`` and the seconds it spent applying RESPONDED facts (stage 2,
    ``QueueStore.apply``) and keeping ended waits (``QueueStore._apply_ended``), timed around
    those calls (~0.2 µs of timer per call, inside the figures)."""
    apply, apply_ended = QueueStore.apply, QueueStore._apply_ended
    spent = {"fr": 0.0, "ended": 0.0}
    clock = time.perf_counter

    def timed_apply(self: QueueStore, fact: Fact, *args: Any) -> None:
        if fact.kind != Kind.RESPONDED:
            return apply(self, fact, *args)
        t0 = clock()
        apply(self, fact, *args)
        spent["fr"] += clock() - t0
        return None

    def timed_ended(self: QueueStore, *args: Any) -> None:
        t0 = clock()
        apply_ended(self, *args)
        spent["ended"] += clock() - t0

    QueueStore.apply, QueueStore._apply_ended = timed_apply, timed_ended  # type: ignore[method-assign,assignment]
    try:
        rate, p = _rate(s, events)
    finally:
        QueueStore.apply, QueueStore._apply_ended = apply, apply_ended  # type: ignore[method-assign]
    return rate, spent["fr"], spent["ended"], p


def measure(
    events: list[workload.Event], s: Settings | None = None, load_contacts: int = 30_000
) -> dict[str, Any]:
    s = s or load({})
    _rate(s, events)  # a process's first run is ~25 % faster than the rest: not counted
    gc.collect()
    rate, fr_s, ended_s, p = _timed(s, events)
    total_s = len(events) / rate
    responded = sum(1 for e in events if _responded(e[2]))
    r: dict[str, Any] = {
        "price_events_per_s": round(rate),
        "price_responded_events": responded,
        "price_first_response_share": round(fr_s / total_s, 4),
        "price_us_per_responded": round(fr_s / max(1, responded) * 1e6, 1),
        "price_ewt_error_share": round(ended_s / total_s, 4),
        "price_series": sum(1 for _ in p.store.series()),
        "price_view_all_ms": round(_views_s(p, VIEW_PARTS) * 1e3, 2),
        "price_view_records_ms": round(_views_s(p, frozenset()) * 1e3, 2),
        **under_load(load_contacts, s),
    }
    return r


ROWS = (
    ("pure core, the bench's events (timed calls)", "price_events_per_s", "events/s"),
    ("  first response: share of the core's time", "price_first_response_share", ""),
    ("  first response: µs per responded event", "price_us_per_responded", "µs"),
    ("  EWT error (ended waits kept): share", "price_ewt_error_share", ""),
    ("every series' view, all parts", "price_view_all_ms", "ms"),
    ("  records only (no prediction, no EWT grading)", "price_view_records_ms", "ms"),
    ("under load: ended waits kept (2 h of a busy center)", "price_load_waits", ""),
    ("  every series' view after 2,000 more events", "price_load_view_kept_ms", "ms"),
    ("  the same, every wait graded again", "price_load_view_scratch_ms", "ms"),
)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    r = measure(workload.mix(n))
    for label, key, unit in ROWS:
        print(f"{label:<52} {r[key]:>12,} {unit}")
    print(f"({r['price_responded_events']:,} responded events of {n:,}; {r['price_series']} series)")


if __name__ == "__main__":
    main()
