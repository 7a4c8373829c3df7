"""The plug-in interface of ``ccmon ingest webhooks``: what a pushing platform must provide.

A platform is a class with a ``name`` (its route is ``/webhooks/<name>``) and three steps, which the
receiver (``producers/sources/webhooks/receiver.py``) runs for every delivery, in this order:

1. ``verify(headers, body, now)``: authenticity, before anything is parsed. Raise
   :class:`Unauthorized` (answered 401, counted as ``unauthorized``; nothing reaches Kafka) for a
   missing or wrong signature or credential, and for a stale timestamp where the platform signs one
   (``max_age_s``). ``headers`` is case-insensitive; ``body`` is the raw bytes as received.
2. ``parse(headers, body)``: the delivery's events, in the order they must reach the worker, built
   with ``producers.sources.events`` (typed, and valid for the worker). Raise :class:`BadRequest`
   (400, one-line reason) for a body that is not the platform's format; raise :class:`Ignored` for
   an event type the mapping does not use (answered 2xx, counted as ``ignored``: a platform must
   never retry it forever). An empty list is a known type that gives no event (counted ``ok``).
   Event ids must come from the delivery's content only (the platform's delivery or record id
   where it is stable), never from the arrival: a re-delivery then gives the same ids and is a
   duplicate in the worker. Times come from the payload, never from the delivery's arrival.
   When a delivery implies an earlier lifecycle step that the platform sends separately (a message
   on a conversation whose creation was not seen yet), ``parse`` emits that step too, built from
   the payload with the same event id as the step's own delivery, before the later step.
3. ``respond(events)``: the 2xx answer, sent only after Kafka acknowledged every event. The
   default is ``200 application/json {"ok": true}``; a platform whose sender wants a particular
   body (Amazon Kinesis Data Firehose: ``requestId`` and ``timestamp``) overrides it. ``headers``
   are the request's (Firehose echoes its ``X-Amz-Firehose-Request-Id``).

Every other answer (401, 400, 413, 500, 503) is built by ``error_response(headers, status, reason)``:
``None`` (the default) gives the receiver's one-line ``text/plain`` reason; a platform whose sender
documents an error body (Firehose: ``requestId``, ``timestamp``, ``errorMessage``) returns it, so the
sender's own logs and its backup records show why the delivery failed.

``answer_within_s`` is how long the receiver waits for Kafka's acknowledgement before answering 503
(below the platform's own HTTP timeout, so the platform sees an answer and retries, instead of a
timeout it may count against the endpoint). A platform that keeps state between deliveries (a
conversation's current segment, a message held until its conversation is known) returns it from
``to_state`` and takes it back in ``load_state``, and sets ``dirty`` when ``parse`` changed it; the
receiver saves it (with ``--state-file``) after the acknowledgement and before the 2xx, so a
delivery answered 2xx is never lost even when it gave no event yet.

What a mapping does besides sending events (a type acknowledged without an event, an event held
for its predecessor, released after the hold bound, dropped as too late to place) is invisible in
the deliveries' results: ``steps()`` gives those counts since start, by step and detail, and
``held_now()`` what is held at the moment; the receiver exports both on its ``/metrics``
(``ccmon_webhook_steps_total``, ``ccmon_webhook_held``). The defaults are none.

A platform is built from a :class:`PlatformConfig`: its secret (from
``CCMON_WEBHOOKS_<NAME>_SECRET_FILE``, a file read once at start, or ``CCMON_WEBHOOKS_<NAME>_SECRET``)
and its options (every other ``CCMON_WEBHOOKS_<NAME>_<OPTION>`` variable, lower-cased option
names), checked in ``__init__`` (raise :class:`ConfigError` with a one-line reason; the options
several platforms share, ``source``, ``queue_by``, ``unanswered`` and ``NAME=VALUE`` lists, are
read with :class:`PlatformConfig`'s ``*_option`` methods, so they are checked and reported alike).
Adding one is a module in this package and one line in the table of
``producers/sources/webhooks/__init__.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

import orjson

from producers.sources.events import SourceEvent
from streams.errors import CcmonError

__all__ = [
    "BadRequest",
    "ConfigError",
    "Ignored",
    "Platform",
    "PlatformConfig",
    "Response",
    "Unauthorized",
    "customer_id",
    "hmac_sha256_hex",
    "json_object",
    "same",
    "timestamp",
]


class Unauthorized(Exception):
    """401: the delivery is not the platform's (bad or missing signature, stale timestamp)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadRequest(Exception):
    """400: authentic but not the platform's format (malformed JSON, a field missing)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Ignored(Exception):
    """2xx, counted ``ignored``: an event type the mapping does not use."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConfigError(CcmonError):
    exit_code = 2


@dataclass(frozen=True, slots=True)
class Response:
    status: int = 200
    content_type: str = "application/json"
    body: bytes = b'{"ok":true}'


