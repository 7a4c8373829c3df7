"""All ccmon configuration, read from ``CCMON_*`` environment variables in this one place.

Every setting has a documented default (see docs/configuration.md); CLI flags override the
environment and are parsed by the same functions (:func:`flag_type`). Invalid values raise
:class:`ConfigError` (a :class:`CcmonError`, exit code 2) with a one-line, actionable message.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, cast, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from streams.errors import CcmonError

QUEUE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")
#: Kafka's security protocols and SASL mechanisms ccmon supports, the one list of each
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SECURITY_PROTOCOLS: tuple[str, ...] = get_args(SecurityProtocol)
TLS_PROTOCOLS: tuple[str, ...] = ("SSL", "SASL_SSL")  #: the protocols that connect with TLS
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
SASL_MECHANISMS: tuple[str, ...] = get_args(SaslMechanism)
#: where ccmon keeps local data (the dev broker's, the worker's) unless CCMON_DATA_DIR says otherwise
DEFAULT_DATA_DIR = str(Path.home() / ".local" / "share" / "ccmon")


class ConfigError(CcmonError):
    """A configuration value is wrong; the message names the variable and what is expected."""

    exit_code = 2


@dataclass(frozen=True)
class LocalBrokerSettings:
    """The development broker of ``ccmon kafka`` and ``ccmon demo`` (streams/dev/kafka_local.py)."""

    version: str = "4.1.1"
    cache_dir: str = str(Path.home() / ".cache" / "ccmon")
    heap: str = "768m"


@dataclass(frozen=True)
class KafkaSettings:
    """How every client reaches and authenticates to the brokers (streams/kafka/auth.py), and the
    timeouts of the worker's group membership, its broker probe and its producers."""

    broker: str = "kafka://127.0.0.1:9092"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    allow_plaintext_password: bool = False  #: SASL PLAIN without TLS (the password in clear)
    session_timeout_s: float = 10.0
    broker_probe_s: float = 2.0
    producer_timeout_s: float = 120.0

    @property
    def bootstrap_servers(self) -> str:
        """The broker address as aiokafka wants it (no ``kafka://`` scheme)."""
        return ",".join(u.split("://", 1)[-1] for u in self.broker.split(";"))


@dataclass(frozen=True)
class TopicSettings:
    """The topics beside the inputs (those are the core's: :class:`KpiSettings`), and the
    replication of the topics ccmon creates."""

    dead_letter: str = "cc.dead-letter"
    facts: str = "ccmon-facts"
    replication_factor: int = 1


@dataclass(frozen=True)
class WebSettings:
    """The worker's HTTP side: where /metrics and the pages listen, and what they show."""

    host: str = "127.0.0.1"
    port: int = 6066
    agent_metrics: bool = False  #: per-agent series on /metrics
    agent_acw_limit_s: float = 300.0  #: the agents page highlights ACW longer than this
    agent_away_limit_s: float = 900.0  #: and away longer than this
    config_file: str | None = None  #: the exporter toolkit's web config: TLS, basic auth, headers


@dataclass(frozen=True)
class BatchSettings:
    """How the worker batches input and how often it sweeps and snapshots its state."""

    size: int = 2000
    sweep_interval_s: float = 5.0
    snapshot_interval_s: float = 30.0


@dataclass(frozen=True)
class QueueThresholds:
    """Per-queue KPI thresholds (SPEC §2)."""

    sl_threshold_s: float = 20.0
    sl_target: float = 0.8
    short_abandon_s: float = 5.0


