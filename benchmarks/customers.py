"""The customer stage's memory per customer (issue 24).

    python -m benchmarks.customers [--customers 100000]

In-process, no Kafka: Python heap (tracemalloc) that the customer stage (streams/core/
customers.py) holds per customer, for the common case: a customer with one contact offered and
handled within the repeat window R (its contact and its case kept until R has passed, its heap
entry and schedule). A customer who abandoned also holds the abandon (until W), one at risk a
signal per lost abandon, repeat or bad survey (7 days): those are shown as a second figure.
``make bench`` runs it in its ``memory`` phase (``customer_record_bytes``).
"""

from __future__ import annotations

import argparse
import gc
import sys
import tracemalloc

from streams.config import load
from streams.core.customers import CustomerStage, customer_hash
from streams.core.facts import Fact, Kind

KEY = b"benchmark-customer-key-0123456789"
T0 = 1_795_420_000.0


def ms(ts: float) -> int:
    return int(round(ts * 1000))


def bytes_per_customer(n: int, abandoned: bool = False) -> float:
    """Heap per customer held by the customer stage after each of ``n`` customers had a handled
    contact (``abandoned``: an abandoned one, still on the call-back list)."""
    s = load({}, customer_key=KEY, partitions=8).kpi
    stage = CustomerStage({}, s, "ccmon-facts")
    digests = [customer_hash(KEY, f"+49301{i:07d}") for i in range(n)]  # made before the measure
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        dirty: set[str] = set()
        for i, digest in enumerate(digests):
            ts = T0 + i * 0.01
            stage.begin(0, i)
            stage.apply(
                Fact(
                    Kind.CU_OFFERED, "sales", "voice", ts, digest, 0.0, False, (f"c{i}", ms(ts), None, None)
                ),
                ("cc.calls/0", i, 0),
                ts,
                dirty,
            )
            if abandoned:
                left = (f"c{i}", ms(ts + 5), "abandoned")
                fact = Fact(Kind.CU_LEFT, "sales", "voice", ts + 5, digest, 5.0, False, left)
            else:
                fact = Fact(
                    Kind.CU_HANDLED, "sales", "voice", ts + 60, digest, 0.0, False, (f"c{i}", ms(ts + 60))
                )
            stage.apply(fact, ("cc.calls/0", i, 1), ts, dirty)
            stage.take()
            dirty.clear()
        # every contact partition announces a watermark past them: the facts are applied (what a
        # customer holds then), not held for the clock
        end = ms(T0 + n * 0.01 + 61)
        pairs: list[str | int] = [x for src in stage.expected for x in (src, end)]
        first = stage.expected[0]
        stage.begin(0, n)
        stage.apply(
            Fact(Kind.CU_CLOCK, "", "", end / 1000, first, 0.0, False, tuple(pairs)),
            (first, end, 0),
            0.0,
            dirty,
        )
        stage.take()
        assert not any(rec["v"]["p"] for key, rec in stage.data.items() if key[0] == "u")
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    args = parser.parse_args(argv)
    handled = bytes_per_customer(args.customers)
    abandoned = bytes_per_customer(args.customers, abandoned=True)
    print(
        f"customer stage, heap per customer: {handled:,.0f} B (a handled contact), "
        f"{abandoned:,.0f} B (an abandon to call back), {args.customers:,} customers"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
