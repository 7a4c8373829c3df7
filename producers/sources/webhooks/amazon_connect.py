"""Amazon Connect, as AWS delivers it to an HTTP endpoint: two feeds on one route.

- **Contact events** (``detail-type`` "Amazon Connect Contact Event"): an EventBridge rule whose
  target is an *API destination*; each POST body is one EventBridge event (``version``, ``id``,
  ``detail-type``, ``source`` "aws.connect", ``time``, ``detail``). The destination's *connection*
  adds the credential: an API key header (name and value chosen in the connection) or basic auth.
  Best effort, retried for up to 24 h, 5 s to answer.
- **Agent event stream** records, through Kinesis Data Streams and Amazon Data Firehose's *HTTP
  endpoint* destination: ``{"requestId", "timestamp", "records": [{"data": <base64 JSON>}]}``,
  headers ``X-Amz-Firehose-Request-Id`` (the same on every retry) and ``X-Amz-Firehose-Access-Key``
  (the configured key, verbatim), body gzip-compressed when the stream says so. Firehose wants
  ``{"requestId", "timestamp"}`` back with 200, and ``errorMessage`` with any other status.

A delivery with ``X-Amz-Firehose-Request-Id`` is Firehose's; any other is EventBridge's. Both are
checked against the same secret, in constant time.

Why no state: every contact event carries the contact's whole story so far (the queue and when it
was entered, the agent and when they connected, when it disconnected, when ACW ended), each with
its own timestamp. So each event emits every ccmon step up to its own, each step with an id built
from the contact and the step (``connect:<contact id>:<step>``) and the time of the step, whatever
arrived before: a late or lost ``QUEUED`` is rebuilt exactly from the ``DISCONNECTED`` after it, and
the repeated steps are duplicates in the worker. docs/sources/amazon-connect.md has the table.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
import time
import zlib
from collections import Counter
from collections.abc import Mapping
from typing import Any

import orjson

from producers.sources.events import Channel, SourceEvent, agent_state, contact
from producers.sources.webhooks.platform import (
    BadRequest,
    ConfigError,
    Ignored,
    Platform,
    PlatformConfig,
    Response,
    Unauthorized,
    customer_id,
    same,
    timestamp,
)
from streams.core.events import AgentStateName

DETAIL_TYPE = "Amazon Connect Contact Event"
FIREHOSE_ID = "X-Amz-Firehose-Request-Id"
FIREHOSE_KEY = "X-Amz-Firehose-Access-Key"
QUEUE_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
REASON_CHARS = re.compile(r"[^A-Za-z0-9_. -]")
#: contact event types that give no ccmon event: known, acknowledged
NO_EVENT = frozenset({"INITIATED", "CONNECTED_TO_SYSTEM", "CONTACT_DATA_UPDATED", "AMD_DISABLED"})
#: how a contact that never reached an agent left the queue, by ``disconnectReason``: the customer
#: hung up (abandoned) or the system gave up (dequeued, SPEC's reason)
SYSTEM_DISCONNECTS = {
    "CONTACT_FLOW_DISCONNECT": None,
    "EXPIRED": "timeout",
    "OUTBOUND_DESTINATION_ENDPOINT_ERROR": None,
}
#: agent snapshot contact states (AgentContactReference.AgentContactState)
ON_CONTACT = frozenset({"CONNECTED", "CONNECTED_ONHOLD"})
MISSED_STATES = frozenset({"MISSED", "REJECTED"})
DEFAULT_CHANNELS: dict[str, str] = {"VOICE": "voice", "CHAT": "chat", "TASK": "chat", "EMAIL": "chat"}


def arn_id(arn: str) -> str:
    """The resource id at the end of an ARN (``…/queue/<id>`` -> ``<id>``)."""
    return arn.rstrip("/").rsplit("/", 1)[-1]


class AmazonConnect(Platform):
    name = "amazon_connect"
    answer_within_s = 4.0  #: EventBridge API destinations wait 5 s (Firehose: 3 minutes)
    #: a gzip body (Firehose) is never inflated beyond this: a small body must not become gigabytes
    max_inflated = 16 * 1024 * 1024

    def __init__(self, config: PlatformConfig) -> None:
        super().__init__(config)
        if not config.secret:
            raise ConfigError(
                "amazon_connect: the secret (API key / password / Firehose access key) is empty"
            )
        self.auth = config.option("auth", "api_key")
        if self.auth not in ("api_key", "basic"):
            raise ConfigError("amazon_connect: auth is api_key or basic")
        self.key_header = config.option("api_key_header", "x-api-key")
        self.username = config.option("username", "ccmon")
        self.queues = config.pairs_option("queues", "amazon_connect: queues")
        self.channels = dict(DEFAULT_CHANNELS)
        for name, value in config.pairs_option("channels", "amazon_connect: channels").items():
            if value not in ("voice", "chat", "skip"):
                raise ConfigError(f"amazon_connect: channels: {name}={value}: voice, chat or skip")
            self.channels[name.upper()] = value
        self.ignored: Counter[str] = Counter()

    def queue_label(self, arn: str, name: str = "") -> str:
        """The queue as ccmon names it: the ``queues`` option's name for its id (or ARN), else the
        id. Contact events carry only the ARN, so a name from the agent stream is not used: the same
        queue must have one label in both feeds."""
        qid = arn_id(arn)
        label = self.queues.get(qid) or self.queues.get(arn) or qid
        return QUEUE_CHARS.sub("_", label)[:64] or "unknown"

    # ---- authenticity -------------------------------------------------------------------------------
    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        secret = self.config.secret.decode()
        if headers.get(FIREHOSE_ID) is not None:
            given = headers.get(FIREHOSE_KEY)
            if not given:
                raise Unauthorized(f"no {FIREHOSE_KEY} header")
            if not same(secret, given):
                raise Unauthorized(f"{FIREHOSE_KEY} is not the configured key")
            return
        if self.auth == "basic":
            given = headers.get("Authorization", "")
            scheme, _, token = given.partition(" ")
            expected = base64.b64encode(f"{self.username}:{secret}".encode()).decode()
            if scheme.lower() != "basic" or not same(expected, token.strip()):
                raise Unauthorized("Authorization is not the connection's basic credentials")
            return
        given = headers.get(self.key_header)
        if not given:
            raise Unauthorized(f"no {self.key_header} header")
        if not same(secret, given):
            raise Unauthorized(f"{self.key_header} is not the connection's API key")

    # ---- the two feeds ----------------------------------------------------------------------------------
    def parse(self, headers: Mapping[str, str], body: bytes) -> list[SourceEvent]:
        if headers.get(FIREHOSE_ID) is not None:
            return self._firehose(headers, body)
        doc = self._json(body, "body")
        if not isinstance(doc, dict):
            raise BadRequest("body is not an EventBridge event (a JSON object)")
        if doc.get("detail-type") != DETAIL_TYPE:
            self.ignored[str(doc.get("detail-type"))[:64]] += 1
            raise Ignored(f"detail-type {str(doc.get('detail-type'))[:64]!r} is not a contact event")
        detail = doc.get("detail")
        if not isinstance(detail, dict):
            raise BadRequest("contact event without a detail object")
        return self.contact_events(detail, doc.get("time"))

    def respond(self, headers: Mapping[str, str], events: list[SourceEvent]) -> Response:
        if headers.get(FIREHOSE_ID) is None:
            return Response()
        doc = {"requestId": headers.get(FIREHOSE_ID, ""), "timestamp": int(time.time() * 1000)}
        return Response(200, "application/json", orjson.dumps(doc))

    def steps(self) -> Mapping[tuple[str, str], int]:
        return {("ignored", k): n for k, n in self.ignored.items()}

    def error_response(self, headers: Mapping[str, str], status: int, reason: str) -> Response | None:
        """Firehose's documented error answer (``requestId``, ``timestamp``, ``errorMessage``), for a
        delivery the receiver refuses or cannot take; ``None`` for EventBridge (any body will do)."""
        if headers.get(FIREHOSE_ID) is None:
            return None
        doc = {
            "requestId": headers.get(FIREHOSE_ID, ""),
            "timestamp": int(time.time() * 1000),
            "errorMessage": reason,
        }
        return Response(status, "application/json", orjson.dumps(doc))

    @staticmethod
    def _json(raw: bytes, what: str) -> Any:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"{what} is not JSON: {str(exc)[:120]}") from None

    def _inflate(self, body: bytes) -> bytes:
        try:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = d.decompress(body, self.max_inflated + 1)
        except (zlib.error, gzip.BadGzipFile):
            raise BadRequest("Content-Encoding is gzip but the body is not") from None
        if len(out) > self.max_inflated or d.unconsumed_tail:
            raise BadRequest(f"the body inflates beyond {self.max_inflated} bytes")
        return out

    # ---- contact events ------------------------------------------------------------------------------
    def contact_events(self, d: Mapping[str, Any], envelope_time: Any = None) -> list[SourceEvent]:
        etype = d.get("eventType")
        cid = d.get("contactId")
        if not isinstance(etype, str) or not isinstance(cid, str) or not cid:
            raise BadRequest("contact event without eventType or contactId")
        if etype in NO_EVENT:
            return []
        if etype not in ("QUEUED", "CONNECTED_TO_AGENT", "DISCONNECTED", "COMPLETED"):
            self.ignored[etype[:64]] += 1
            raise Ignored(f"contact eventType {etype[:64]!r} is not mapped")
        channel = self.channels.get(str(d.get("channel", "VOICE")).upper(), "chat")
        queue_info = d.get("queueInfo") if isinstance(d.get("queueInfo"), dict) else None
        agent_info = d.get("agentInfo") if isinstance(d.get("agentInfo"), dict) else {}
        if channel == "skip" or not queue_info or not queue_info.get("queueArn"):
            return []  # never queued (outbound, IVR only, agent-initiated): not a queue's contact
        ch: Channel = "voice" if channel == "voice" else "chat"
        fallback = envelope_time
        out: list[SourceEvent] = []

        def t(value: Any, what: str) -> float:
            return timestamp(value if value else fallback, f"{etype} {what}")

        queue = self.queue_label(str(queue_info["queueArn"]))
        offered_at = t(queue_info.get("enqueueTimestamp"), "queueInfo.enqueueTimestamp")
        out.append(
            contact(
                "offered",
                cid,
                offered_at,
                f"connect:{cid}:offered",
                channel=ch,
                queue=queue,
                customer=self.customer(d),
            )
        )
        if etype == "QUEUED":
            return out
        agent_arn = agent_info.get("agentArn") if isinstance(agent_info, dict) else None
        connected = agent_info.get("connectedToAgentTimestamp") if isinstance(agent_info, dict) else None
        if agent_arn and connected:
            out.append(
                contact(
                    "answered",
                    cid,
                    t(connected, "agentInfo.connectedToAgentTimestamp"),
                    f"connect:{cid}:answered",
                    channel=ch,
                    agent_id=arn_id(str(agent_arn)),
                )
            )
        elif etype == "CONNECTED_TO_AGENT":
            raise BadRequest("CONNECTED_TO_AGENT without agentInfo.agentArn and connectedToAgentTimestamp")
        if etype == "CONNECTED_TO_AGENT":
            return out
        gone = t(d.get("disconnectTimestamp"), "disconnectTimestamp")
        if not (agent_arn and connected):
            why = str(d.get("disconnectReason") or "")
            if why in SYSTEM_DISCONNECTS:
                reason = SYSTEM_DISCONNECTS[why]
                fields = {"reason": reason} if reason else {}
                out.append(contact("dequeued", cid, gone, f"connect:{cid}:left", channel=ch, **fields))
            else:
                out.append(contact("abandoned", cid, gone, f"connect:{cid}:left", channel=ch))
            return out
        out.append(contact("ended", cid, gone, f"connect:{cid}:ended", channel=ch))
        if etype == "COMPLETED":
            acw_end = agent_info.get("afterContactWorkEndTimestamp") if isinstance(agent_info, dict) else None
            done = t(acw_end, "agentInfo.afterContactWorkEndTimestamp") if acw_end else gone
            out.append(
                contact("wrapup_ended", cid, max(done, gone), f"connect:{cid}:wrapup_ended", channel=ch)
            )
        return out

    @staticmethod
    def customer(d: Mapping[str, Any]) -> str | None:
        """The customer's endpoint (``customerEndpoint.address``: the caller's number, a chat's
        or email's address) when the event carries it; a withheld or anonymous caller has none."""
        endpoint = d.get("customerEndpoint") or d.get("CustomerEndpoint")
        if not isinstance(endpoint, dict):
            return None
        return customer_id(endpoint.get("address", endpoint.get("Address")))

    # ---- agent event stream (Firehose) ------------------------------------------------------------------
    def _firehose(self, headers: Mapping[str, str], body: bytes) -> list[SourceEvent]:
        if headers.get("Content-Encoding", "").strip().lower() == "gzip":
            body = self._inflate(body)
        doc = self._json(body, "body")
        records = doc.get("records") if isinstance(doc, dict) else None
        if not isinstance(records, list):
            raise BadRequest("Firehose body without a records list")
        out: list[SourceEvent] = []
        for i, rec in enumerate(records):
            data = rec.get("data") if isinstance(rec, dict) else None
            if not isinstance(data, str):
                raise BadRequest(f"record {i} has no data")
            try:
                raw = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest(f"record {i}: data is not base64") from None
            for line in filter(None, (part.strip() for part in raw.splitlines())):
                event = self._json(line, f"record {i}")
                if not isinstance(event, dict):
                    raise BadRequest(f"record {i} is not an agent event object")
                out += self.agent_events(event)
        return out

    def agent_events(self, ev: Mapping[str, Any]) -> list[SourceEvent]:
        etype, eid = ev.get("EventType"), ev.get("EventId")
        if not isinstance(etype, str) or not isinstance(eid, str) or not eid:
            raise BadRequest("agent event without EventType or EventId")
        if etype == "HEART_BEAT":
            return []
        if etype not in ("STATE_CHANGE", "LOGIN", "LOGOUT"):
            self.ignored[etype[:64]] += 1
            return []
        arn = ev.get("AgentARN")
        if not isinstance(arn, str) or not arn:
            raise BadRequest("agent event without AgentARN")
        agent = arn_id(arn)
        ts = timestamp(ev.get("EventTimestamp"), "EventTimestamp")
        snap = ev.get("CurrentAgentSnapshot") if isinstance(ev.get("CurrentAgentSnapshot"), dict) else {}
        assert isinstance(snap, dict)
        config = snap.get("Configuration") if isinstance(snap.get("Configuration"), dict) else {}
        assert isinstance(config, dict)
        profile = config.get("RoutingProfile") if isinstance(config.get("RoutingProfile"), dict) else {}
        assert isinstance(profile, dict)
        queues = sorted(
            {
                self.queue_label(str(q["ARN"]))
                for q in profile.get("InboundQueues") or []
                if isinstance(q, dict) and q.get("ARN") and "/queue/agent/" not in str(q["ARN"])
            }
        )
        status = snap.get("AgentStatus") if isinstance(snap.get("AgentStatus"), dict) else {}
        assert isinstance(status, dict)
        contacts = [c for c in snap.get("Contacts") or [] if isinstance(c, dict)]
        states = {str(c.get("State", "")) for c in contacts}
        name = str(config.get("Username") or "")[:128] or None
        state: AgentStateName
        reason: str | None = None
        if etype == "LOGOUT" or status.get("Type") == "OFFLINE":
            state, reason = (
                "offline",
                (str(status.get("Name") or "") or None) if etype != "LOGOUT" else "Logout",
            )
        elif states & ON_CONTACT:
            state = "busy"
        elif "ENDED" in states:
            state = "acw"
        elif states & MISSED_STATES:
            state, reason = "away", "Missed"
        elif status.get("Type") == "ROUTABLE":
            state = "available"
        else:
            state, reason = "away", str(status.get("Name") or "") or None
        if reason:
            reason = REASON_CHARS.sub("_", reason)[:64]
        out = [agent_state(agent, state, queues, ts, f"connect:{eid}", reason=reason, name=name)]
        out += self._missed(agent, ev, contacts)
        return out

    def _missed(self, agent: str, ev: Mapping[str, Any], contacts: list[dict[str, Any]]) -> list[SourceEvent]:
        """A contact the agent let ring out or rejected: ``missed``, preceded by its ``offered``
        (rebuilt from the snapshot's queue and queue time, with the id the contact events give it)."""
        prev = ev.get("PreviousAgentSnapshot") if isinstance(ev.get("PreviousAgentSnapshot"), dict) else {}
        assert isinstance(prev, dict)
        before = {
            str(c.get("ContactId")): str(c.get("State", ""))
            for c in prev.get("Contacts") or []
            if isinstance(c, dict)
        }
        out: list[SourceEvent] = []
        for c in contacts:
            cid, state = c.get("ContactId"), str(c.get("State", ""))
            if not isinstance(cid, str) or state not in MISSED_STATES or before.get(cid) in MISSED_STATES:
                continue
            channel = self.channels.get(str(c.get("Channel", "VOICE")).upper(), "chat")
            queue = c.get("Queue") if isinstance(c.get("Queue"), dict) else None
            if channel == "skip" or not queue or not queue.get("ARN") or not c.get("QueueTimestamp"):
                continue
            ch: Channel = "voice" if channel == "voice" else "chat"
            label = self.queue_label(str(queue["ARN"]))
            offered_at = timestamp(c.get("QueueTimestamp"), "Contacts[].QueueTimestamp")
            at = timestamp(
                c.get("StateStartTimestamp") or ev.get("EventTimestamp"), "Contacts[].StateStartTimestamp"
            )
            out.append(contact("offered", cid, offered_at, f"connect:{cid}:offered", channel=ch, queue=label))
            out.append(
                contact(
                    "missed",
                    cid,
                    at,
                    f"connect:{cid}:{agent}:{int(at * 1000)}:missed",
                    channel=ch,
                    agent_id=agent,
                )
            )
        return out
