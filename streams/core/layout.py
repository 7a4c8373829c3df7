"""The one owner of the state tables' key layouts and of the facts batch: every key is built and
parsed here, and a facts batch is encoded and decoded here, so a layout cannot drift between the
module that writes it and the one that reads it back (the worker's ownership drop, the sweep, the
exporters). The bytes are those every earlier version wrote: changelogs and snapshots of a
running deployment stay readable.

Lifecycle table (stage 1, on the partition of the input record):

    c|channel|contact_id        a contact's lifecycle
    g|agent_id                  an agent's latest state
    m|topic|partition           the partition's watermark
    q|partition                 queue names first seen on that partition (the queue cap)
    r|topic|partition|agent_id  an agent id seen on that partition (the agent cap)

Queue table (stage 2, on the facts partition of the queue):

    t|queue|channel, b|queue|channel|start, d|queue|channel|YYYY-MM-DD, w|queue|channel, a|queue,
    e|queue|channel|start (waits that ended in that bucket), k|queue|channel (their graded EWT error),
    i|queue|channel|start (one service-level interval of today or yesterday: window sums)

Agent table (stage 2, on the facts partition of the agent id):

    p|agent_id

Every stage-2 record is ``{"h": marks, "v": value}`` (``h``: for each source partition, the id of
the last fact applied to it; streams/core/queues.py says why). The queue table's values have one
typed codec each below (:class:`Totals`, window vectors, waiting contacts, a queue's agents): the
table holds these dicts as they are and its orjson codec writes them, so encoding is the identity
and decoding (``decode_*``) is reading an older worker's shorter layout as the current one.
"""

from __future__ import annotations

import functools
import zlib
from typing import Any, NotRequired, TypedDict

import orjson

from streams.core import kpis

__all__ = [
    "CONTACT",
    "AGENT",
    "WATERMARK",
    "REGISTRY",
    "SEEN_AGENT",
    "TOTALS",
    "BUCKET",
    "DAY",
    "WAITING",
    "QUEUE_AGENTS",
    "ENDED",
    "GRADED",
    "INTERVAL",
    "AGENT_RECORD",
    "M_TIME",
    "M_DECIDED",
    "new_watermark",
    "FactRow",
    "contact_key",
    "contact_key_parts",
    "agent_key",
    "watermark_key",
    "registry_key",
    "seen_agent_key",
    "seen_agent_key_parts",
    "totals_key",
    "bucket_key",
    "day_key",
    "waiting_key",
    "queue_agents_key",
    "ended_key",
    "graded_key",
    "interval_key",
    "queue_key_parts",
    "agent_record_key",
    "agent_of_record",
    "partition_for_queue",
    "queue_record_partition",
    "agent_record_partition",
    "encode_facts",
    "decode_facts",
    "COUNTERS",
    "WAIT_BUCKETS",
    "HANDLE_BUCKETS",
    "FIRST_RESPONSE_BUCKETS",
    "Marks",
    "Totals",
    "TotalsRecord",
    "WindowRecord",
    "WaitingRecord",
    "QueueAgentsRecord",
    "new_totals",
    "new_totals_record",
    "decode_totals",
    "new_window_record",
    "decode_window",
    "new_waiting_record",
    "new_queue_agents_record",
    "EWT_ERROR_BUCKETS",
    "EndedRecord",
    "GradedRecord",
    "new_ended_record",
    "new_graded_record",
    "CUSTOMER_TOTALS",
    "AT_RISK",
    "CUSTOMER",
    "CUSTOMER_CLOCK",
    "customer_totals_key",
    "at_risk_key",
    "RESOLUTION_BUCKETS",
    "CASE_CONTACT_BUCKETS",
    "CustomerTotals",
    "CustomerTotalsRecord",
    "new_customer_totals_record",
]

# the kind of a record is the first character of its key
CONTACT, AGENT, WATERMARK, REGISTRY, SEEN_AGENT = "c", "g", "m", "q", "r"
TOTALS, BUCKET, DAY, WAITING, QUEUE_AGENTS = "t", "b", "d", "w", "a"
ENDED, GRADED, INTERVAL = "e", "k", "i"
AGENT_RECORD = "p"
#: the customer KPIs of a (queue, channel) and the customers at risk of a queue (stage 2, on the
#: queue's partition); a customer (``u|hash``) and a facts partition's customer clock (``n|p``)
CUSTOMER_TOTALS, AT_RISK, CUSTOMER, CUSTOMER_CLOCK = "x", "z", "u", "n"

#: one fact as sent to stage 2: [source "topic/partition", source offset, index, Fact.to_wire()]
FactRow = list[Any]


# ---- lifecycle table ---------------------------------------------------------------------
def contact_key(channel: str, contact_id: str) -> str:
    return f"c|{channel}|{contact_id}"


def contact_key_parts(key: str) -> tuple[str, str]:
    """(channel, contact id) of a ``c|`` key; the contact id may hold ``|``."""
    _, channel, contact_id = key.split("|", 2)
    return channel, contact_id


def agent_key(agent_id: str) -> str:
    return f"g|{agent_id}"


