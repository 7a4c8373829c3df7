"""The ``ccmon`` command: kafka, worker, simulate, replay, demo.

Configuration comes from ``CCMON_*`` environment variables (docs/configuration.md); flags
override them. Errors end with one line on stderr and a non-zero exit: 2 for bad usage or
configuration, 1 for a failure at run time, 3 for ``kafka status`` when Kafka is not running.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from streams import __version__
from streams.config import ConfigError, Settings, load
from streams.errors import CcmonError


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for flag, attr in (("broker", "broker"), ("web_host", "web_host"), ("web_port", "web_port"),
                       ("partitions", "partitions"), ("log_level", "log_level")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[attr] = value
    env = dict(os.environ)
    if "broker" in overrides:  # validate the flag like the variable
        env["CCMON_BROKER"] = overrides.pop("broker")
    return load(env, **overrides)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return value


def _broker_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", help="Kafka address, kafka://HOST:PORT (env CCMON_BROKER, default kafka://127.0.0.1:9092)")


# ---- commands ------------------------------------------------------------------------------
def cmd_kafka(args: argparse.Namespace) -> int:
    from streams.kafka_local import DEFAULT_DATA_DIR, LocalKafka
    kafka = LocalKafka(port=args.port, data_dir=Path(args.data_dir) if args.data_dir else DEFAULT_DATA_DIR)
    if args.action == "start":
        print(kafka.start())
    elif args.action == "stop":
        print(kafka.stop())
    else:
        running, text = kafka.status()
        print(text)
        return 0 if running else 3
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    s = _settings(args)
    from streams.topics import ensure_topics
    asyncio.run(ensure_topics(s))
    import faust

    from streams.app import Pipeline
    pipeline = Pipeline(s)
    print(f"ccmon worker: consuming {s.calls_topic}, {s.chats_topic}, {s.agents_topic} from {s.bootstrap_servers}; "
          f"metrics on http://{s.web_host}:{s.web_port}/metrics", file=sys.stderr, flush=True)
    worker = faust.Worker(pipeline.app, loglevel=s.log_level.upper(), quiet=True)
    worker.execute_from_commandline()
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    s = _settings(args)
    from producers.simulate import run
    if args.output is None:
        from streams.topics import ensure_topics
        asyncio.run(ensure_topics(s))
    elif args.duration is None and args.backfill == 0:
        raise CcmonError("--output needs --duration or --backfill (how much simulated time to write)")
    asyncio.run(run(s, seed=args.seed, duration=args.duration, backfill=args.backfill, agents=args.agents,
                    output=Path(args.output) if args.output else None, rate=args.rate))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    s = _settings(args)
    from producers.replay import replay
    from streams.topics import ensure_topics
    path = Path(args.file)
    if not path.is_file():
        raise CcmonError(f"recording {path} does not exist")
    asyncio.run(ensure_topics(s))
    asyncio.run(replay(s, path, speed=args.speed, quiet=args.quiet))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Local Kafka + worker + simulator, until Ctrl-C; everything it started is stopped."""
    from streams.kafka_local import DEFAULT_DATA_DIR, LocalKafka
    s = _settings(args)
    kafka = LocalKafka(port=args.kafka_port, data_dir=DEFAULT_DATA_DIR)
    broker = f"kafka://127.0.0.1:{args.kafka_port}"
    started_kafka = kafka.pid() is None
    print(f"ccmon demo: {kafka.start()}", file=sys.stderr, flush=True)
    env = {**os.environ, "CCMON_BROKER": broker, "CCMON_WEB_PORT": str(s.web_port)}
    procs: list[subprocess.Popen] = []
    stop = {"flag": False}

    def _stop(signum: int, frame: Any) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "streams", "worker"], env=env))
        procs.append(subprocess.Popen([sys.executable, "-m", "streams", "simulate", "--backfill", str(args.backfill),
                                       "--seed", str(args.seed)], env=env))
        url = f"http://{s.web_host}:{s.web_port}"
        print(f"ccmon demo: running.\n  Wallboard:  {url}/wallboard\n  Metrics:    {url}/metrics\n"
              f"  Health:     {url}/health\n  (Ctrl-C stops everything)", file=sys.stderr, flush=True)
        deadline = time.monotonic() + args.duration if args.duration else None
        while not stop["flag"] and (deadline is None or time.monotonic() < deadline):
            if any(p.poll() is not None for p in procs):
                raise CcmonError("a demo process exited unexpectedly; see its output above")
            time.sleep(0.5)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if started_kafka:
            print(f"ccmon demo: kafka {kafka.stop()}", file=sys.stderr, flush=True)
    return 0


