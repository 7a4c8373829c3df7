"""benchmarks/prices.py times the first response's and the EWT error's calls inside the core and
restores them: the shares are of the run's own time, and the core is untouched afterwards."""

from __future__ import annotations

from benchmarks import prices, workload
from streams.core.queues import QueueStore


def test_the_prices_are_shares_of_the_run_and_the_core_is_restored():
    apply, apply_ended = QueueStore.apply, QueueStore._apply_ended
    # timed now: the ended waits are recent enough to keep
    r = prices.measure(workload.mix(3000), load_contacts=600)
    assert r["price_load_waits"] > 0 and r["price_load_events"] > 2000
    assert r["price_load_view_kept_ms"] > 0 and r["price_load_view_scratch_ms"] > 0
    assert r["price_responded_events"] > 0
    assert 0 < r["price_first_response_share"] < 1 and 0 < r["price_ewt_error_share"] < 1
    assert r["price_view_all_ms"] > r["price_view_records_ms"] > 0
    assert (QueueStore.apply, QueueStore._apply_ended) == (apply, apply_ended)