@dataclass(frozen=True)
class KpiSettings:
    """The group the pure core gets (``Settings.kpi``): the KPI rules' parameters, the state caps,
    and the input topics and partition count it decides by. Nothing about Kafka, the web or I/O."""

    calls_topic: str = "cc.calls"
    chats_topic: str = "cc.chats"
    agents_topic: str = "cc.agents"
    partitions: int = 8
    timezone: str = "UTC"
    lateness_s: float = 600.0
    future_tolerance_s: float = 300.0
    acw_timeout_s: float = 600.0
    retention_s: float = 86400.0
    bucket_s: int = 10
    max_queues: int = 1000
    max_agents: int = 5000
    # bounds on one input event (issue 21): what a producer bug or an attacker can make one event do
    max_event_age_s: float = 7 * 86400.0  #: older events are rejected ``too_old``
    max_event_bytes: int = 64 * 1024  #: larger events are rejected ``too_large``
    #: the EWT estimator (streams/core/predict.py ESTIMATORS; docs/kpis.md "Prediction" compares them)
    ewt_estimator: str = "erlang"
    #: length of the service-level interval the projection is for, aligned to the local clock
    sl_interval_s: int = 1800
    # the customer behind the contacts (SPEC §2 "The customer", docs/security.md): without a key
    # stage 1 drops every ``customer`` at intake, so the customer features are off
    customer_key: bytes | None = field(default=None, repr=False)  #: the HMAC secret, never logged
    customer_show_clear: bool = False  #: the call-back list may show numbers (needs web auth)
    repeat_window_s: float = 86400.0  #: R
    recovery_window_s: float = 3600.0  #: W
    at_risk_window_s: float = 7 * 86400.0
    customer_limit: int = 100_000  #: customers tracked per worker share; beyond it, skipped and counted
    #: a stage-1 partition whose watermark is this far behind the newest one no longer holds the
    #: customer clock back (an idle partition); exact across runs while none lags more (customers.py)
    customer_idle_s: float = 900.0
    defaults: QueueThresholds = QueueThresholds()
    queues: Mapping[str, QueueThresholds] = field(default_factory=dict)

    @property
    def contact_topics(self) -> dict[str, str]:
        """Input topic name → channel it carries."""
        return {self.calls_topic: "voice", self.chats_topic: "chat"}

    def thresholds(self, queue: str) -> QueueThresholds:
        return self.queues.get(queue, self.defaults)


@dataclass(frozen=True)
class Settings(KpiSettings):
    """Everything the worker, producers and local Kafka need to know: the core's group
    (:class:`KpiSettings`, declared there, so its fields read as ``s.partitions``), the frozen
    groups of the other concerns (``s.kafka``, ``s.topics``, ``s.web``, ``s.batching``,
    ``s.local_broker``), and what the whole process shares."""

    app_id: str = "ccmon"
    data_dir: str = DEFAULT_DATA_DIR
    log_level: str = "info"
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    web: WebSettings = WebSettings()
    batching: BatchSettings = BatchSettings()
    local_broker: LocalBrokerSettings = LocalBrokerSettings()

    @property
    def input_topics(self) -> dict[str, str]:
        """Short name (a recording's, the simulator's) → input topic name: the one mapping."""
        return {"calls": self.calls_topic, "chats": self.chats_topic, "agents": self.agents_topic}

    @cached_property
    def kpi(self) -> KpiSettings:
        """The pure core's group alone (the core is typed to take it, not the whole Settings)."""
        return KpiSettings(**{f.name: getattr(self, f.name) for f in dataclasses.fields(KpiSettings)})

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be greater than 0")
    return value


def _port(name: str, raw: str) -> int:
    value = _positive_int(name, raw)
    if value > 65535:
        raise ConfigError(f"{name}={raw!r} is not a TCP port (1-65535)")
    return value


def _number(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None


def _non_negative_float(name: str, raw: str) -> float:
    value = _number(name, raw)
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"{name}={raw!r} must be a finite number >= 0")
    return value


def _positive_float(name: str, raw: str) -> float:
    value = _number(name, raw)
    if not value > 0:
        raise ConfigError(f"{name}={raw!r} must be greater than 0")
    if value == float("inf"):
        raise ConfigError(f"{name}={raw!r} must be a finite number")
    return value


#: the largest CCMON_MAX_EVENT_BYTES: Kafka's default message limit
MAX_EVENT_BYTES_LIMIT = 1024 * 1024


def _event_bytes(name: str, raw: str) -> int:
    value = _positive_int(name, raw)
    if value > MAX_EVENT_BYTES_LIMIT:
        raise ConfigError(f"{name}={raw!r} must be at most {MAX_EVENT_BYTES_LIMIT} (1 MiB)")
    return value


