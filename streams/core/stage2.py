"""Stage 2's intake of one ``ccmon-facts`` message: check each fact, then apply it, one at a time.

A fact on the facts topic is stage 1's output, but it is still bytes from a topic: a bug of an
older release, a hand-made record, or a value no one foresaw must not end stage 2. In the worker
an exception there was fatal, and the fact is on the topic for good, so every restarted worker
read it again and died again. Here a fact that cannot be applied is returned as a
:class:`FactError` (the worker dead-letters it with reason ``apply_error`` and counts it) and the
message's other facts are applied.

Validate, then mutate: a fact's application touches several records (totals, waiting contacts,
a bucket, a day), and one that raised half-way would leave them disagreeing (counted in the
totals and not in the window). Copying the records first would cost a copy of a queue's waiting
contacts per fact. So :func:`check_fact` checks, before anything changes, every value the stores
compute with (types, finite numbers, an event time whose local date exists in every time zone,
the ``extra`` of each kind): what passes is applied by dict and list operations and arithmetic on
finite numbers, which do not raise on the records the stores wrote themselves. Stage 1 validates
events the same way before its lifecycle runs (streams/core/events.py), and its lifecycle works
on a decoded copy of the contact's state (streams/core/lifecycle.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from streams.core.events import AGENT_STATES, Reason
from streams.core.facts import AGENT_ROUTED, CUSTOMER_ROUTED, HAND_PHASES, Fact, Kind
from streams.core.intake import DeadLetter, Record
from streams.core.layout import decode_facts
from streams.core.queues import PREVIOUS

__all__ = ["FactError", "MAX_FACT_TS", "MIN_FACT_TS", "apply_message", "check_fact"]

#: the event times a fact may carry: what events.parse_ts accepts (years 1 to 9999), less two days
#: at each end, so that the local date of any of them exists in every time zone (UTC-12 to UTC+14)
MIN_FACT_TS: Final = -62135596800.0 + 2 * 86400
MAX_FACT_TS: Final = 253402300799.0 - 2 * 86400
#: every fact kind (Kind's names): a kind added there is known here
KINDS: Final[frozenset[str]] = frozenset(
    v for k, v in vars(Kind).items() if k.isupper() and isinstance(v, str)
)


#: kinds whose store reads their extra
NEEDS_EXTRA: Final[frozenset[str]] = frozenset(
    {Kind.AGENT, Kind.AG_STATE, Kind.AG_CONTACT, Kind.AG_DONE, Kind.REPEAT, Kind.FCR, Kind.RESOLUTION}
    | CUSTOMER_ROUTED
)


class BadFact(ValueError):
    """A fact stage 2 cannot apply: what is wrong with it, one line."""


@dataclass(frozen=True, slots=True)
class FactError:
    """A fact (or a whole message) of the facts topic that was not applied, and why."""

    source: str  #: the fact's id: source "topic/partition" of the event that made it
    offset: int  #: its source offset (-1: the message could not be read at all)
    index: int
    row: Any  #: the fact as it came (for the dead letter)
    detail: str

    def dead_letter(self, topic: str, partition: int, offset: int, message: bytes | None) -> DeadLetter:
        """Its dead letter: the source is the facts record (topic, partition, offset) and the value
        the fact as it came (the whole message when it could not be read); the detail names the
        fact's own id, the event it came from."""
        value = message if self.offset < 0 and self.row is None else orjson.dumps(self.row, default=repr)
        where = f"fact {self.index} of {self.source} offset {self.offset}: " if self.offset >= 0 else ""
        return DeadLetter(
            Record(topic, partition, offset, None, value), Reason.APPLY_ERROR, where + self.detail
        )


#: the largest magnitude of a fact's value: finite (NaN and infinities fail the comparison)
MAX_VALUE: Final = 1e300


def _finite(value: Any) -> bool:
    """A real number (not a bool), finite."""
    t = type(value)
    return (t is float or t is int) and -MAX_VALUE <= value <= MAX_VALUE


def _optional_int(value: Any, what: str) -> None:
    if value is not None and type(value) is not int:
        raise BadFact(f"{what} must be an integer or null")


