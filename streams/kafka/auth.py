"""How ccmon's Kafka clients authenticate: TLS and SASL (SCRAM-SHA-512 by default) from settings.

One place builds the arguments for every client (Faust's worker, the admin client that creates
topics, the simulator's and replay's producers), so that they all connect the same way, and one
place turns an authentication failure into a line an operator can act on. The password is never
part of a message, a log line or the settings' repr.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError

from streams.config import TLS_PROTOCOLS, Settings
from streams.errors import CcmonError


def ssl_context(s: Settings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL: the system's CAs or ``CCMON_KAFKA_CA_FILE``, hostname
    checked, and a client certificate when one is configured."""
    if s.kafka.security_protocol not in TLS_PROTOCOLS:
        return None
    try:
        ctx = ssl.create_default_context(cafile=s.kafka.ca_file)
        if s.kafka.cert_file:
            ctx.load_cert_chain(s.kafka.cert_file, s.kafka.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise CcmonError(
            f"cannot load the Kafka TLS files (CCMON_KAFKA_CA_FILE / CCMON_KAFKA_CERT_FILE / "
            f"CCMON_KAFKA_KEY_FILE): {exc}"
        ) from None
    return ctx


def client_kwargs(s: Settings) -> dict[str, Any]:
    """Security arguments for aiokafka's producer, consumer and admin clients."""
    out: dict[str, Any] = {"security_protocol": s.kafka.security_protocol}
    ctx = ssl_context(s)
    if ctx is not None:
        out["ssl_context"] = ctx
    if s.kafka.security_protocol.startswith("SASL_"):
        out.update(
            sasl_mechanism=s.kafka.sasl_mechanism,
            sasl_plain_username=s.kafka.username,
            sasl_plain_password=s.kafka.password,
        )
    return out


def kafka_client(s: Settings, timeout_s: float, client_id: str | None = None) -> AIOKafkaClient:
    """A bare aiokafka client of the configured cluster, for the worker's own metadata questions
    (the snapshots' origin check, the broker probe); not started: its ``bootstrap`` connects."""
    extra: dict[str, Any] = {"client_id": client_id} if client_id is not None else {}
    return AIOKafkaClient(
        bootstrap_servers=s.kafka.bootstrap_servers,
        request_timeout_ms=int(timeout_s * 1000),
        **extra,
        **client_kwargs(s),
    )


def faust_credentials(s: Settings) -> Any:
    """The same, as Faust's ``broker_credentials`` (None for PLAINTEXT)."""
    import faust
    from faust.types.auth import AuthProtocol

    ctx = ssl_context(s)
    if s.kafka.security_protocol.startswith("SASL_"):
        creds = faust.SASLCredentials(
            username=s.kafka.username,
            password=s.kafka.password,
            mechanism=s.kafka.sasl_mechanism,
            ssl_context=ctx,
        )
        creds.protocol = AuthProtocol(s.kafka.security_protocol)  # SASL_PLAINTEXT when there is no TLS
        return creds
    if ctx is not None:
        return faust.SSLCredentials(ctx)
    return None


@contextlib.contextmanager
def connect_errors() -> Iterator[list[str]]:
    """Collects what aiokafka logs while a client bootstraps (it logs the reason a connection
    failed, e.g. SaslAuthenticationFailed, and raises a bare KafkaConnectionError), instead of
    printing it: ``explain`` turns it into ccmon's own one line."""
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger = logging.getLogger("aiokafka")
    handler, propagate = Collect(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield seen
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def explain(exc: BaseException, s: Settings, logged: Sequence[str] = ()) -> CcmonError | None:
    """A one-line, actionable message for a failure to authenticate or to set up TLS, else None."""
    text = " ".join([type(exc).__name__, str(exc), *logged])
    where = f"Kafka at {s.kafka.bootstrap_servers}"
    if "Sasl" in text or "uthentication" in text:
        return CcmonError(
            f"{where} rejected the credentials of user {s.kafka.username!r} "
            f"({s.kafka.sasl_mechanism}): check CCMON_KAFKA_USERNAME and CCMON_KAFKA_PASSWORD "
            f"(or CCMON_KAFKA_PASSWORD_FILE)"
        )
    if isinstance(exc, ssl.SSLError) or "SSL" in text or "certificate" in text.lower():
        return CcmonError(
            f"TLS handshake with {where} failed: check CCMON_KAFKA_CA_FILE and that "
            f"CCMON_KAFKA_SECURITY_PROTOCOL ({s.kafka.security_protocol}) matches the broker's listener"
        )
    return None


async def start_client(
    s: Settings, start: Callable[[], Awaitable[Any]], close: Callable[[], Awaitable[Any]], timeout_s: float
) -> None:
    """Start an aiokafka client, or close it and raise the one line that says why it could not
    connect (credentials, TLS, or no broker there)."""
    with connect_errors() as logged:
        try:
            await asyncio.wait_for(start(), timeout_s)
        except (TimeoutError, KafkaConnectionError, OSError) as exc:
            await close()
            raise explain(exc, s, logged) or CcmonError(
                f"cannot reach Kafka at {s.kafka.bootstrap_servers}: is it running? "
                f"(start a local one with: ccmon kafka start)"
            ) from None
        except Exception as exc:
            await close()
            raise (explain(exc, s, logged) or exc) from None