def _security_protocol(name: str, raw: str) -> SecurityProtocol:
    value = raw.strip().upper()
    if value not in SECURITY_PROTOCOLS:
        raise ConfigError(f"{name}={raw!r}: use PLAINTEXT, SSL, SASL_SSL or SASL_PLAINTEXT")
    return cast(SecurityProtocol, value)


def _sasl_mechanism(name: str, raw: str) -> SaslMechanism:
    value = raw.strip().upper()
    if value not in SASL_MECHANISMS:
        raise ConfigError(f"{name}={raw!r}: use SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN")
    return cast(SaslMechanism, value)


def _secret(name: str, raw: str) -> str:
    if not raw:
        raise ConfigError(f"{name} is set but empty")
    return raw


def _readable_file(name: str, raw: str) -> str:
    path = Path(_text(name, raw))
    try:
        path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path} ({exc.strerror})") from None
    return str(path)


#: the fewest bytes a customer key file must hold: a short key would make the hashes guessable
MIN_CUSTOMER_KEY = 16


def _key_file(name: str, raw: str) -> bytes:
    """The customer HMAC key: the file's bytes, trailing whitespace (a newline) left out."""
    path = Path(_text(name, raw))
    try:
        key = path.read_bytes().rstrip()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path} ({exc.strerror})") from None
    if len(key) < MIN_CUSTOMER_KEY:
        raise ConfigError(
            f"{name}: {path} holds {len(key)} bytes, at least {MIN_CUSTOMER_KEY} are needed "
            f"(e.g. head -c 32 /dev/urandom | base64 > {path})"
        )
    return key


def _password(env: Mapping[str, str]) -> str | None:
    """CCMON_KAFKA_PASSWORD, or the first line of CCMON_KAFKA_PASSWORD_FILE (e.g. a mounted secret)."""
    if env.get("CCMON_KAFKA_PASSWORD_FILE"):
        if "CCMON_KAFKA_PASSWORD" in env:
            raise ConfigError("set CCMON_KAFKA_PASSWORD or CCMON_KAFKA_PASSWORD_FILE, not both")
        path = Path(_readable_file("CCMON_KAFKA_PASSWORD_FILE", env["CCMON_KAFKA_PASSWORD_FILE"]))
        lines = path.read_text(encoding="utf-8").splitlines()
        if not lines or not lines[0]:
            raise ConfigError(f"CCMON_KAFKA_PASSWORD_FILE: {path} is empty")
        return lines[0]
    return None


def _ratio(name: str, raw: str) -> float:
    value = _non_negative_float(name, raw)
    if value > 1:
        raise ConfigError(f"{name}={raw!r} must be between 0 and 1 (e.g. 0.8 for 80 %)")
    return value


def _text(name: str, raw: str) -> str:
    if not raw.strip():
        raise ConfigError(f"{name} is set but empty")
    return raw.strip()


def _broker(name: str, raw: str) -> str:
    raw = _text(name, raw)
    for url in raw.split(";"):
        if not re.fullmatch(r"(kafka://)?[A-Za-z0-9_.\-\[\]:]+:\d{1,5}", url):
            raise ConfigError(f"{name}={raw!r}: expected kafka://HOST:PORT (several separated by ';')")
    return ";".join(u if u.startswith("kafka://") else f"kafka://{u}" for u in raw.split(";"))


def _zone(name: str, raw: str) -> str:
    raw = _text(name, raw)
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{name}={raw!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
    return raw


def _flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name}={raw!r}: use true or false")


#: the estimators of streams/core/predict.py the worker can run (the core imports config, not the
#: other way round); ``asterisk`` needs a running average kept per queue, which only the back-test
#: keeps so far
EWT_ESTIMATORS = ("cisco", "erlang", "throughput")


def _estimator(name: str, raw: str) -> str:
    value = raw.strip().lower()
    if value not in EWT_ESTIMATORS:
        raise ConfigError(f"{name}={raw!r}: use one of {', '.join(EWT_ESTIMATORS)}")
    return value


def _interval(name: str, raw: str) -> int:
    """Minutes, 15 or 30 (the WFM intervals; both divide an hour, so intervals align to the clock)."""
    if raw.strip() not in {"15", "30"}:
        raise ConfigError(f"{name}={raw!r}: use 15 or 30 (minutes)")
    return int(raw) * 60