def _extra(kind: str, extra: Any) -> tuple[Any, ...] | None:
    """The ``extra`` of a fact of ``kind``, checked against what its store reads of it."""
    if extra is None:
        if kind in NEEDS_EXTRA:
            raise BadFact(f"a {kind} fact needs its extra")
        return None
    if type(extra) is not list and type(extra) is not tuple:
        raise BadFact("extra must be a list or null")
    x = tuple(extra)
    if kind == Kind.AGENT:
        if len(x) != 1 or (x[0] is not None and x[0] not in AGENT_STATES):
            raise BadFact("an agent fact's extra is [state or null]")
    elif kind == Kind.AG_STATE:
        if len(x) != 4 or x[0] not in AGENT_STATES or not isinstance(x[3], list | tuple):
            raise BadFact("an ag_state fact's extra is [state, reason, name, queues]")
    elif kind == Kind.AG_CONTACT:
        if len(x) != 2 or not isinstance(x[0], str) or x[1] not in HAND_PHASES:
            raise BadFact("an ag_contact fact's extra is [contact id, phase]")
    elif kind == Kind.AG_DONE:
        if len(x) != 1 or not isinstance(x[0], str):
            raise BadFact("an ag_done fact's extra is [contact id]")
    elif kind in CUSTOMER_ROUTED:
        if len(x) < 2 or not isinstance(x[0], str) or type(x[1]) is not int:
            raise BadFact(f"a {kind} fact's extra starts with the contact id (or source) and the release ms")
    elif kind == Kind.REPEAT:
        if len(x) != 1 or x[0] not in PREVIOUS:
            raise BadFact("a repeat fact's extra is [previous outcome]")
    elif kind == Kind.FCR:
        if len(x) != 1 or not isinstance(x[0], bool):
            raise BadFact("an fcr fact's extra is [resolved on first contact]")
    elif kind == Kind.RESOLUTION:
        if len(x) != 1 or type(x[0]) is not int:
            raise BadFact("a resolution fact's extra is [contacts of the case]")
    elif kind == Kind.SURVEY:
        if len(x) > 4:
            raise BadFact("a survey fact's extra is [csat, nps, resolved, ces]")
        for i, value in enumerate(x):
            if i == 2:
                if value is not None and not isinstance(value, bool):
                    raise BadFact("a survey's resolved must be true, false or null")
            else:
                _optional_int(value, "a survey's score")
    return x


def check_fact(row: Any) -> Fact:
    """The fact of a wire row, once every value its store computes with is checked (module doc);
    :class:`BadFact` otherwise. Exact type checks (``type(x) is``) keep it cheap: it runs for every
    fact, and stage 1 writes only these types."""
    if type(row) is not list or len(row) != 8:
        raise BadFact("a fact is a list of 8 values")
    kind, queue, channel, ts, subject, value, late, extra = row
    if kind not in KINDS:
        raise BadFact(f"unknown fact kind {str(kind)[:40]!r}")
    if not _finite(ts):
        raise BadFact(f"ts must be a finite number, not {str(ts)[:40]!r}")
    if not MIN_FACT_TS <= ts <= MAX_FACT_TS:
        raise BadFact(f"ts {ts!r} is outside the event times a local date can hold")
    if not _finite(value):
        raise BadFact(f"value must be a finite number, not {str(value)[:40]!r}")
    if type(late) is not bool:
        raise BadFact("late must be true or false")
    if type(queue) is not str or type(channel) is not str or type(subject) is not str:
        raise BadFact("queue, channel and subject must be strings")
    # the values as they came, as Fact.from_wire keeps them: a replay writes the same bytes
    return Fact(kind, queue, channel, ts, subject, value, late, _extra(kind, extra))


#: how a store applies one fact: (fact, its id, now, the set of keys it changed)
Apply = Callable[[Fact, tuple[str, int, int], float, set[str]], None]


def apply_message(
    value: bytes | None,
    apply_queue: Apply,
    apply_agent: Apply,
    now: float,
    dirty: set[str],
    agents_dirty: set[str],
    apply_customer: Apply | None = None,
) -> list[FactError]:
    """Apply every fact of one facts message; the facts that could not be applied, and why."""
    try:
        if value is None:
            raise BadFact("empty message")
        rows = decode_facts(value)
        if not isinstance(rows, list):
            raise BadFact("'f' is not a list")
    except Exception as exc:  # noqa: BLE001  # not JSON, no "f": the message as a whole
        return [FactError("", -1, -1, None, f"unreadable facts message: {type(exc).__name__}: {exc}"[:300])]
    errors: list[FactError] = []
    for entry in rows:
        src: Any = ""
        offset: Any = -1
        idx: Any = -1
        row: Any = entry
        try:
            if not isinstance(entry, list) or len(entry) != 4:
                raise BadFact("a facts entry is [source, offset, index, fact]")
            src, offset, idx, row = entry
            if not isinstance(src, str) or type(offset) is not int or type(idx) is not int:
                raise BadFact("a fact's id is [source string, offset, index]")
            fact = check_fact(row)
            if fact.kind in AGENT_ROUTED:
                apply_agent(fact, (src, offset, idx), now, agents_dirty)
            elif fact.kind in CUSTOMER_ROUTED:
                if apply_customer is not None:  # None: a worker with no customer stage (no key)
                    apply_customer(fact, (src, offset, idx), now, dirty)
            else:
                apply_queue(fact, (src, offset, idx), now, dirty)
        except Exception as exc:  # noqa: BLE001  # one fact must never stop stage 2 (SPEC §1)
            detail = str(exc) if isinstance(exc, BadFact) else f"{type(exc).__name__}: {exc}"
            at = (offset, idx) if type(offset) is int and type(idx) is int else (-1, -1)
            errors.append(FactError(str(src)[:200], *at, row, detail[:300].replace("\n", " ")))
    return errors
