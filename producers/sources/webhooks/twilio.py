"""Twilio TaskRouter, as Twilio Event Streams pushes it to a webhook sink: CloudEvents, signed.

What Twilio sends (docs/sources/twilio.md has the sources and the whole mapping table):
- a POST whose body is a JSON array of CloudEvents 1.0 (one object is accepted too), each with
  ``id`` (stable across Twilio's re-deliveries), ``type`` (``com.twilio.taskrouter.<event>``),
  ``time`` and ``data``: the TaskRouter event (``data.timestamp``, ``data.name``) with its fields
  in ``data.payload`` (``task_sid``, ``task_queue_sid``, ``task_queue_name``,
  ``task_channel_unique_name``, ``worker_sid``, ``worker_name``, ``worker_activity_name``,
  ``reservation_sid``, ``task_canceled_reason``...);
- ``X-Twilio-Signature``: base64(HMAC-SHA1(auth token, URL)), where for a JSON body the URL is the
  sink's destination with ``bodySHA256=<hex SHA-256 of the body>`` appended to its query. The
  receiver does not need the query it was called with: it appends the hash of the body it got to
  the configured destination, so a changed body or URL fails the same comparison. No timestamp is
  signed (Twilio's scheme has none): a replayed delivery is a duplicate by its event ids;
- at least once (re-deliveries for up to 4 hours), in no particular order, 5 s to answer.

Why the state: Event Streams does not keep a task's events in order, and the worker rejects a
lifecycle step whose predecessor it has not seen. The platform keeps, per task, the phase reached
and the queues entered, so that (a) an event whose predecessor is missing because it is simply
late is held (in the saved state) until the predecessor arrives, at most ``hold_s`` of event time,
then released anyway; (b) an ``offered`` that has not arrived is built from any later event of the
task (all carry the task's queue) with the id the real one will have, so the real one is then a
duplicate; (c) the first queue a task enters gives ``offered``, a later one ``transferred``. Ids are
built from the task (``twilio:<task sid>:<step>``): every delivery that means the same step (the
task's and the reservation's wrap-up, ``workflow.timeout`` and the ``task.canceled`` after it)
gives the same id, so whichever arrives first counts and the other is a duplicate in the worker.
Agent states take the CloudEvent id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from producers.sources.events import Channel, SourceEvent, agent_state, contact
from producers.sources.webhooks.platform import (
    BadRequest,
    ConfigError,
    Ignored,
    Platform,
    PlatformConfig,
    Unauthorized,
    customer_id,
    same,
    timestamp,
)
from streams.core.events import AGENT_STATES, AgentStateName

PREFIX = "com.twilio.taskrouter."
SIGNATURE_HEADER = "X-Twilio-Signature"

#: Twilio's default activities (a new Workspace: Offline, Available, Unavailable; Flex adds Break)
#: and TaskRouter's older template (Idle, Busy, Reserved, WrapUp). Any other activity needs a line
#: in the ``activities`` option; without one it is ``away`` with the activity name as the reason.
DEFAULT_ACTIVITIES: dict[str, AgentStateName] = {
    "available": "available",
    "idle": "available",
    "unavailable": "away",
    "break": "away",
    "offline": "offline",
    "busy": "busy",
    "reserved": "busy",
    "wrapup": "acw",
    "wrap-up": "acw",
    "wrap up": "acw",
}

#: TaskRouter events that mean nothing for ccmon's KPIs: known, acknowledged, no event
NO_EVENT = frozenset(
    {
        "task.created",
        "task.updated",
        "task.deleted",
        "task.system-deleted",
        "task.transfer-initiated",
        "task.transfer-attempt-failed",
        "task.transfer-failed",
        "task.transfer-canceled",
        "task.transfer-completed",
        "task-queue.moved",  # the task-queue.entered of the next queue says where it went
        "task-queue.timeout",
        "reservation.created",
        "reservation.canceled",
        "reservation.rescinded",
        "reservation.failed",
        "workflow.entered",
        "workflow.target-matched",
        "worker.created",
        "worker.deleted",
        "worker.attributes.update",
        "worker.capacity.update",
        "worker.channel.availability.update",
    }
)
TIMEOUT_REASON = re.compile(r"timeout|timed out|ttl", re.IGNORECASE)
QUEUE_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
REASON_CHARS = re.compile(r"[^A-Za-z0-9_. -]")

#: lifecycle phases of a task, in order; a step needs its predecessor's phase
PHASES = ("", "waiting", "answered", "ended", "done")
RANK = {p: i for i, p in enumerate(PHASES)}
NEEDS = {"answered": "waiting", "missed": "waiting", "abandoned": "waiting", "dequeued": "waiting"}
NEEDS |= {"ended": "answered", "wrapup_ended": "ended"}
AFTER = {"answered": "answered", "abandoned": "done", "dequeued": "done", "ended": "ended"}
AFTER |= {"wrapup_ended": "done"}
TASK_PHASE = {"busy": 1, "acw": 2, "done": 3}  #: a task's phase for its agent


def queue_label(name: str, sid: str) -> str:
    """SPEC's queue (``[A-Za-z0-9_.-]{1,64}``): the TaskQueue's name with other characters as ``_``;
    its SID when it has no name."""
    label = QUEUE_CHARS.sub("_", name.strip())[:64]
    return label or QUEUE_CHARS.sub("_", sid)[:64] or "unknown"


@dataclass(slots=True)
class Task:
    channel: str = "voice"
    phase: str = ""
    queues: list[str] = field(default_factory=list)  #: labels of the queues entered, in order
    worker: str = ""
    last: float = 0.0  #: event time of its latest event: when a finished task is forgotten
    held: list[dict[str, Any]] = field(default_factory=list)  #: {"need", "stream", "key", "event", "queue"}
    seen: list[str] = field(default_factory=list)  #: CloudEvent ids applied: a repeat is a re-delivery
    sent: list[dict[str, Any]] = field(default_factory=list)  #: {"stream", "key", "event"} sent, in order
    customer: str = ""  #: from the task's attributes (``customer_attributes``), "" when none
    case: str = ""  #: from the task's attributes (``case_attribute``), "" when none


@dataclass(slots=True)
class Worker:
    activity: str = ""  #: the state of its TaskRouter activity ("" before the first seen)
    reason: str = ""
    name: str = ""
    queues: list[str] = field(default_factory=list)  #: queues it got reservations from
    tasks: dict[str, str] = field(default_factory=dict)  #: task sid -> busy | acw | done
    sent: str = ""  #: the state last emitted


def _path(doc: Mapping[str, Any], dotted: str) -> Any:
    """``customers.phone`` -> doc["customers"]["phone"]; None when a step is missing."""
    value: Any = doc
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


class Twilio(Platform):
    name = "twilio"
    answer_within_s = 4.0  #: Event Streams waits 5 s for a webhook sink's answer

    def __init__(self, config: PlatformConfig) -> None:
        super().__init__(config)
        if not config.secret:
            raise ConfigError("twilio: the secret is the account's auth token; it is empty")
        self.url = config.option("url", "")
        if not re.match(r"^https?://[^/\s]+", self.url) or "bodySHA256" in self.url:
            raise ConfigError(
                "twilio: url must be the sink's destination exactly as configured in Twilio "
                "(http(s)://host/path?query, without bodySHA256): Twilio signs it"
            )
        self.activities: dict[str, AgentStateName] = dict(DEFAULT_ACTIVITIES)
        for name, state in config.pairs_option("activities", "twilio: activities", lower=True).items():
            if state not in AGENT_STATES:
                raise ConfigError(f"twilio: activities: {state!r} is not one of {', '.join(AGENT_STATES)}")
            self.activities[name] = state
        voice = config.option("voice_channels", "voice")
        self.voice_channels = {c.strip().lower() for c in voice.split(",") if c.strip()}
        #: task attributes naming the customer, the first one present wins (dotted for nested)
        self.customer_attributes = [
            a.strip() for a in config.option("customer_attributes", "from").split(",") if a.strip()
        ]
        self.case_attribute = config.option("case_attribute", "").strip()
        try:
            self.hold_s = float(config.option("hold_s", "600"))
            self.retention_s = float(config.option("retention_s", str(24 * 3600)))
        except ValueError:
            raise ConfigError("twilio: hold_s and retention_s are seconds") from None
        self.tasks: dict[str, Task] = {}
        self.workers: dict[str, Worker] = {}
        self.newest = 0.0
        self.next_sweep = 0.0
        self.ignored: Counter[str] = Counter()  #: CloudEvent types acknowledged without an event
        self.released: Counter[str] = Counter()  #: held events sent after hold_s without predecessor
        self.dropped: Counter[str] = Counter()  #: events too late to place, by why
        self.held_total: Counter[str] = Counter()  #: events held for their predecessor, by type
        self._replayed: set[str] = set()  #: tasks whose story this parse already sent again
        self.holding: set[str] = set()  #: tasks with held events (the only ones the bound looks at)

    # ---- the receiver's three steps ---------------------------------------------------------------
    def steps(self) -> Mapping[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {("held", k): n for k, n in self.held_total.items()}
        for step, counts in (
            ("ignored", self.ignored),
            ("released", self.released),
            ("dropped", self.dropped),
        ):
            out.update({(step, k): n for k, n in counts.items()})
        return out

    def held_now(self) -> int:
        return sum(len(t.held) for s in self.holding if (t := self.tasks.get(s)) is not None)

    def signed_url(self, body: bytes) -> str:
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}bodySHA256={hashlib.sha256(body).hexdigest()}"

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        given = headers.get(SIGNATURE_HEADER)
        if not given:
            raise Unauthorized(f"no {SIGNATURE_HEADER} header")
        digest = hmac.new(self.config.secret, self.signed_url(body).encode(), hashlib.sha1).digest()
        if not same(base64.b64encode(digest).decode(), given.strip()):
            raise Unauthorized(f"{SIGNATURE_HEADER} does not match the URL and body")

    def parse(self, headers: Mapping[str, str], body: bytes) -> list[SourceEvent]:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"body is not JSON: {str(exc)[:120]}") from None
        batch = doc if isinstance(doc, list) else [doc]
        items = [self._cloud_event(i, ce) for i, ce in enumerate(batch)]
        known = [it for it in items if it[1] in HANDLED or it[1] in NO_EVENT]
        for it in items:
            if it not in known:
                self.ignored[it[1]] += 1
        if not known:
            raise Ignored(
                "no TaskRouter event ccmon maps: " + ",".join(sorted({it[1] for it in items}))[:200]
            )
        out: list[SourceEvent] = []
        self._replayed = set()
        self.dirty = True
        for ts, kind, ce_id, payload in sorted(known, key=lambda it: (it[0], it[1], it[2])):
            self.newest = max(self.newest, ts)
            self._apply(kind, ts, ce_id, payload, out)
        self._release_overdue(out)
        self._sweep()
        return out

    # ---- decoding -----------------------------------------------------------------------------------
    def _cloud_event(self, i: int, ce: Any) -> tuple[float, str, str, dict[str, Any]]:
        if not isinstance(ce, dict):
            raise BadRequest(f"event {i} is not a JSON object")
        ce_type, ce_id, data = ce.get("type"), ce.get("id"), ce.get("data")
        if not isinstance(ce_type, str) or not isinstance(ce_id, str) or not ce_id:
            raise BadRequest(f"event {i} has no CloudEvents type or id")
        kind = ce_type[len(PREFIX) :] if ce_type.startswith(PREFIX) else ce_type
        if not isinstance(data, dict):
            if kind in HANDLED:
                raise BadRequest(f"event {i} ({ce_type}) has no data object")
            return 0.0, kind, ce_id, {}
        payload = data.get("payload")
        if not isinstance(payload, dict):
            payload = {}
        when = data.get("timestamp") or ce.get("time")
        ts = timestamp(when, f"event {i} time") if kind in HANDLED else 0.0
        return ts, kind, ce_id, payload

    @staticmethod
    def _text(payload: Mapping[str, Any], key: str) -> str:
        value = payload.get(key)
        return value.strip() if isinstance(value, str) else ""

    def _task(self, payload: Mapping[str, Any], kind: str) -> tuple[str, Task]:
        sid = self._text(payload, "task_sid")
        if not sid:
            raise BadRequest(f"{kind}: payload has no task_sid")
        task = self.tasks.get(sid)
        if task is None:
            unique = self._text(payload, "task_channel_unique_name").lower()
            task = self.tasks[sid] = Task(channel="voice" if unique in self.voice_channels else "chat")
        if not task.queues and not (task.customer and (task.case or not self.case_attribute)):
            self._who(task, payload)  # until the offer is sent: what it carries
        return sid, task

    @staticmethod
    def _who_of(task: Task) -> dict[str, Any]:
        return {"customer": task.customer or None, "case_id": task.case or None}

    def _who(self, task: Task, payload: Mapping[str, Any]) -> None:
        """The customer and case from the task's attributes (a JSON text in Event Streams'
        ``task_attributes``); an attribute that is absent, not text or withheld gives none."""
        try:
            attrs = orjson.loads(self._text(payload, "task_attributes") or "{}")
        except orjson.JSONDecodeError:
            return
        if not isinstance(attrs, dict):
            return
        if not task.customer:
            for name in self.customer_attributes:
                who = customer_id(_path(attrs, name))
                if who is not None:
                    task.customer = who
                    break
        if self.case_attribute and not task.case:
            task.case = customer_id(_path(attrs, self.case_attribute)) or ""

    def _queue(self, payload: Mapping[str, Any]) -> str:
        return queue_label(self._text(payload, "task_queue_name"), self._text(payload, "task_queue_sid"))

    # ---- the mapping ---------------------------------------------------------------------------------
    def _apply(
        self, kind: str, ts: float, ce_id: str, payload: dict[str, Any], out: list[SourceEvent]
    ) -> None:
        if kind in NO_EVENT:
            return
        if kind == "worker.activity.update":
            self._activity(ts, ce_id, payload, out)
            return
        sid, task = self._task(payload, kind)
        task.last = max(task.last, ts)
        if ce_id in task.seen:
            # Twilio delivers again what it got no 2xx for: the answer may have been lost, or the
            # receiver answered 503 after this platform had moved on. Sending the task's whole story
            # again (duplicates in the worker) makes sure nothing that delivery gave is missing.
            if sid not in self._replayed:
                self._replayed.add(sid)
                out += [SourceEvent(d["stream"], d["key"], d["event"]) for d in task.sent]
            return
        task.seen.append(ce_id)
        if kind == "task-queue.entered":
            self._entered(sid, task, ts, self._queue(payload), out)
            return
        worker = self._text(payload, "worker_sid")
        if kind == "reservation.accepted":
            if not worker:
                raise BadRequest(f"{kind}: payload has no worker_sid")
            task.worker = worker
            self._step(sid, task, payload, "answered", ts, f"twilio:{sid}:answered", out, agent_id=worker)
            self._worker_task(worker, payload, sid, "busy", ts, f"twilio:{sid}:answered", out)
        elif kind in ("reservation.rejected", "reservation.timeout"):
            res = self._text(payload, "reservation_sid") or ce_id
            if not worker:
                raise BadRequest(f"{kind}: payload has no worker_sid")
            self._learn_queue(worker, payload)
            self._step(sid, task, payload, "missed", ts, f"twilio:{sid}:{res}:missed", out, agent_id=worker)
        elif kind == "task.canceled":
            why = self._text(payload, "task_canceled_reason")
            if TIMEOUT_REASON.search(why):
                self._step(sid, task, payload, "dequeued", ts, f"twilio:{sid}:left", out, reason="timeout")
            else:
                self._step(sid, task, payload, "abandoned", ts, f"twilio:{sid}:left", out)
        elif kind == "workflow.timeout":
            self._step(sid, task, payload, "dequeued", ts, f"twilio:{sid}:left", out, reason="timeout")
        elif kind == "workflow.skipped":
            self._step(sid, task, payload, "dequeued", ts, f"twilio:{sid}:left", out)
        elif kind in ("task.wrapup", "reservation.wrapup"):
            self._step(sid, task, payload, "ended", ts, f"twilio:{sid}:ended", out)
            if worker or task.worker:
                self._worker_task(worker or task.worker, payload, sid, "acw", ts, f"twilio:{sid}:ended", out)
        elif kind in ("task.completed", "reservation.completed"):
            self._step(sid, task, payload, "wrapup_ended", ts, f"twilio:{sid}:wrapup_ended", out)
            if worker or task.worker:
                self._worker_task(
                    worker or task.worker, payload, sid, "done", ts, f"twilio:{sid}:wrapup_ended", out
                )

    def _entered(self, sid: str, task: Task, ts: float, queue: str, out: list[SourceEvent]) -> None:
        if queue in task.queues:  # a re-delivery: the same event again (a duplicate in the worker)
            n = task.queues.index(queue)
            etype, eid = (
                ("offered", f"twilio:{sid}:offered") if n == 0 else ("transferred", f"twilio:{sid}:q:{queue}")
            )
            self._emit(sid, task, etype, ts, eid, out, queue=queue, **(self._who_of(task) if n == 0 else {}))
            return
        if not task.queues:
            task.queues.append(queue)
            self._emit(
                sid, task, "offered", ts, f"twilio:{sid}:offered", out, queue=queue, **self._who_of(task)
            )
        elif task.phase == "waiting":
            task.queues.append(queue)
            self._emit(sid, task, "transferred", ts, f"twilio:{sid}:q:{queue}", out, queue=queue)
        # else: a move reported after the task was answered or left: too late to place (documented)
        self._flush(sid, task, out)

    def _step(
        self,
        sid: str,
        task: Task,
        payload: Mapping[str, Any],
        etype: str,
        ts: float,
        eid: str,
        out: list[SourceEvent],
        **fields: Any,
    ) -> None:
        need = NEEDS[etype]
        if etype == "missed" and RANK[task.phase] > RANK["waiting"]:
            # the offer happened while the task waited, but it is delivered after the task's answer
            # (or end) reached the worker, which only takes a missed offer on a waiting contact
            self.dropped["missed offer delivered after the answer"] += 1
            return
        entered = self._entered_at(payload)
        if not task.queues and entered is not None:
            # the payload says when the task entered its queue: its offered is built now, exactly
            # (to the second), with the id the real one has, which is then a duplicate
            self._offer(sid, task, self._queue(payload), ts - entered, out)
        if RANK[task.phase] >= RANK[need]:
            self._flush(sid, task, out, until_ms=round(ts * 1000))  # what happened before it, first
            self._emit(sid, task, etype, ts, eid, out, **fields)
            self._flush(sid, task, out)
        else:  # held until its predecessor arrives; a missing offered is built at the bound
            ev = contact(etype, sid, ts, eid, channel=self._chan(task), **fields)  # type: ignore[arg-type]
            held = {"need": need, "stream": ev.stream, "key": ev.key, "event": ev.event}
            task.held.append(held | {"queue": self._queue(payload)})
            self.holding.add(sid)
            self.held_total[etype] += 1

    def _offer(self, sid: str, task: Task, queue: str, ts: float, out: list[SourceEvent]) -> None:
        task.queues.append(queue)
        self._emit(sid, task, "offered", ts, f"twilio:{sid}:offered", out, queue=queue, **self._who_of(task))

    @staticmethod
    def _entered_at(payload: Mapping[str, Any]) -> float | None:
        """How long before this event the task entered its current queue, when the payload says."""
        age = payload.get("task_age_in_queue")
        if isinstance(age, int | float) and not isinstance(age, bool) and 0 <= age < 10**7:
            return float(age)
        return None

    def _emit(
        self, sid: str, task: Task, etype: str, ts: float, eid: str, out: list[SourceEvent], **fields: Any
    ) -> None:
        self._send(task, contact(etype, sid, ts, eid, channel=self._chan(task), **fields), out)  # type: ignore[arg-type]
        after = AFTER.get(etype, "waiting" if etype in ("offered", "transferred") else task.phase)
        if RANK[after] > RANK[task.phase]:
            task.phase = after

    @staticmethod
    def _send(task: Task, ev: SourceEvent, out: list[SourceEvent]) -> None:
        task.sent.append({"stream": ev.stream, "key": ev.key, "event": ev.event})
        out.append(ev)

    def _flush(self, sid: str, task: Task, out: list[SourceEvent], until_ms: int | None = None) -> None:
        """Held events whose predecessor has now been sent, in event-time order (only those up to
        ``until_ms`` when a later step is about to be sent: they happened before it)."""
        while True:
            ready = [
                h
                for h in task.held
                if RANK[task.phase] >= RANK[h["need"]] and (until_ms is None or h["event"]["ts"] <= until_ms)
            ]
            if not ready:
                return
            first = min(ready, key=lambda h: h["event"]["ts"])
            task.held.remove(first)
            ev = first["event"]
            if ev["type"] == "missed" and RANK[task.phase] > RANK["waiting"]:
                self.dropped["missed offer delivered after the answer"] += 1
                continue
            extra = {k: v for k, v in ev.items() if k not in ("event_id", "type", "contact_id", "ts")}
            self._emit(sid, task, ev["type"], ev["ts"] / 1000.0, ev["event_id"], out, **extra)

    def _release_overdue(self, out: list[SourceEvent]) -> None:
        """Held longer than ``hold_s`` of event time: sent as they are (the worker decides)."""
        for sid in sorted(self.holding):
            task = self.tasks.get(sid)
            if task is None or not task.held:
                self.holding.discard(sid)
                continue
            for h in sorted(task.held, key=lambda h: h["event"]["ts"]):
                if h["event"]["ts"] / 1000.0 <= self.newest - self.hold_s:
                    task.held.remove(h)
                    self.released[h["event"]["type"]] += 1
                    if not task.queues:  # the queue entry never came: offered at this event's time
                        self._offer(sid, task, h["queue"], h["event"]["ts"] / 1000.0, out)
                    self._send(task, SourceEvent(h["stream"], h["key"], h["event"]), out)
                    after = AFTER.get(h["event"]["type"], task.phase)
                    if RANK[after] > RANK[task.phase]:
                        task.phase = after
            self._flush(sid, task, out)

    def _sweep(self) -> None:
        if self.newest < self.next_sweep:
            return
        self.next_sweep = self.newest + 60.0
        cutoff = self.newest - self.retention_s
        for sid in [s for s, t in self.tasks.items() if t.last < cutoff and not t.held]:
            del self.tasks[sid]
        for w in self.workers.values():
            w.tasks = {t: p for t, p in w.tasks.items() if t in self.tasks}

    def _chan(self, task: Task) -> Channel:
        return "voice" if task.channel == "voice" else "chat"

    # ---- agents ---------------------------------------------------------------------------------------
    def _worker(self, payload: Mapping[str, Any]) -> tuple[str, Worker]:
        wid = self._text(payload, "worker_sid")
        w = self.workers.setdefault(wid, Worker())
        name = self._text(payload, "worker_name")[:128]
        if name:
            w.name = name
        return wid, w

    def _learn_queue(self, wid: str, payload: Mapping[str, Any]) -> None:
        w = self.workers.setdefault(wid, Worker())
        queue = self._queue(payload)
        if queue not in w.queues:
            w.queues = sorted([*w.queues, queue])

    def _activity(self, ts: float, ce_id: str, payload: dict[str, Any], out: list[SourceEvent]) -> None:
        wid, w = self._worker(payload)
        if not wid:
            raise BadRequest("worker.activity.update: payload has no worker_sid")
        activity = self._text(payload, "worker_activity_name")
        state = self.activities.get(activity.lower())
        if state is None:  # an activity the table does not know: away, and the reason says which
            state = "away"
        w.activity = state
        w.reason = REASON_CHARS.sub("_", activity)[:64] if state in ("away", "offline") else ""
        self._agent_out(wid, w, ts, f"twilio:{ce_id}", out, force=True)

    def _worker_task(
        self,
        wid: str,
        payload: Mapping[str, Any],
        sid: str,
        phase: str,
        ts: float,
        eid: str,
        out: list[SourceEvent],
    ) -> None:
        """The agent is busy while a task of theirs is assigned, in ACW while it wraps up (TaskRouter's
        activity usually stays Available meanwhile: Flex routes by channel capacity). A task's phase
        for its agent only moves forward (busy, acw, done), whatever order the deliveries come in;
        the task events carry no worker, so they use the one that accepted the task."""
        w = self.workers.setdefault(wid, Worker())
        name = self._text(payload, "worker_name")[:128]
        if name and self._text(payload, "worker_sid") == wid:
            w.name = name
        self._learn_queue(wid, payload)
        if TASK_PHASE[phase] > TASK_PHASE.get(w.tasks.get(sid, ""), 0):
            w.tasks[sid] = phase
        self._agent_out(wid, w, ts, f"{eid}:agent", out)

    def _agent_out(
        self, wid: str, w: Worker, ts: float, eid: str, out: list[SourceEvent], force: bool = False
    ) -> None:
        state: AgentStateName = w.activity or "available"  # type: ignore[assignment]
        if state == "available" and "busy" in w.tasks.values():
            state = "busy"
        elif state == "available" and "acw" in w.tasks.values():
            state = "acw"
        if state == w.sent and not force:
            return
        w.sent = state
        reason = w.reason if state in ("away", "offline") else None
        out.append(agent_state(wid, state, w.queues, ts, eid, reason=reason or None, name=w.name or None))

    # ---- state the receiver saves with the acknowledgement ------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "tasks": {s: asdict(t) for s, t in self.tasks.items()},
            "workers": {s: asdict(w) for s, w in self.workers.items()},
            "newest": self.newest,
            "next_sweep": self.next_sweep,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.tasks = {s: Task(**t) for s, t in state.get("tasks", {}).items()}
        self.holding = {s for s, t in self.tasks.items() if t.held}
        self.workers = {s: Worker(**w) for s, w in state.get("workers", {}).items()}
        self.newest = float(state.get("newest", 0.0))
        self.next_sweep = float(state.get("next_sweep", 0.0))


#: the TaskRouter events the mapping turns into ccmon events
HANDLED = frozenset(
    {
        "task-queue.entered",
        "reservation.accepted",
        "reservation.rejected",
        "reservation.timeout",
        "reservation.wrapup",
        "reservation.completed",
        "task.canceled",
        "task.wrapup",
        "task.completed",
        "workflow.timeout",
        "workflow.skipped",
        "worker.activity.update",
    }
)