# ---- parser ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ccmon", description="Real-time contact-center KPIs from Kafka to Prometheus.",
        epilog="Configuration: CCMON_* environment variables (see docs/configuration.md); flags override them.")
    parser.add_argument("--version", action="version", version=f"ccmon {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("kafka", help="run a local single-node Apache Kafka (KRaft) on 127.0.0.1",
                       description="Start, stop or check a local Apache Kafka broker for development, demos and "
                                   "tests. The first start resolves Kafka from Maven Central (needs java and mvn).")
    p.add_argument("action", choices=("start", "stop", "status"))
    p.add_argument("--port", type=_port, default=9092, help="client port (default 9092; the controller uses PORT+1)")
    p.add_argument("--data-dir", help="where logs, data and the pid file live (default ~/.local/share/ccmon/kafka)")
    p.set_defaults(func=cmd_kafka)

    p = sub.add_parser("worker", help="run the stream processors and serve /metrics",
                       description="Consume contact and agent events, keep KPIs in Faust tables, serve them on "
                                   "/metrics. Creates missing topics. Stops cleanly on Ctrl-C / SIGTERM.")
    _broker_flags(p)
    p.add_argument("--web-host", help="address for /metrics (env CCMON_WEB_HOST, default 127.0.0.1)")
    p.add_argument("--web-port", type=_port, help="port for /metrics (env CCMON_WEB_PORT, default 6066)")
    p.add_argument("--partitions", type=int, help="partitions of every ccmon topic (env CCMON_PARTITIONS, default 8)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="(env CCMON_LOG_LEVEL)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("simulate", help="produce events from a simulated contact center",
                       description="A seeded, reproducible simulated contact center: Poisson arrivals per queue "
                                   "and channel, agents with skills, abandons, holds, transfers, surveys. Runs "
                                   "live until Ctrl-C or --duration; --backfill first simulates the recent past.")
    _broker_flags(p)
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1): same seed, same events")
    p.add_argument("--duration", type=_positive_float, help="stop after this many seconds")
    p.add_argument("--backfill", type=_non_negative_float, default=0.0,
                   help="first simulate this many seconds of the past, as fast as possible (default 0)")
    p.add_argument("--agents", type=int, default=60, help="number of agents (default 60)")
    p.add_argument("--rate", type=_positive_float, default=1.0, help="multiply every arrival rate (default 1)")
    p.add_argument("--output", help="write a recording (JSON lines) to this file instead of producing to Kafka")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("replay", help="produce a recording to Kafka, in order",
                       description='Produce a JSON-lines recording ({"topic", "key", "value"} per line) in '
                                   "order, keys preserved; a string value is sent as raw bytes.")
    p.add_argument("file", help="the recording (JSON lines)")
    _broker_flags(p)
    p.add_argument("--speed", type=_positive_float,
                   help="replay at recorded pace times this factor (1 = real time); default: as fast as possible")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("demo", help="local Kafka + worker + simulator, all at once",
                       description="Start a local Kafka, a worker and the simulator; print the URLs; Ctrl-C "
                                   "stops every process it started.")
    p.add_argument("--kafka-port", type=_port, default=9092, help="local Kafka port (default 9092)")
    p.add_argument("--web-port", type=_port, help="worker port (default 6066)")
    p.add_argument("--backfill", type=_non_negative_float, default=3600.0,
                   help="seconds of simulated history to start with (default 3600)")
    p.add_argument("--seed", type=int, default=1, help="simulator seed (default 1)")
    p.add_argument("--duration", type=_positive_float, help="stop after this many seconds (default: until Ctrl-C)")
    p.set_defaults(func=cmd_demo)
    return parser


def _configure_logging() -> None:
    """Producer commands log ccmon's own lines; aiokafka's transient retries (a new topic's leader
    moving in, a broker restart) are handled and only shown with CCMON_LOG_LEVEL=debug."""
    level = os.environ.get("CCMON_LOG_LEVEL", "info").upper()
    logging.basicConfig(level=logging.WARNING, format="ccmon: %(levelname)s %(name)s: %(message)s")
    if level != "DEBUG":
        logging.getLogger("aiokafka").setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "worker":  # Faust configures the worker's logging itself
        _configure_logging()
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"ccmon: configuration error: {exc}", file=sys.stderr)
        return 2
    except CcmonError as exc:
        print(f"ccmon: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