def _level(name: str, raw: str) -> str:
    raw = raw.strip().lower()
    if raw not in {"debug", "info", "warning", "error", "critical"}:
        raise ConfigError(f"{name}={raw!r}: use debug, info, warning, error or critical")
    return raw


#: environment variable → (Settings field, parser). The single table of what can be configured;
#: ``group.field`` is a field of one of Settings' frozen groups.
ENV: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "CCMON_BROKER": ("kafka.broker", _broker),
    "CCMON_APP_ID": ("app_id", _text),
    "CCMON_CALLS_TOPIC": ("calls_topic", _text),
    "CCMON_CHATS_TOPIC": ("chats_topic", _text),
    "CCMON_AGENTS_TOPIC": ("agents_topic", _text),
    "CCMON_DEAD_LETTER_TOPIC": ("topics.dead_letter", _text),
    "CCMON_FACTS_TOPIC": ("topics.facts", _text),
    "CCMON_PARTITIONS": ("partitions", _positive_int),
    "CCMON_REPLICATION_FACTOR": ("topics.replication_factor", _positive_int),
    "CCMON_WEB_HOST": ("web.host", _text),
    "CCMON_WEB_PORT": ("web.port", _port),
    "CCMON_DATA_DIR": ("data_dir", _text),
    "CCMON_TIMEZONE": ("timezone", _zone),
    "CCMON_LATENESS_S": ("lateness_s", _non_negative_float),
    "CCMON_FUTURE_TOLERANCE_S": ("future_tolerance_s", _non_negative_float),
    "CCMON_ACW_TIMEOUT_S": ("acw_timeout_s", _non_negative_float),
    "CCMON_RETENTION_S": ("retention_s", _non_negative_float),
    "CCMON_BUCKET_S": ("bucket_s", _positive_int),
    "CCMON_MAX_QUEUES": ("max_queues", _positive_int),
    "CCMON_MAX_AGENTS": ("max_agents", _positive_int),
    "CCMON_MAX_EVENT_AGE_S": ("max_event_age_s", _positive_float),
    "CCMON_MAX_EVENT_BYTES": ("max_event_bytes", _event_bytes),
    "CCMON_EWT_ESTIMATOR": ("ewt_estimator", _estimator),
    "CCMON_SL_INTERVAL_MIN": ("sl_interval_s", _interval),
    "CCMON_AGENT_METRICS": ("web.agent_metrics", _flag),
    "CCMON_AGENT_ACW_LIMIT_S": ("web.agent_acw_limit_s", _positive_float),
    "CCMON_AGENT_AWAY_LIMIT_S": ("web.agent_away_limit_s", _positive_float),
    "CCMON_BATCH_SIZE": ("batching.size", _positive_int),
    "CCMON_SWEEP_INTERVAL_S": ("batching.sweep_interval_s", _non_negative_float),
    "CCMON_SNAPSHOT_INTERVAL_S": ("batching.snapshot_interval_s", _non_negative_float),
    "CCMON_SESSION_TIMEOUT_S": ("kafka.session_timeout_s", _non_negative_float),
    "CCMON_BROKER_PROBE_S": ("kafka.broker_probe_s", _positive_float),
    "CCMON_PRODUCER_TIMEOUT_S": ("kafka.producer_timeout_s", _positive_float),
    "CCMON_KAFKA_SECURITY_PROTOCOL": ("kafka.security_protocol", _security_protocol),
    "CCMON_KAFKA_SASL_MECHANISM": ("kafka.sasl_mechanism", _sasl_mechanism),
    "CCMON_KAFKA_USERNAME": ("kafka.username", _text),
    "CCMON_KAFKA_PASSWORD": ("kafka.password", _secret),
    "CCMON_KAFKA_CA_FILE": ("kafka.ca_file", _readable_file),
    "CCMON_KAFKA_CERT_FILE": ("kafka.cert_file", _readable_file),
    "CCMON_KAFKA_KEY_FILE": ("kafka.key_file", _readable_file),
    "CCMON_LOG_LEVEL": ("log_level", _level),
    "CCMON_KAFKA_VERSION": ("local_broker.version", _text),
    "CCMON_KAFKA_CACHE": ("local_broker.cache_dir", _text),
    "CCMON_KAFKA_HEAP": ("local_broker.heap", _text),
    # who may read the worker's web port and who sees the Kafka password (docs/security.md)
    "CCMON_WEB_CONFIG_FILE": ("web.config_file", _readable_file),
    "CCMON_KAFKA_ALLOW_PLAINTEXT_PASSWORD": ("kafka.allow_plaintext_password", _flag),
    # the customer behind the contacts: its key, windows, cap and display (docs/security.md)
    "CCMON_CUSTOMER_KEY_FILE": ("customer_key", _key_file),
    "CCMON_CUSTOMER_SHOW_CLEAR": ("customer_show_clear", _flag),
    "CCMON_REPEAT_WINDOW_S": ("repeat_window_s", _positive_float),
    "CCMON_RECOVERY_WINDOW_S": ("recovery_window_s", _positive_float),
    "CCMON_CUSTOMER_LIMIT": ("customer_limit", _positive_int),
    "CCMON_CUSTOMER_IDLE_S": ("customer_idle_s", _positive_float),
}
#: what the local broker needs, all it reads (``load(only=...)``)
LOCAL_BROKER_ENV = ("CCMON_DATA_DIR", "CCMON_KAFKA_VERSION", "CCMON_KAFKA_CACHE", "CCMON_KAFKA_HEAP")

