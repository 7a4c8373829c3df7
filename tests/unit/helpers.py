"""Event builders for hand-written scenarios, the scenario several test files check, and the
ways they feed it to the pure pipeline and read its exposition."""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from streams.config import Settings, load
from streams.dev.local_pipeline import LocalPipeline

_ids = count(1)
CALLS, CHATS, AGENTS = "cc.calls", "cc.chats", "cc.agents"


def at(hhmmss: str, day: str = "2026-11-23") -> float:
    """Epoch seconds of a UTC wall time, e.g. at("10:00:20") or at("10:02:04.999")."""
    return datetime.fromisoformat(f"{day}T{hhmmss}+00:00").timestamp()


def ev(etype: str, cid: str, ts: float, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": fields.pop("event_id", f"e{next(_ids)}"),
        "type": etype,
        "contact_id": cid,
        "ts": int(round(ts * 1000)),
        **fields,
    }


def agent(aid: str, state: str, queues: list[str], ts: float, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": fields.pop("event_id", f"a{next(_ids)}"),
        "type": "state",
        "agent_id": aid,
        "state": state,
        "queues": queues,
        "ts": int(round(ts * 1000)),
        **fields,
    }


#: the contact center's time zones the edge tests run in: the ends of the offsets (UTC+14, UTC-12)
#: and the default
ZONES = ("Pacific/Kiritimati", "Etc/GMT+12", "UTC")
#: the whole range of event times the formats accept (epoch milliseconds; years 1 to 9999)
MIN_TS_MS, MAX_TS_MS = -62135596800000, 253402300799000
#: UTC offsets an RFC 3339 time may carry, from the westernmost to the easternmost in use
OFFSETS = ("-12:00", "-09:30", "-05:00", "Z", "+00:00", "+05:45", "+09:00", "+13:45", "+14:00")