@dataclass(frozen=True)
class PlatformConfig:
    secret: bytes
    options: Mapping[str, str] = field(default_factory=dict)

    def option(self, name: str, default: str) -> str:
        return self.options.get(name, default)

    # ---- options more than one platform has, checked alike (``platform`` names the variables) ----
    def require_secret(self, platform: str) -> None:
        """A platform whose deliveries are signed with a shared secret cannot verify any without one."""
        if not self.secret:
            raise ConfigError(f"{platform}: the webhook secret is empty")

    def source_option(self, platform: str) -> str:
        """``source`` (default the platform's name): the prefix of the ids built, so a short, safe
        alphabet."""
        source = self.option("source", platform)
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", source):
            raise ConfigError(
                f"CCMON_WEBHOOKS_{platform.upper()}_SOURCE={source!r}: letters, digits, _ . - (1-32)"
            )
        return source

    def queue_by_option(self, platform: str) -> str:
        """``queue_by`` of a chat platform: which of a conversation's ids names its queue."""
        queue_by = self.option("queue_by", "inbox")
        if queue_by not in ("inbox", "team"):
            raise ConfigError(f"CCMON_WEBHOOKS_{platform.upper()}_QUEUE_BY={queue_by!r}: inbox or team")
        return queue_by

    def unanswered_option(self, platform: str) -> Literal["abandoned", "dequeued"]:
        """``unanswered`` of a chat platform: what a conversation closed without an agent becomes
        (docs/sources/chatwoot.md, docs/sources/libredesk.md)."""
        unanswered = self.option("unanswered", "abandoned")
        if unanswered not in ("abandoned", "dequeued"):
            raise ConfigError(
                f"CCMON_WEBHOOKS_{platform.upper()}_UNANSWERED={unanswered!r}: abandoned or dequeued"
            )
        return "abandoned" if unanswered == "abandoned" else "dequeued"

    def pairs_option(self, name: str, what: str, *, lower: bool = False) -> dict[str, str]:
        """An option written as ``NAME=VALUE`` items separated by ``,`` or ``;`` (``what`` starts
        the error line); ``lower`` lower-cases the names, for names matched without case."""
        out: dict[str, str] = {}
        for item in filter(None, (p.strip() for p in re.split(r"[,;]", self.option(name, "")))):
            key, sep, value = item.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise ConfigError(f"{what}: {item!r} is not NAME=VALUE")
            out[key.strip().lower() if lower else key.strip()] = value.strip()
        return out


class Platform:
    """Base of every platform: see the module docstring for the contract."""

    name: ClassVar[str] = ""
    #: a signed timestamp older (or further in the future) than this is refused as stale
    max_age_s: ClassVar[float] = 300.0
    #: the bounded wait for Kafka's acknowledgement before a 503 (under the platform's timeout)
    answer_within_s: ClassVar[float] = 4.0

    def __init__(self, config: PlatformConfig) -> None:
        self.config = config
        self.dirty = False  #: ``parse`` changed the state: the receiver saves it before answering

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        raise NotImplementedError

    def parse(self, headers: Mapping[str, str], body: bytes) -> list[SourceEvent]:
        raise NotImplementedError

    def respond(self, headers: Mapping[str, str], events: list[SourceEvent]) -> Response:
        return Response()

    def error_response(self, headers: Mapping[str, str], status: int, reason: str) -> Response | None:
        """The answer to a refused or failed delivery, when the sender documents a format for it;
        ``None`` keeps the receiver's plain one-line reason."""
        return None

    def steps(self) -> Mapping[tuple[str, str], int]:
        """(step, detail) -> how often since start: ``ignored``, ``held``, ``released``, ``dropped``
        (docs/sources/webhooks.md); a platform that keeps no such counts gives none."""
        return {}

    def held_now(self) -> int:
        """Events held now, waiting for a predecessor (0 for a platform that holds nothing)."""
        return 0

    def to_state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        return None


# ---- helpers the platforms share ------------------------------------------------------------------
#: caller ids that name nobody (withheld, anonymous, no number from the network), as platforms and
#: carriers write them; Twilio spells them as digits on a keypad ("+266696687" is ANONYMOUS,
#: "+86282452253" UNAVAILABLE, "+7378742833" RESTRICTED, "+2562533" BLOCKED)
NOBODY = frozenset(
    {"", "anonymous", "unknown", "withheld", "private", "restricted", "unavailable", "blocked", "none"}
    | {"+266696687", "+86282452253", "+7378742833", "+2562533", "266696687", "86282452253"}
    | {"7378742833", "2562533"}
)


def customer_id(value: Any) -> str | None:
    """A payload's customer identifier (number, address, contact id) as SPEC's ``customer``: the
    text as given, none for a withheld or anonymous one, a non-text value or one over 128 chars
    (an identifier is never cut: two customers would meet)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return None if text.lower() in NOBODY or len(text) > 128 else text


def hmac_sha256_hex(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def same(expected: str, given: str) -> bool:
    """Constant-time comparison (a timing difference must not reveal the signature)."""
    return hmac.compare_digest(expected.encode(), given.encode())


def json_object(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not JSON: {str(exc)[:120]}") from None
    if not isinstance(doc, dict):
        raise BadRequest(f"body is a JSON {type(doc).__name__}, not an object")
    return doc


def timestamp(value: Any, what: str) -> float:
    """A payload time as epoch seconds: integer or float epoch seconds, or ISO 8601 with an offset
    (``Z``, ``+00:00``, or Rails' ``2026-12-07 05:00:00 UTC``). Anything else is a :class:`BadRequest`."""
    if isinstance(value, bool):
        raise BadRequest(f"{what} is not a time")
    if isinstance(value, int | float):
        if not 0 < value < 32503680000:  # before the year 3000: epoch seconds, not milliseconds
            raise BadRequest(f"{what} {value!r} is not an epoch time in seconds")
        return float(value)
    if isinstance(value, str) and 10 <= len(value) <= 40:
        text = value.strip()
        if text.endswith(" UTC"):
            text = text[:-4] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed.timestamp()
    raise BadRequest(f"{what} {str(value)[:40]!r} is not a time with an offset")