#: the parsers flags of their own use (``flag_type``)
PARSERS: dict[str, Callable[[str, str], Any]] = {
    "port": _port,
    "positive_int": _positive_int,
    "positive_float": _positive_float,
    "non_negative_float": _non_negative_float,
}

#: thresholds applying to every queue without its own entry in CCMON_QUEUE_CONFIG
THRESHOLD_ENV: dict[str, tuple[str, Callable[[str, str], float]]] = {
    "CCMON_SL_THRESHOLD_S": ("sl_threshold_s", _non_negative_float),
    "CCMON_SL_TARGET": ("sl_target", _ratio),
    "CCMON_SHORT_ABANDON_S": ("short_abandon_s", _non_negative_float),
}


def _queue_config(raw: str, defaults: QueueThresholds) -> dict[str, QueueThresholds]:
    """CCMON_QUEUE_CONFIG: inline JSON or a path to a JSON file, ``{"queue": {"sl_target": 0.9}}``."""
    text = raw.strip()
    if not text.startswith("{"):
        path = Path(text)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"CCMON_QUEUE_CONFIG: cannot read {path}: {exc.strerror}") from None
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"CCMON_QUEUE_CONFIG is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError("CCMON_QUEUE_CONFIG must be a JSON object of queue name → thresholds")
    allowed = {f.name for f in dataclasses.fields(QueueThresholds)}
    out: dict[str, QueueThresholds] = {}
    for queue, values in doc.items():
        if not QUEUE_NAME.match(queue) or not isinstance(values, dict):
            raise ConfigError(f"CCMON_QUEUE_CONFIG: entry {queue!r} needs a valid queue name and an object")
        unknown = set(values) - allowed
        if unknown:
            raise ConfigError(
                f"CCMON_QUEUE_CONFIG[{queue!r}]: unknown keys {sorted(unknown)}; allowed {sorted(allowed)}"
            )
        parsed = {}
        for key, value in values.items():
            parser = _ratio if key == "sl_target" else _non_negative_float
            parsed[key] = parser(f"CCMON_QUEUE_CONFIG[{queue!r}].{key}", str(value))
        out[queue] = dataclasses.replace(defaults, **parsed)
    return out


def flag_type(name: str, parse: Callable[[str, str], Any] | None = None) -> Callable[[str], Any]:
    """An argparse ``type=``: the flag that overrides the variable ``name`` is parsed by that
    variable's parser, so a flag is validated exactly like its variable; a flag of its own (no
    variable) names itself and passes one of these parsers (``PARSERS``)."""
    import argparse

    parser = parse if parse is not None else ENV[name][1]

    def parse_flag(raw: str) -> Any:
        try:
            return parser(name, raw)
        except ConfigError as exc:  # argparse names the flag: the message starts at the value
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{name}=")) from None

    return parse_flag


