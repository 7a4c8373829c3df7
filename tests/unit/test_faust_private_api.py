"""ccmon overrides or leans on parts of faust-streaming that are not its public API. Each is listed
here with a digest of its source in the version it was written against; an upgrade that changes
one fails this test, naming what to review, instead of changing a worker's behaviour unnoticed
(exactness depends on several: the commit path, the hand-off, where recovery starts reading)."""

from __future__ import annotations

import hashlib
import importlib
import inspect
from importlib.metadata import version
from pathlib import Path

WRITTEN_AGAINST = "0.15.3"  # with aiokafka 0.14.0

#: "module:qualified name" → (digest of its source, which part of ccmon depends on it and how)
PINNED = {
    "faust.transport.consumer:Consumer._drain_messages": (
        "44a2500309e83c63",
        "streams/faust_ext/consumer.py re-implements the fetch loop (batch hand-off)",
    ),
    "faust.transport.consumer:Consumer.ack": (
        "5fcf41cf45153475",
        "streams/faust_ext/consumer.py: ack_batch does what it does, for a whole batch at once",
    ),
    "faust.transport.consumer:Consumer.__init__": (
        "302410d59e6972d1",
        "streams/faust_ext/consumer.py: ack_batch updates _acked, _acked_index, _n_acked by "
        "_committed_offset, as ack does",
    ),
    "faust.transport.consumer:Consumer._new_offset": (
        "1d2c7ea89a7ad4f1",
        "streams/faust_ext/consumer.py: batch acks feed it; it commits only up to the first hole",
    ),
    "faust.transport.consumer:Consumer.wait_empty": (
        "e4662fe24f094819",
        "streams/faust_ext/consumer.py extends it: a revocation waits for the batches in hand first",
    ),
    "faust.transport.consumer:Consumer._wait_for_ack": (
        "d9c9337d4af88e54",
        "streams/faust_ext/consumer.py: wait_empty waits on it, ack_batch notifies it",
    ),
    "faust.channels:Channel.put": (
        "81477c39c70becce",
        "streams/faust_ext/consumer.py puts batches into the agents' in-memory channels",
    ),
    "faust.streams:Stream._py_aiter": (
        "3a48ee257a65435b",
        "streams/worker/app.py: an agent's stream yields a channel value that is not an Event as "
        "it is (the batch), with no ack and no generation check (ccmon's own)",
    ),
    "faust.streams:Stream._c_aiter": (
        "fa44582a5882e9df",
        "streams/worker/app.py: the same through the Cython stream iterator "
        "(faust/_cython/streams.pyx, pinned below), the one in use when the extension is built",
    ),
    "faust.transport.conductor:Conductor._update_indices": (
        "619b3247b96ac7d5",
        "streams/worker/tables.py subscribes the batched topics with app.topics.add (no agent "
        "iterates them); the facts topic is declared there",
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
    "faust.transport.consumer:Consumer.commit": (
        "a354437baaa08bf8",
        "streams/faust_ext/consumer.py: the fetch loop's commit runs beside it and waits for the "
        "one in flight through _commit_fut (set while a commit runs, resolved and cleared at its end)",
    ),
    "faust.transport.consumer:Consumer.commit_and_end_transactions": (
        "892377824b11a2ee",
        "streams/faust_ext/consumer.py overrides it: the revocation/stop commit waits for the one "
        "in flight and then commits (Faust's would skip its own)",
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
    "faust.transport.consumer:Consumer.on_partitions_assigned": (
        "29ce96596f05a18c",
        "streams/faust_ext/consumer.py overrides it to record the rebalance whose assignment came",
    ),
    "faust.tables.recovery:Recovery.on_recovery_completed": (
        "6ef567acf072e46d",
        "streams/faust_ext/consumer.py: a recovery seeks, resumes the flow and clears "
        "app.rebalancing even after the next rebalance's revocation (_settled() checks the assignment)",
    ),
    "faust.web.base:Web._enabled_blueprints": (
        "0a5b53f233d4d571",
        "streams/faust_ext/web.py empties the class lists of built-in blueprints it reads",
    ),
    "faust.web.base:Web.init_server": (
        "bd11a60294bb1e4f",
        "streams/faust_ext/web.py extends it: every route is registered once it has run (the log line)",
    ),
    "aiokafka.protocol.api:Request.prepare": (
        "3a65d9fdefe34d3f",
        "streams/kafka/identity.py: the highest struct of a Request[...] the broker supports is sent"
        " (Metadata v12 for the topic ids, else v5)",
    ),
    "faust.transport.drivers.aiokafka:Consumer._new_consumer_thread": (
        "0870ec53dea75083",
        "streams/faust_ext/consumer.py overrides it: the consumer thread is its FetchThread",
    ),
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._create_worker_consumer": (
        "c2701bfc3e6f6cad",
        "streams/faust_ext/consumer.py: FetchThread sets the fetch wait on the consumer it builds "
        "(Faust passes fetch_max_wait_ms=1500)",
    ),
    "aiokafka.consumer.consumer:AIOKafkaConsumer.start": (
        "2f1ba70443327538",
        "streams/faust_ext/consumer.py sets _fetch_max_wait_ms before start, which builds the "
        "Fetcher from it",
    ),
    "aiokafka.consumer.fetcher:Fetcher._get_actions_per_node": (
        "1dab2cf937d165d0",
        "streams/faust_ext/consumer.py: why the fetch wait matters (a partition with records not "
        "taken is left out of the request, and none is sent to a broker with one in flight)",
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


#: the Cython stream iterator's source, shipped beside the extension: its ``_prepare_event`` passes a
#: channel value that is not an Event through as it is (streams/worker/app.py's batches)
CYTHON_STREAMS = "0041622f4a251188"


def test_faust_cython_stream_iterator_is_unchanged():
    source = Path(inspect.getfile(importlib.import_module("faust"))).parent / "_cython" / "streams.pyx"
    assert hashlib.sha256(source.read_bytes()).hexdigest()[:16] == CYTHON_STREAMS, (
        f"faust-streaming {version('faust-streaming')}: faust/_cython/streams.pyx differs from "
        f"{WRITTEN_AGAINST}; review how its StreamIterator passes non-Event channel values (the "
        "agents' batches), then update the digest"
    )


def test_faust_internals_ccmon_relies_on_are_unchanged():
    changed = [f"{name} ({why})" for name, (pinned, why) in PINNED.items() if digest(name) != pinned]
    assert not changed, (
        f"faust-streaming {version('faust-streaming')} differs from {WRITTEN_AGAINST}, which ccmon "
        "was written against, in:\n  "
        + "\n  ".join(changed)
        + "\nreview each use, then update the digests here"
    )