def watermark_key(topic: str, partition: int) -> str:
    return f"m|{topic}|{partition}"


#: a watermark record: [newest event time (None in JSON for -inf), offset of the last record
#: decided, sweep counter]
M_TIME, M_DECIDED = 0, 1


def new_watermark() -> list[Any]:
    return [float("-inf"), -1, 0]


def registry_key(partition: int) -> str:
    return f"q|{partition}"


def seen_agent_key(topic: str, partition: int, agent_id: str) -> str:
    return f"r|{topic}|{partition}|{agent_id}"


def seen_agent_key_parts(key: str) -> tuple[str, int, str]:
    """(topic, partition, agent id) of an ``r|`` key."""
    _, topic, partition, agent_id = key.split("|", 3)
    return topic, int(partition), agent_id


# ---- queue table -------------------------------------------------------------------------
def totals_key(queue: str, channel: str) -> str:
    return f"t|{queue}|{channel}"


def bucket_key(queue: str, channel: str, start: int) -> str:
    return f"b|{queue}|{channel}|{start}"


def day_key(queue: str, channel: str, day: str) -> str:
    return f"d|{queue}|{channel}|{day}"


def waiting_key(queue: str, channel: str) -> str:
    return f"w|{queue}|{channel}"


def queue_agents_key(queue: str) -> str:
    return f"a|{queue}"


def ended_key(queue: str, channel: str, start: int) -> str:
    return f"e|{queue}|{channel}|{start}"


def graded_key(queue: str, channel: str) -> str:
    return f"k|{queue}|{channel}"


def interval_key(queue: str, channel: str, start: int) -> str:
    return f"i|{queue}|{channel}|{start}"


def customer_totals_key(queue: str, channel: str) -> str:
    return f"x|{queue}|{channel}"


def at_risk_key(queue: str) -> str:
    return f"z|{queue}"


def queue_key_parts(key: str) -> list[str]:
    """[kind, queue, ...] of a queue-table key (queue names hold no ``|``: config.QUEUE_NAME)."""
    return key.split("|")


# ---- agent table -------------------------------------------------------------------------
def agent_record_key(agent_id: str) -> str:
    return f"p|{agent_id}"


def agent_of_record(key: str) -> str:
    return key[2:]


# ---- partitions --------------------------------------------------------------------------
@functools.lru_cache(maxsize=65536)
def partition_for_queue(queue: str, partitions: int) -> int:
    """Stable queue (or agent id) → facts partition (CRC-32, the same in every worker and release)."""
    return zlib.crc32(queue.encode()) % partitions


def queue_record_partition(key: str, partitions: int) -> int:
    """The facts (and changelog) partition of a queue-table record: its queue's; a customer's is
    its hash's, a customer clock's the partition it names."""
    if key[0] == CUSTOMER_CLOCK:
        return int(key[2:])
    return partition_for_queue(key.split("|", 2)[1], partitions)


def agent_record_partition(key: str, partitions: int) -> int:
    """The facts (and changelog) partition of an agent-table record: its agent id's."""
    return partition_for_queue(agent_of_record(key), partitions)


# ---- facts batches -----------------------------------------------------------------------
def encode_facts(rows: list[FactRow]) -> bytes:
    """One message of ``ccmon-facts``: the rows of one stage-1 batch for one facts partition."""
    return orjson.dumps({"f": rows})


def decode_facts(value: bytes) -> list[FactRow]:
    rows: list[FactRow] = orjson.loads(value)["f"]
    return rows


# ---- queue table records -----------------------------------------------------------------
#: a record's applied-fact marks: source "topic/partition" → [offset, index] of the last fact
Marks = dict[str, list[int]]

#: the counters of a totals record, in their order in ``Totals.c``
COUNTERS = (
    "offered",
    "answered",
    "abandoned",
    "short_abandoned",
    "answered_in_threshold",
    "handled",
    "transferred_out",
)
#: upper bounds of the wait and handle histograms (a histogram holds one count per bound, one
#: for +Inf, then the sum)
WAIT_BUCKETS: tuple[float, ...] = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200, 1800, 3600)
HANDLE_BUCKETS: tuple[float, ...] = (30, 60, 120, 180, 240, 300, 420, 600, 900, 1200, 1800, 2700, 3600)
#: a first response is a wait for a reply: the wait's bounds
FIRST_RESPONSE_BUCKETS = WAIT_BUCKETS
#: actual − estimated wait: negative when the contact waited less than its EWT said
EWT_ERROR_BUCKETS: tuple[float, ...] = (-600, -300, -120, -60, -30, -10, 0, 10, 30, 60, 120, 300, 600)


class Totals(TypedDict):
    """``v`` of a ``t|`` record: counters and histograms of a (queue, channel) since the state
    began. Keys are written in this order (the bytes of every earlier version)."""

    c: list[int]  #: COUNTERS
    wa: list[float]  #: wait of answered contacts (WAIT_BUCKETS)
    wb: list[float]  #: wait of abandoned contacts
    hd: list[float]  #: handle time (HANDLE_BUCKETS)
    wd: list[float]  #: wait of dequeued contacts; an older worker's record lacks it
    dq: dict[str, int]  #: dequeued by reason (events.DEQUEUE_REASONS); lacking in older records
    ms: int  #: offers missed; lacking in older records
    fr: list[float]  #: first response time (FIRST_RESPONSE_BUCKETS); lacking in older records