def rfc3339(ms: int, offset: str) -> str:
    """The RFC 3339 text of an instant (epoch ms) at a UTC offset; Python's datetime cannot hold
    the local time of year 1's first hours west of UTC, so those are written from UTC by hand."""
    if offset == "Z":
        return (
            datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        )
    sign = -1 if offset[0] == "-" else 1
    hours, minutes = int(offset[1:3]), int(offset[4:6])
    shift = sign * (hours * 3600 + minutes * 60) * 1000
    local = min(max(ms + shift, MIN_TS_MS), MAX_TS_MS)  # the text must be a valid date
    text = datetime.fromtimestamp(local / 1000, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", offset)


def edge_ts(rng: random.Random, now: float) -> int | str:
    """An event time from the whole range the formats accept, in either format and any offset:
    anywhere from year 1 to 9999, at the ends, or a second either side of the bounds ccmon
    draws (the maximum age, CCMON_MAX_EVENT_AGE_S's default, and the future tolerance)."""
    now_ms = int(now * 1000)
    choice = rng.random()
    if choice < 0.1:  # local times at the ends whose instants lie beyond them (issue 21's first)
        return rng.choice(("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"))
    if choice < 0.3:
        ms = rng.randint(MIN_TS_MS, MAX_TS_MS)
    elif choice < 0.5:
        ms = rng.choice((MIN_TS_MS, MAX_TS_MS, 0, -1000, MIN_TS_MS + 86400000, MAX_TS_MS - 86400000))
    else:
        ms = now_ms + rng.choice((-7 * 86400, 300)) * 1000 + rng.choice((-1000, 0, 1000))
    if rng.random() < 0.4:
        return ms
    return rfc3339(ms, rng.choice(OFFSETS))


def settings(**overrides: Any) -> Settings:
    return load({}, **overrides)


def with_customers(rows: list) -> list:
    """Most offered contacts carry one of 40 customers (some a case), chosen by the contact id, so
    that customers return across queues, channels and partitions: repeats, recoveries, losses."""
    out = []
    for topic, key, event in rows:
        if isinstance(event, dict) and event.get("type") == "offered":
            pick = zlib.crc32(str(event["contact_id"]).encode())
            if pick % 7:
                event = {**event, "customer": f"+49{pick % 40:04d}"}
                if pick % 3 == 0:
                    event["case_id"] = f"case-{pick % 13}"
        out.append((topic, key, event))
    return out


def with_later_spec_events(rows: list, rng: random.Random) -> list:
    """The simulated traffic with SPEC's later event types mixed in, whatever the simulator emits:
    a third of the abandons become ``dequeued``, and 5 % of the offered contacts have a twin in the
    same queue that is dequeued when the original's wait ends, so there are dequeued contacts even
    when nobody abandons (some with a reason outside the fixed set); a quarter of the answers follow
    one or two ``missed`` offers; most surveys carry ``ces``; a third of the answers and some
    waiting contacts get a ``responded`` (some a second one), a fifth of the wrap-ups a
    ``resolved``. Rows are (topic, key, event) as the simulator makes them; raw (bad-input) values
    pass unchanged."""
    out = []
    reasons = ("timeout", "empty", "key", "withdraw", "overflow", None, "callback")
    twins: dict[str, tuple[str, str]] = {}  #: contact id → (topic, twin contact id) still waiting

    def dequeued(topic: str, cid: str, event: dict) -> tuple[str, str, dict]:
        reason = rng.choice(reasons)
        return (
            topic,
            cid,
            {
                "event_id": f"{cid}-dequeued",
                "type": "dequeued",
                "contact_id": cid,
                "ts": event["ts"],
                **({"reason": reason} if reason is not None else {}),
            },
        )

    for n, (topic, key, event) in enumerate(rows):
        if not isinstance(event, dict):  # raw bytes of a bad input, as a recording may hold
            out.append((topic, key, event))
            continue
        event = dict(event)
        etype = event.get("type")
        if event.get("contact_id") in twins and etype in ("answered", "abandoned", "transferred"):
            twin_topic, twin = twins.pop(event["contact_id"])
            out.append(dequeued(twin_topic, twin, event))
        if etype == "abandoned" and rng.random() < 0.33:
            doc = dequeued(topic, event["contact_id"], event)[2]
            out.append((topic, key, {**doc, "event_id": event["event_id"]}))
            continue
        if etype == "answered" and rng.random() < 0.25:
            for i in range(rng.randint(1, 2)):
                out.append(
                    (
                        topic,
                        key,
                        {
                            **event,
                            "event_id": f"{event['event_id']}-missed-{i}",
                            "type": "missed",
                            "agent_id": f"agent-missing-{n % 7}",
                        },
                    )
                )
        elif etype == "survey" and rng.random() < 0.8:
            event.setdefault("ces", rng.randint(1, 7))
        out.append((topic, key, event))
        # first responses and resolutions, chosen by the event id (the rng's draws stay as they were)
        pick = zlib.crc32(str(event.get("event_id")).encode())
        if (etype == "answered" and pick % 3 == 0) or (etype == "offered" and pick % 11 == 0):
            for i in range(2 if pick % 9 == 0 else 1):  # a second reply changes nothing
                reply = {k: event[k] for k in ("contact_id", "ts")}
                out.append(
                    (
                        topic,
                        key,
                        {**reply, "event_id": f"{event['event_id']}-responded-{i}", "type": "responded"},
                    )
                )
        elif etype == "wrapup_ended" and pick % 5 == 0:
            done = {k: event[k] for k in ("contact_id", "ts")}
            out.append(
                (topic, key, {**done, "event_id": f"{event['event_id']}-resolved", "type": "resolved"})
            )
        if etype == "offered" and rng.random() < 0.05:
            twin = f"{event['contact_id']}~twin"
            twins[event["contact_id"]] = (topic, twin)
            out.append((topic, twin, {**event, "event_id": f"{twin}-offered", "contact_id": twin}))
    return out


#: the moment most scenarios are looked at
NOW = at("10:10:00")


class Clock:
    """A clock a test sets: KPI windows and exposition age follow it, never the machine's."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def samples(text: str) -> dict:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def feed(p: LocalPipeline, events, now: float) -> None:
    p.feed([p.record(t, e, key=e.get("contact_id") or e.get("agent_id")) for t, e in events], now=now)


def sample(m: dict, name: str, **labels: str) -> float | None:
    return m.get((name, tuple(sorted(labels.items()))))


def run(events, now=NOW, sweep=False, **cfg):
    p = LocalPipeline(settings(**cfg))
    p.feed([p.record(topic, e, key=e.get("contact_id") or e.get("agent_id")) for topic, e in events], now=now)
    if sweep:
        p.sweep(now)
    return p


SCENARIO = [
    # c1: waits exactly T = 20 s (in threshold), 30 s hold, handle = wrapup - answered = 330 s
    (CALLS, ev("offered", "c1", at("10:00:00"), queue="sales")),
    (CALLS, ev("answered", "c1", at("10:00:20"), agent_id="a1")),
    (CALLS, ev("hold", "c1", at("10:01:00"))),
    (CALLS, ev("resume", "c1", at("10:01:30"))),
    (CALLS, ev("ended", "c1", at("10:05:20"))),
    (CALLS, ev("wrapup_ended", "c1", at("10:05:50"))),
    # c2: abandons after exactly S = 5 s: not short (short is strictly < S)
    (CALLS, ev("offered", "c2", at("10:01:00"), queue="sales")),
    (CALLS, ev("abandoned", "c2", at("10:01:05"))),
    # c3: abandons after 4.999 s: short
    (CALLS, ev("offered", "c3", at("10:02:00"), queue="sales")),
    (CALLS, ev("abandoned", "c3", at("10:02:04.999"))),
    # c4: answered after 21 s (outside T), transferred while handled after 60 s -> sales handled 60 s;
    #     support: waits 10 s, ended, no wrap-up
    (CALLS, ev("offered", "c4", at("10:03:00"), queue="sales")),
    (CALLS, ev("answered", "c4", at("10:03:21"), agent_id="a2")),
    (CALLS, ev("transferred", "c4", at("10:04:21"), queue="support")),
    (CALLS, ev("answered", "c4", at("10:04:31"), agent_id="a3")),
    (CALLS, ev("ended", "c4", at("10:06:31"))),
    # c6: transferred while waiting: sales counts it transferred out with no wait KPI
    (CALLS, ev("offered", "c6", at("10:04:00"), queue="sales")),
    (CALLS, ev("transferred", "c6", at("10:04:30"), queue="support")),
    (CALLS, ev("abandoned", "c6", at("10:05:30"))),
    # c5: still waiting at 10:10:00 -> oldest wait 120 s
    (CALLS, ev("offered", "c5", at("10:08:00"), queue="sales")),
]
#: SCENARIO's sales/voice totals by hand: offered c1 to c6 (6); answered c1 (20 s, in T) and
#: c4 (21 s); abandoned c2 (5 s) and c3 (4.999 s, short); handled c1 and c4; transferred out c4
#: (while handled) and c6 (while waiting). The integration test's scripted recording
#: (tests/integration/recordings.py) tells the same story at the same offsets.
SCENARIO_SALES_COUNTERS = {
    "offered": 6,
    "answered": 2,
    "abandoned": 2,
    "short_abandoned": 1,
    "answered_in_threshold": 1,
    "handled": 2,
    "transferred_out": 2,
}


@dataclass(frozen=True)
class TlsFiles:
    """A test CA, a server certificate it signed for 127.0.0.1/localhost, and a client certificate."""

    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path


def make_tls(directory: Path) -> TlsFiles:
    """PEM files made now with ``cryptography`` (a fresh CA per test run, valid for a day)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def issue(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey] | None
    ) -> x509.Certificate:
        b = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer[0] if issuer else subject))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
        )
        if issuer is None:
            b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        else:
            b = b.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            ).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
        return b.sign((issuer[1] if issuer else key), hashes.SHA256())

    def write(path: Path, data: bytes) -> Path:
        path.write_bytes(data)
        return path

    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = issue("ccmon test CA", ca_key, None)
    pem = serialization.Encoding.PEM
    return TlsFiles(
        ca=write(directory / "ca.pem", ca.public_bytes(pem)),
        cert=write(
            directory / "server.pem",
            issue("ccmon worker", server_key, ("ccmon test CA", ca_key)).public_bytes(pem),
        ),
        key=write(directory / "server-key.pem", pem_key(server_key)),
        client_cert=write(
            directory / "client.pem",
            issue("prometheus", client_key, ("ccmon test CA", ca_key)).public_bytes(pem),
        ),
        client_key=write(directory / "client-key.pem", pem_key(client_key)),
    )
