"""The call-back list (issue 24): the abandoned customers not reached yet, oldest first, and
beside it the contacts waiting now, from the same queue records as /metrics.

A customer is shown by a short pseudonym (the start of their keyed hash), and by their number
only with CCMON_CUSTOMER_SHOW_CLEAR=true, which the worker allows only behind basic auth
(docs/security.md, "Customer data"). Tries: how many of the customer's abandons are on the list.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from importlib import resources
from typing import Any

from streams.config import Settings
from streams.core.layout import waiting_key
from streams.core.queues import QueueStore
from streams.owned import owner_filter

__all__ = ["page", "snapshot"]

#: hex characters of the hash the page shows: enough to tell the customers of a list apart
PSEUDONYM = 8


def snapshot(
    store: QueueStore, settings: Settings, now: float, scope: str, owned: Collection[int] | None = None
) -> dict[str, Any]:
    mine = owner_filter(owned, settings.partitions)
    rows = [r for r in store.callbacks() if mine(r[0])]
    tries = Counter(entry[2] for _, _, _, entry in rows)
    callbacks = [
        {
            "queue": queue,
            "channel": channel,
            "contact_id": cid,
            "abandoned_at": entry[0],
            "waited_s": entry[1],
            "since_s": max(0.0, now - entry[0]),
            "tries": tries[entry[2]],
            "customer": str(entry[2])[:PSEUDONYM],
            "number": entry[3] if settings.customer_show_clear else None,
        }
        for queue, channel, cid, entry in rows
    ]
    waiting = []
    for queue, channel in store.series():
        if not mine(queue):
            continue
        rec = store.data.get(waiting_key(queue, channel))
        returning = store.returning(queue, channel)
        for position, (cid, since) in enumerate(
            sorted(rec["v"].items(), key=lambda kv: (kv[1], kv[0])) if rec else []
        ):
            waiting.append(
                {
                    "queue": queue,
                    "channel": channel,
                    "contact_id": cid,
                    "since": since,
                    "waiting_s": max(0.0, now - since),
                    "position": position + 1,
                    "returning": cid in returning,
                }
            )
    waiting.sort(key=lambda w: (w["since"], w["queue"], w["channel"], w["contact_id"]))
    return {
        "generated_at": now,
        "scope": scope,
        "recovery_window_s": settings.recovery_window_s,
        "customers_on": settings.customer_key is not None,
        "callbacks": callbacks,
        "waiting": waiting,
    }


def page() -> bytes:
    return resources.files("streams.wallboard").joinpath("callbacks.html").read_bytes()
