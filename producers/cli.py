"""The producer commands of ``ccmon``: simulate, replay and ingest. Registered with the CLI
through the ``ccmon.commands`` entry point (pyproject.toml), so that ``streams`` never imports
``producers``: the dependency runs one way (tests/unit/test_dependencies.py)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from streams.cli.common import broker_flags, non_negative_float, positive_float, settings
from streams.errors import CcmonError

__all__ = ["register"]


def _speed(text: str) -> float:
    value = positive_float(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: simulated time cannot run slower than the wall clock")
    return value


def _incident(text: str) -> Any:
    from producers.scenario import parse_incident

    try:
        return parse_incident(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_simulate(args: argparse.Namespace) -> int:
    s = settings(args)
    from producers.scenario import Scenario, load
    from producers.simulate import run

    scenario = load(Path(args.scenario)) if args.scenario else Scenario.default()
    scenario = scenario.scaled(rate=args.rate, agents=args.staff)
    if args.profile == "flat":
        scenario = scenario.flat()
    if args.speed != 1 and args.duration is None:
        raise CcmonError("--speed needs --duration: compressed time must end at the wall clock")
    if args.output is None:
        from streams.kafka.topics import ensure_topics

        asyncio.run(ensure_topics(s))
    elif args.duration is None and args.backfill == 0:
        raise CcmonError("--output needs --duration or --backfill (how much simulated time to write)")
    asyncio.run(
        run(
            s,
            seed=args.seed,
            duration=args.duration,
            backfill=args.backfill,
            output=Path(args.output) if args.output else None,
            scenario=scenario,
            incidents=tuple(args.incident),
            speed=args.speed,
        )
    )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    s = settings(args)
    from producers.replay import replay
    from streams.kafka.topics import ensure_topics

    path = Path(args.file)
    if not path.is_file():
        raise CcmonError(f"recording {path} does not exist")
    asyncio.run(ensure_topics(s))
    asyncio.run(replay(s, path, speed=args.speed, quiet=args.quiet))
    return 0


#: ``ccmon ingest KIND``: every source, one line each. The module (kept free of Kafka imports, so
#: building the parser stays light) gives ``HELP``, ``DESCRIPTION``, ``add_arguments(parser)`` and
#: ``run(args, settings) -> exit code`` (docs/sources/README.md).
SOURCES: dict[str, str] = {
    "asterisk": "producers.sources.asterisk.options",
    "webhooks": "producers.sources.webhooks.options",
}


def cmd_ingest(args: argparse.Namespace) -> int:
    import importlib

    code: int = importlib.import_module(SOURCES[args.source_kind]).run(args, settings(args))
    return code


def register(sub: Any) -> None:
    """Add the producer commands to ``ccmon``'s sub-command parsers."""
    p = sub.add_parser(
        "simulate",
        help="produce events from a simulated contact center",
        description="A seeded, reproducible simulated contact center from a scenario (queues, "
        "agents and skills, day profile, handle and patience times, chat concurrency, "
        "surveys): abandons, holds, transfers, incidents on demand. Runs live until "
        "Ctrl-C or --duration; --backfill first simulates the recent past at once.",
    )
    broker_flags(p)
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1): same seed, same events")
    p.add_argument("--duration", type=positive_float, help="stop after this many seconds")
    p.add_argument(
        "--backfill",
        type=non_negative_float,
        default=0.0,
        help="first simulate this many seconds of the past, as fast as possible (default 0)",
    )
    p.add_argument(
        "--scenario",
        help="scenario file (TOML; default: the built-in scenario, producers/scenarios/default.toml)",
    )
    p.add_argument("--rate", type=positive_float, default=1.0, help="multiply every arrival rate (default 1)")
    p.add_argument("--staff", type=positive_float, default=1.0, help="multiply every agent group (default 1)")
    p.add_argument(
        "--profile",
        choices=("day", "flat"),
        default="day",
        help="arrivals over the day: the scenario's hourly profile (default), or flat, profile "
        "1.0 at every hour, so the same seed gives the same traffic whatever the hour",
    )
    p.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        help="simulated seconds per wall-clock second (default 1; > 1 needs --duration)",
    )
    p.add_argument(
        "--incident",
        action="append",
        default=[],
        type=_incident,
        metavar="SPEC",
        help="schedule an incident, seconds after the start (repeatable): "
        "abandon-spike:QUEUE@START+DURATION, agents-away:N@START+DURATION, bad-input:N@START, "
        "agent-stuck:AGENT@START+DURATION",
    )
    p.add_argument(
        "--output", help="write a recording (JSON lines) to this file instead of producing to Kafka"
    )
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser(
        "replay",
        help="produce a recording to Kafka, in order",
        description='Produce a JSON-lines recording ({"topic", "key", "value"} per line) in '
        "order, keys preserved; a string value is sent as raw bytes.",
    )
    p.add_argument("file", help="the recording (JSON lines)")
    broker_flags(p)
    p.add_argument(
        "--speed",
        type=positive_float,
        help="replay at recorded pace times this factor (1 = real time); default: as fast as possible",
    )
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser(
        "ingest",
        help="turn a contact-center platform's own events into ccmon events",
        description="Read a real platform's event feed and produce ccmon events on the input "
        "topics; re-reading gives the same event ids (deduplicated by the worker).",
    )
    sources = p.add_subparsers(dest="source_kind", metavar="SOURCE", required=True)
    import importlib

    for kind, module_name in SOURCES.items():
        module = importlib.import_module(module_name)
        a = sources.add_parser(kind, help=module.HELP, description=module.DESCRIPTION)
        module.add_arguments(a)
        broker_flags(a)
        a.set_defaults(func=cmd_ingest)
