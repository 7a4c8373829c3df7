"""Reads of Faust's and aiokafka's private attributes that the worker needs, each behind a
function so that nothing outside ``streams/faust_ext/`` touches a private name
(tests/unit/test_faust_private_api.py pins what they read)."""

from __future__ import annotations

from typing import Any

__all__ = ["assignment", "member_id", "producer_client", "read_offsets", "recovery_position"]


def member_id(app: Any) -> str:
    """This worker's member id in the consumer group (aiokafka's, inside Faust's consumer thread)."""
    try:
        return str(app.consumer._thread._consumer._coordinator.member_id or "")
    except AttributeError:  # a Faust that keeps its consumer elsewhere: tests/unit/test_faust_private_api.py
        return ""


def producer_client(app: Any) -> Any:
    """The aiokafka client Faust produces with (a metadata request through it probes the broker)."""
    return app.producer._ensure_producer().client


def assignment(app: Any) -> Any:
    """The assignment Faust recorded last. It records it when the assignment arrives, before
    recovery starts (its on_partitions_assigned signal comes after, and a short recovery can
    complete first); ``consumer.assignment()`` is empty while a rebalance runs."""
    return app._assignment or ()


def read_offsets(consumer: Any) -> Any:
    """Topic-partition → offset of the last message the Faust consumer read."""
    return consumer._read_offset


def recovery_position(app: Any, tp: Any) -> int | None:
    """The offset the table recovery would seek a changelog partition it restores (active) or
    follows (standby) to, as ``Recovery._seek_offsets`` does: its last offset seen, or 0 when
    none. None for a partition it does not read, or has not placed yet (its offset is None until
    ``Recovery._build_offsets`` has run: recovery's own seek is still to come)."""
    recovery = app.tables.recovery
    for tps, offsets in (
        (recovery.active_tps, recovery.active_offsets),
        (recovery.standby_tps, recovery.standby_offsets),
    ):
        if tp in tps:
            offset = offsets.get(tp)
            return None if offset is None else max(offset, 0)
    return None