def _build(values: Mapping[str, Any]) -> Settings:
    """Settings from ``attr → value``, where ``group.field`` names a field of a group."""
    top: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}
    for attr, value in values.items():
        group, _, name = attr.rpartition(".")
        (groups.setdefault(group, {}) if group else top)[name] = value
    for group, fields_ in groups.items():
        if group not in GROUPS:
            raise TypeError(f"Settings has no group {group!r}")
        top[group] = dataclasses.replace(getattr(Settings, group), **fields_)
    return Settings(**top)


#: Settings' frozen groups (``group.field`` in ENV and in load's overrides)
GROUPS = ("kafka", "topics", "web", "batching", "local_broker")


def _check_password_exposure(kafka: KafkaSettings) -> None:
    """A password is never ignored and never sent in clear unless the operator says so: with
    PLAINTEXT it would not be used at all (the operator meant SASL), and SASL PLAIN without TLS
    puts it on the wire as is (SCRAM sends only a proof of it)."""
    if kafka.password is not None and kafka.security_protocol in ("PLAINTEXT", "SSL"):
        raise ConfigError(
            f"a Kafka password is set but CCMON_KAFKA_SECURITY_PROTOCOL={kafka.security_protocol} "
            f"uses no SASL, so it would be ignored: set SASL_SSL, or remove the password"
        )
    plain = kafka.security_protocol == "SASL_PLAINTEXT" and kafka.sasl_mechanism == "PLAIN"
    if plain and not kafka.allow_plaintext_password:
        raise ConfigError(
            "SASL PLAIN over SASL_PLAINTEXT sends the Kafka password unencrypted: use SASL_SSL or a "
            "SCRAM mechanism, or set CCMON_KAFKA_ALLOW_PLAINTEXT_PASSWORD=1 to accept that"
        )


def customer_notice(s: KpiSettings) -> str | None:
    """The one line a worker without a customer key logs at start (the features it has not)."""
    if s.customer_key is not None:
        return None
    return (
        "customer features off: no CCMON_CUSTOMER_KEY_FILE, so every event's customer is dropped at "
        "intake (no repeat contacts, abandon recovery, operational FCR, customers at risk, call-back list)"
    )


def load(
    env: Mapping[str, str] | None = None, *, only: tuple[str, ...] | None = None, **overrides: Any
) -> Settings:
    """Settings from the environment (``os.environ`` by default), then explicit overrides, named
    like ENV's fields (a group's as ``"web.port"``: ``load(**{"web.port": 8080})``).
    ``only``: read just these variables (a command that needs a few, e.g. the local broker)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {
        attr: parse(var, env[var])
        for var, (attr, parse) in ENV.items()
        if var in env and (only is None or var in only)
    }
    if only is not None:
        return _build(values)
    thresholds = {attr: parse(var, env[var]) for var, (attr, parse) in THRESHOLD_ENV.items() if var in env}
    defaults = QueueThresholds(**thresholds)
    values["defaults"] = defaults
    if env.get("CCMON_QUEUE_CONFIG"):
        values["queues"] = _queue_config(env["CCMON_QUEUE_CONFIG"], defaults)
    password = _password(env)
    if password is not None:
        values["kafka.password"] = password
    values.update({k: v for k, v in overrides.items() if v is not None})
    settings = _build(values)
    kafka = settings.kafka
    if kafka.security_protocol.startswith("SASL_") and not (kafka.username and kafka.password):
        raise ConfigError(
            f"CCMON_KAFKA_SECURITY_PROTOCOL={kafka.security_protocol} needs "
            f"CCMON_KAFKA_USERNAME and CCMON_KAFKA_PASSWORD (or CCMON_KAFKA_PASSWORD_FILE)"
        )
    _check_password_exposure(kafka)
    if settings.customer_show_clear and settings.customer_key is None:
        raise ConfigError(
            "CCMON_CUSTOMER_SHOW_CLEAR=true needs CCMON_CUSTOMER_KEY_FILE: without a key, no customers"
        )
    if bool(kafka.cert_file) != bool(kafka.key_file):
        raise ConfigError(
            "CCMON_KAFKA_CERT_FILE and CCMON_KAFKA_KEY_FILE go together (client certificate and its key)"
        )
    return settings
