"""Simulation scenarios (TOML) and incidents: what ``ccmon simulate`` simulates.

See ``producers/scenarios/default.toml`` for every key; ``docs/simulator.md`` for incidents.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from streams.config import QUEUE_NAME
from streams.errors import CcmonError

CHANNELS = ("voice", "chat")


@dataclass(frozen=True)
class QueueSpec:
    name: str
    channel: str
    per_hour: float
    talk_mean_s: float
    patience_mean_s: float


@dataclass(frozen=True)
class AgentGroup:
    count: int
    channel: str
    skills: tuple[str, ...]
    chat_concurrency: int = 1


@dataclass(frozen=True)
class Customers:
    """Returning customers (issue 24; the ``[customers]`` section): who contacts, who comes back.
    Shares are of contacts; delays are drawn uniformly between their bounds."""

    pool: int = 200_000  #: distinct customers new contacts are drawn from (chance repeats: traffic / pool)
    anonymous: float = 0.05  #: share of new contacts with no customer (withheld number, unknown visitor)
    callback_after_abandon: float = 0.5  #: share of abandoned contacts whose customer tries again
    callback_delay_s: tuple[float, float] = (60.0, 900.0)  #: within minutes
    callback_max_tries: int = 3  #: a customer gives up after this many abandons in a row
    other_queue: float = 0.3  #: share of returns on another queue or channel
    repeat_after_handled: float = 0.1  #: share of handled contacts whose issue brings them back
    repeat_delay_s: tuple[float, float] = (1800.0, 6 * 3600.0)  #: within hours
    resolved: float = 0.6  #: share of the other handled contacts whose case is marked resolved
    resolved_later: float = 0.3  #: of those, share resolved hours later rather than within minutes
    resolved_delay_s: tuple[float, float] = (3600.0, 8 * 3600.0)  #: the later ones


@dataclass(frozen=True)
class Scenario:
    queues: tuple[QueueSpec, ...]
    agents: tuple[AgentGroup, ...]
    hold_probability: float = 0.2
    hold_mean_s: float = 40.0
    transfer_probability: float = 0.05
    acw_mean_s: float = 35.0
    missing_wrapup_probability: float = 0.02
    survey_rate: float = 0.3
    survey_delay_max_s: float = 900.0
    away_probability: float = 0.05
    hourly: tuple[float, ...] = field(default=(1.0,) * 24)
    miss_probability: float = 0.03  #: an offer rings out: ``missed``, the agent pauses, the contact waits on
    acw_lingerers: float = 0.1  #: share of agents whose after-contact work takes four times as long
    ces_rate: float = 0.6  #: share of survey answers that carry CES
    #: incidents on the scenario's own schedule (``incidents = ["surge:sales*2@3600+1800", ...]``),
    #: added to those of ``--incident``
    incidents: tuple[Incident, ...] = ()
    customers: Customers = field(default_factory=Customers)  #: returning customers

    @classmethod
    def default(cls) -> Scenario:
        text = resources.files("producers").joinpath("scenarios/default.toml").read_text()
        return parse(tomllib.loads(text), "built-in scenario")

    def flat(self) -> Scenario:
        """Profile 1.0 at every hour: the traffic no longer depends on the hour the simulation
        starts at, so a test or benchmark gets the same workload at 03:00 and at 21:00."""
        return self.replace(hourly=(1.0,) * 24)

    def replace(self, **changes: Any) -> Scenario:
        return dataclasses.replace(self, **changes)

    def scaled(self, rate: float = 1.0, agents: float = 1.0) -> Scenario:
        """Arrival rates × ``rate`` and agent counts × ``agents`` (at least 1 per group)."""
        return self.replace(
            queues=tuple(dataclasses.replace(q, per_hour=q.per_hour * rate) for q in self.queues),
            agents=tuple(dataclasses.replace(g, count=max(1, round(g.count * agents))) for g in self.agents),
        )


def _num(where: str, value: Any, low: float = 0.0, high: float | None = None, strict: bool = False) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
        raise CcmonError(f"{where} must be a number")
    if value < low or (strict and value == low) or (high is not None and value > high):
        bound = f"> {low}" if strict else f">= {low}"
        raise CcmonError(f"{where} must be {bound}" + (f" and <= {high}" if high is not None else ""))
    return float(value)


def parse(doc: dict[str, Any], source: str) -> Scenario:
    queues = []
    for i, q in enumerate(doc.get("queues") or []):
        where = f"{source}: queues[{i}]"
        name = q.get("name")
        if not isinstance(name, str) or not QUEUE_NAME.match(name):
            raise CcmonError(f"{where}.name must match [A-Za-z0-9_.-]{{1,64}}")
        if q.get("channel") not in CHANNELS:
            raise CcmonError(f"{where}.channel must be voice or chat")
        queues.append(
            QueueSpec(
                name,
                q["channel"],
                _num(f"{where}.per_hour", q.get("per_hour"), strict=True),
                _num(f"{where}.talk_mean_s", q.get("talk_mean_s"), strict=True),
                _num(f"{where}.patience_mean_s", q.get("patience_mean_s"), strict=True),
            )
        )
    if not queues:
        raise CcmonError(f"{source}: needs at least one [[queues]] entry")
    names = {(q.name, q.channel) for q in queues}
    agents = []
    for i, g in enumerate(doc.get("agents") or []):
        where = f"{source}: agents[{i}]"
        if g.get("channel") not in CHANNELS:
            raise CcmonError(f"{where}.channel must be voice or chat")
        skills = g.get("skills")
        if not isinstance(skills, list) or not skills or any((s, g["channel"]) not in names for s in skills):
            raise CcmonError(f"{where}.skills must list queues of its channel defined in [[queues]]")
        count = _num(f"{where}.count", g.get("count"), strict=True)
        conc = _num(f"{where}.chat_concurrency", g.get("chat_concurrency", 1), low=1, high=10)
        agents.append(AgentGroup(int(count), g["channel"], tuple(skills), int(conc)))
    if not agents:
        raise CcmonError(f"{source}: needs at least one [[agents]] group")
    h, s, c = doc.get("handling", {}), doc.get("surveys", {}), doc.get("center", {})
    hourly = doc.get("profile", {}).get("hourly", [1.0] * 24)
    raw_incidents = doc.get("incidents", [])
    if not isinstance(raw_incidents, list) or not all(isinstance(x, str) for x in raw_incidents):
        raise CcmonError(f"{source}: incidents must list incident strings (docs/simulator.md)")
    incidents = []
    for i, text in enumerate(raw_incidents):
        try:
            incidents.append(parse_incident(text))
        except ValueError as exc:
            raise CcmonError(f"{source}: incidents[{i}]: {exc}") from None
    if not isinstance(hourly, list) or len(hourly) != 24:
        raise CcmonError(f"{source}: profile.hourly must list 24 multipliers, one per hour")
    return Scenario(
        tuple(queues),
        tuple(agents),
        hold_probability=_num(f"{source}: handling.hold_probability", h.get("hold_probability", 0.2), high=1),
        hold_mean_s=_num(f"{source}: handling.hold_mean_s", h.get("hold_mean_s", 40), strict=True),
        transfer_probability=_num(
            f"{source}: handling.transfer_probability", h.get("transfer_probability", 0.05), high=1
        ),
        acw_mean_s=_num(f"{source}: handling.acw_mean_s", h.get("acw_mean_s", 35), strict=True),
        missing_wrapup_probability=_num(
            f"{source}: handling.missing_wrapup_probability",
            h.get("missing_wrapup_probability", 0.02),
            high=1,
        ),
        survey_rate=_num(f"{source}: surveys.response_rate", s.get("response_rate", 0.3), high=1),
        survey_delay_max_s=_num(f"{source}: surveys.delay_max_s", s.get("delay_max_s", 900), strict=True),
        away_probability=_num(
            f"{source}: center.agents_state_noise", c.get("agents_state_noise", 0.05), high=1
        ),
        hourly=tuple(_num(f"{source}: profile.hourly[{i}]", x) for i, x in enumerate(hourly)),
        miss_probability=_num(
            f"{source}: handling.miss_probability", h.get("miss_probability", 0.03), high=1
        ),
        acw_lingerers=_num(f"{source}: center.acw_lingerers", c.get("acw_lingerers", 0.1), high=1),
        ces_rate=_num(f"{source}: surveys.ces_rate", s.get("ces_rate", 0.6), high=1),
        incidents=tuple(incidents),
        customers=parse_customers(doc.get("customers", {}), source),
    )


def _delay(where: str, value: Any, default: tuple[float, float]) -> tuple[float, float]:
    if value is None:
        return default
    if not isinstance(value, list) or len(value) != 2:
        raise CcmonError(f"{where} must be [shortest, longest] in seconds")
    low, high = _num(f"{where}[0]", value[0]), _num(f"{where}[1]", value[1])
    if high < low:
        raise CcmonError(f"{where}: the longest must be >= the shortest")
    return (low, high)


def parse_customers(doc: Any, source: str) -> Customers:
    """The ``[customers]`` section; absent keys keep the defaults of :class:`Customers`."""
    if not isinstance(doc, dict):
        raise CcmonError(f"{source}: customers must be a table")
    where, d = f"{source}: customers", Customers()
    known = {f.name for f in dataclasses.fields(Customers)}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise CcmonError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")

    def share(name: str) -> float:
        return _num(f"{where}.{name}", doc.get(name, getattr(d, name)), high=1)

    return Customers(
        pool=int(_num(f"{where}.pool", doc.get("pool", d.pool), low=1)),
        anonymous=share("anonymous"),
        callback_after_abandon=share("callback_after_abandon"),
        callback_delay_s=_delay(f"{where}.callback_delay_s", doc.get("callback_delay_s"), d.callback_delay_s),
        callback_max_tries=int(
            _num(f"{where}.callback_max_tries", doc.get("callback_max_tries", d.callback_max_tries), low=1)
        ),
        other_queue=share("other_queue"),
        repeat_after_handled=share("repeat_after_handled"),
        repeat_delay_s=_delay(f"{where}.repeat_delay_s", doc.get("repeat_delay_s"), d.repeat_delay_s),
        resolved=share("resolved"),
        resolved_later=share("resolved_later"),
        resolved_delay_s=_delay(f"{where}.resolved_delay_s", doc.get("resolved_delay_s"), d.resolved_delay_s),
    )


def load(path: Path) -> Scenario:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CcmonError(f"cannot read scenario {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CcmonError(f"scenario {path} is not valid TOML: {exc}") from None
    return parse(doc, str(path))


@dataclass(frozen=True)
class Incident:
    """Something going wrong on purpose, ``start_s`` after the simulation starts."""

    kind: str  #: abandon-spike | surge | agents-away | bad-input | agent-stuck
    start_s: float
    duration_s: float = 0.0
    queue: str | None = None
    count: int = 0
    agent: str | None = None  #: agent-stuck: the agent id
    factor: float = 1.0  #: surge: the arrival multiplier


_INCIDENT = re.compile(
    r"(abandon-spike|agents-away|bad-input|agent-stuck|surge):([A-Za-z0-9_.-]+?)(?:\*(\d+(?:\.\d+)?))?"
    r"@(\d+(?:\.\d+)?)(?:\+(\d+(?:\.\d+)?))?\Z"
)
#: the largest arrival multiplier of a surge (the simulator draws arrivals by thinning at it)
MAX_SURGE = 10.0


def parse_incident(text: str) -> Incident:
    """``abandon-spike:QUEUE@START+DURATION``, ``surge:QUEUE*FACTOR@START+DURATION``,
    ``agents-away:N@START+DURATION``, ``bad-input:N@START``, ``agent-stuck:AGENT@START+DURATION``."""
    m = _INCIDENT.match(text)
    if not m:
        raise ValueError(
            f"{text!r}: expected abandon-spike:QUEUE@START+DURATION, surge:QUEUE*FACTOR@START+DURATION, "
            f"agents-away:N@START+DURATION, bad-input:N@START or agent-stuck:AGENT@START+DURATION "
            f"(seconds)"
        )
    kind, arg, factor = m.group(1), m.group(2), m.group(3)
    start, duration = float(m.group(4)), float(m.group(5) or 0)
    if (factor is not None) != (kind == "surge"):
        raise ValueError(f"{text!r}: only a surge takes *FACTOR, and a surge needs it")
    if kind == "surge":
        if duration <= 0:
            raise ValueError(f"{text!r}: a surge needs +DURATION")
        if not 0 < float(factor) <= MAX_SURGE:
            raise ValueError(f"{text!r}: a surge's factor must be > 0 and <= {MAX_SURGE:g}")
        return Incident(kind, start, duration, queue=arg, factor=float(factor))
    if kind == "abandon-spike":
        if duration <= 0:
            raise ValueError(f"{text!r}: an abandon spike needs +DURATION")
        return Incident(kind, start, duration, queue=arg)
    if kind == "agent-stuck":
        if duration <= 0:
            raise ValueError(f"{text!r}: agent-stuck needs +DURATION")
        return Incident(kind, start, duration, agent=arg)
    if not arg.isdigit() or int(arg) <= 0:
        raise ValueError(f"{text!r}: {kind} needs a positive count")
    if kind == "agents-away" and duration <= 0:
        raise ValueError(f"{text!r}: agents-away needs +DURATION")
    return Incident(kind, start, duration, count=int(arg))