class TotalsRecord(TypedDict):
    h: Marks
    v: Totals


class WindowRecord(TypedDict):
    """A ``b|`` (event-time bucket) or ``d|`` (local day) record: sums in the layout of kpis."""

    h: Marks
    v: list[float]


class WaitingRecord(TypedDict):
    """A ``w|`` record: contact id → offered time of the contacts waiting now."""

    h: Marks
    v: dict[str, float]


class QueueAgentsRecord(TypedDict):
    """An ``a|`` record: agent id → [state, event time] of the agents serving the queue."""

    h: Marks
    v: dict[str, list[Any]]


class EndedRecord(TypedDict):
    """An ``e|`` record: the waits of a (queue, channel) that ended in one event-time bucket, each
    [offered time, end time, outcome ("answered"/"abandoned"/"dequeued"), late (0/1)], in the
    order they were applied (readers sort them: streams/core/queues.py grades them)."""

    h: Marks
    v: list[list[Any]]


class GradedRecord(TypedDict):
    """A ``k|`` record: the EWT error of the ``e|`` buckets up to ``through`` (their start), folded
    when they expired: outcome → per-bucket counts + sum (EWT_ERROR_BUCKETS). ``through`` is None
    until the first fold; an ``e|`` bucket at or before it is counted here, not read again."""

    h: Marks
    through: int | None
    v: dict[str, list[float]]


def _histogram(bounds: tuple[float, ...]) -> list[float]:
    return [0] * (len(bounds) + 2)


def new_totals() -> Totals:
    return {
        "c": [0] * len(COUNTERS),
        "wa": _histogram(WAIT_BUCKETS),
        "wb": _histogram(WAIT_BUCKETS),
        "hd": _histogram(HANDLE_BUCKETS),
        "wd": _histogram(WAIT_BUCKETS),
        "dq": {},
        "ms": 0,
        "fr": _histogram(FIRST_RESPONSE_BUCKETS),
    }


def new_totals_record() -> TotalsRecord:
    return {"h": {}, "v": new_totals()}


def decode_totals(v: Totals) -> Totals:
    """A totals value with every key of the current layout: a record of a worker from before
    dequeued and missed, or first responses, were counted gets zeros for them, in place (its next
    write has them)."""
    if "ms" not in v:
        v.setdefault("wd", _histogram(WAIT_BUCKETS))
        v.setdefault("dq", {})
        v["ms"] = 0
    if "fr" not in v:
        v["fr"] = _histogram(FIRST_RESPONSE_BUCKETS)
    return v


def new_window_record() -> WindowRecord:
    return {"h": {}, "v": [0] * kpis.WIDTH}


def decode_window(v: list[float]) -> list[float]:
    """A window vector of the current width, in place (an older worker's vectors are shorter)."""
    return kpis.padded(v)


#: bounds of the resolution time (1 min to 1 week) and of the contacts per case
RESOLUTION_BUCKETS: tuple[float, ...] = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800)
CASE_CONTACT_BUCKETS: tuple[float, ...] = (1, 2, 3, 4, 5, 7, 10)


class CustomerTotals(TypedDict):
    """``v`` of an ``x|`` record: the customer KPIs of a (queue, channel) since the state began,
    and the call-back list (the abandons of the queue whose customer was not reached yet)."""

    rp: dict[str, int]  #: repeat contacts by previous outcome
    rc: int  #: abandons recovered
    lo: int  #: abandons lost
    fd: int  #: operational FCR decided
    fy: int  #: of which resolved on first contact
    rs: list[float]  #: resolution time (RESOLUTION_BUCKETS)
    cc: list[float]  #: contacts per case (CASE_CONTACT_BUCKETS)
    u: dict[str, list[Any]]  #: contact id → [abandoned at, wait, customer hash, number or None]
    rt: NotRequired[dict[str, float]]  #: repeat contacts of the last day → offered time (returning)


class CustomerTotalsRecord(TypedDict):
    h: Marks
    v: CustomerTotals


def new_customer_totals_record() -> CustomerTotalsRecord:
    return {
        "h": {},
        "v": {
            "rp": {},
            "rc": 0,
            "lo": 0,
            "fd": 0,
            "fy": 0,
            "rs": _histogram(RESOLUTION_BUCKETS),
            "cc": _histogram(CASE_CONTACT_BUCKETS),
            "u": {},
        },
    }


def new_waiting_record() -> WaitingRecord:
    return {"h": {}, "v": {}}


def new_queue_agents_record() -> QueueAgentsRecord:
    return {"h": {}, "v": {}}


def new_ended_record() -> EndedRecord:
    return {"h": {}, "v": []}


def new_graded_record() -> GradedRecord:
    return {"h": {}, "through": None, "v": {}}
