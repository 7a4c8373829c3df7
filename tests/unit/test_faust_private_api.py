"""ccmon overrides or leans on parts of faust-streaming that are not its public API. Each is listed
here with a digest of its source in the version it was written against; an upgrade that changes
one fails this test, naming what to review, instead of changing a worker's behaviour unnoticed
(exactness depends on several: the commit path, the hand-off, where recovery starts reading)."""

from __future__ import annotations

import hashlib
import importlib
import inspect
from importlib.metadata import version

WRITTEN_AGAINST = "0.15.3"

#: "module:qualified name" → (digest of its source, which part of ccmon depends on it and how)
PINNED = {
    "faust.transport.consumer:Consumer._drain_messages": (
        "44a2500309e83c63",
        "streams/faust_ext/consumer.py re-implements the fetch loop (awaited hand-off)",
    ),
    "faust.transport.consumer:Consumer.getmany": (
        "4b168d84882a70d6",
        "streams/faust_ext/consumer.py: a fetch returned while the flow is stopped, or the rest of"
        " one after the generation changed, is dropped; changelog partitions under recovery are"
        " sought back after it",
    ),
    "faust.transport.consumer:Consumer._wait_next_records": (
        "6218e1969a636b3f",
        "streams/faust_ext/consumer.py wraps it to keep what the last fetch returned",
    ),
    "faust.transport.consumer:Consumer._commit_offsets": (
        "1a69799041188441",
        "streams/faust_ext/consumer.py wraps it: pending state writes are awaited first (rule 1)",
    ),
    "faust.transport.drivers.aiokafka:Producer.send": (
        "0b5bd08f52e5e2a9",
        "streams/faust_ext/changelog.py writes changelog records through it, bypassing Table.send_changelog",
    ),
    "faust.stores.memory:Store": (
        "83ceb1145af05eae",
        "streams/faust_ext/snapshot.py subclasses it (on_rebalance, persisted_offset)",
    ),
    "faust.tables.manager:TableManager.on_rebalance": (
        "2d2c23a07bf54328",
        "streams/faust_ext/snapshot.py: stores see the assignment before recovery asks for offsets",
    ),
    "faust.tables.recovery:Recovery._add": (
        "1584a197b11bf835",
        "streams/faust_ext/snapshot.py: recovery starts at the store's persisted_offset",
    ),
    "faust.tables.recovery:Recovery._seek_offsets": (
        "19598ca63d94d250",
        "streams/faust_ext/snapshot.py: recovery re-reads the message at persisted_offset;"
        " streams/faust_ext/internals.py recovery_position mirrors where it seeks",
    ),
    "faust.tables.base:Collection._new_store": (
        "914a2bda605d38f5",
        "streams/faust_ext/snapshot.py: a table's store= URL picks the store (a URL with no host is false)",
    ),
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._ensure_consumer": (
        "ff4a4c693b7ec63f",
        "streams/faust_ext/internals.py reads the group member id at consumer._thread._consumer"
        " (for predecessor.py)",
    ),
    "faust.app.base:App.on_rebalance_start": (
        "5c1e23de30674082",
        "streams/faust_ext/consumer.py reads rebalancing_count before rebalancing: this sets"
        " rebalancing first, then increments the count",
    ),
    "faust.transport.drivers.aiokafka:ConsumerRebalanceListener.on_partitions_revoked": (
        "348c3aec879faf80",
        "streams/faust_ext/consumer.py: App.on_rebalance_start runs here, in the consumer thread,"
        " concurrently with the fetch loop",
    ),
    "faust.tables.base:Collection.data": (
        "ade4a02ddd5582cb",
        "streams/worker/tables.py sets the snapshot path on the store it creates",
    ),
}


def digest(name: str) -> str:
    module, qualname = name.split(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if isinstance(obj, property):
        obj = obj.fget
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]


def test_faust_internals_ccmon_relies_on_are_unchanged():
    changed = [f"{name} ({why})" for name, (pinned, why) in PINNED.items() if digest(name) != pinned]
    assert not changed, (
        f"faust-streaming {version('faust-streaming')} differs from {WRITTEN_AGAINST}, which ccmon "
        "was written against, in:\n  "
        + "\n  ".join(changed)
        + "\nreview each use, then update the digests here"
    )
