"""The ``ccmon`` command: kafka, worker, simulate, replay, ingest, demo.

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
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from streams import __version__
from streams.cli.common import broker_flags, non_negative_float, port, positive_float, settings
from streams.config import ConfigError, customer_notice, flag_type, load
from streams.dev.net import port_free
from streams.errors import CcmonError


def brokers_count(raw: str) -> int:
    """``--brokers``: 1 to 9 local brokers (each a JVM of its own: more will not fit a laptop)."""
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if not 1 <= count <= 9:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a broker count from 1 to 9")
    return count


# ---- commands ------------------------------------------------------------------------------
def cmd_kafka(args: argparse.Namespace) -> int:
    from streams.dev.kafka_local import local_kafka

    if args.brokers is not None and args.action != "start":
        raise ConfigError("--brokers is for start; stop and status find the brokers in the data dir")
    kafka = local_kafka(
        args.port,
        Path(args.data_dir) if args.data_dir else None,
        args.brokers if args.action == "start" else None,
    )
    if args.action == "start":
        print(kafka.start())
    elif args.action == "stop":
        print(kafka.stop())
    else:
        running, text = kafka.status()
        print(text)
        return 0 if running else 3
    return 0


def faust_worker(app: Any, log_level: str, log_filters: Sequence[logging.Filter] = ()) -> Any:
    """Faust's worker for ``app``, without its start-up spinner: to spin it on every log record,
    Faust sets the root logger to DEBUG at warning level and above and leaves it there, so every
    library's debug call builds a record (aiokafka's producer one per message sent: 6 % of a
    worker's time at 10,000 events/s, docs/performance-history.md)."""
    import faust

    class Worker(faust.Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            """``log_filters`` from the first record on (the worker's client retries at start-up)."""
            super().on_setup_root_logger(logger, level)
            for handler in logger.handlers:
                for f in log_filters:
                    handler.addFilter(f)

    worker = Worker(app, loglevel=log_level.upper(), quiet=True, logging_config=library_logging(log_level))
    worker.spinner = None
    return worker


#: whose INFO lines are not the worker's own: Faust's and its libraries' ("Starting...", topic
#: creation, subscription and recovery tables), and those of ccmon's Faust services
#: (streams/faust_ext: their "Starting..." and rebalance details); shown at ``debug`` only
LIBRARY_LOGGERS = ("faust", "mode", "aiokafka", "kafka", "streams.faust_ext")


def library_logging(log_level: str) -> dict[str, Any] | None:
    """Faust's logging configuration (merged into its own) for the worker's log level: at ``info``
    the worker's own lines and the libraries' warnings and errors; at ``debug`` everything; at
    ``warning`` and above nothing needs changing (docs/configuration.md)."""
    if log_level.lower() != "info":
        return None
    return {"merge": True, "loggers": {name: {"level": "WARNING"} for name in LIBRARY_LOGGERS}}


def cmd_worker(args: argparse.Namespace) -> int:
    s = settings(args)
    from streams.faust_ext.predecessor import evict
    from streams.kafka.topics import ensure_topics
    from streams.worker.snapshots import check_snapshots
    from streams.worker.web_security import web_guard

    _, tls = web_guard(s)  # a bad web config file ends here, before any connection (exit 2)

    asyncio.run(ensure_topics(s))
    asyncio.run(evict(s))  # a killed predecessor would hold the group for its session timeout
    asyncio.run(check_snapshots(s))  # another cluster's snapshots are set aside, not loaded
    import uvloop  # Faust runs on whatever loop is current; uvloop's costs less per callback

    from streams.worker import collector
    from streams.worker.app import Pipeline

    collector.tune()  # the state is long-lived: no full walk of it every few seconds
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from streams.packaged import core_build

    pipeline = Pipeline(s)
    print(
        f"ccmon worker: consuming {s.calls_topic}, {s.chats_topic}, {s.agents_topic} "
        f"from {s.kafka.bootstrap_servers}; "
        f"metrics on http{'s' if tls else ''}://{s.web.host}:{s.web.port}/metrics; core {core_build()}",
        file=sys.stderr,
        flush=True,
    )
    notice = customer_notice(s)
    if notice is not None:
        print(f"ccmon worker: {notice}", file=sys.stderr, flush=True)
    from streams.kafka.broker_watch import RetryNoise

    faust_worker(pipeline.app, s.log_level, [RetryNoise(pipeline.broker)]).execute_from_commandline()
    return 0


def _get_json(url: str) -> Any:
    import urllib.request

    import orjson

    with urllib.request.urlopen(url, timeout=2) as resp:
        return orjson.loads(resp.read())


def _has_series(url: str) -> bool:
    """Whether the wallboard shows numbers yet (refused or not ready counts as no)."""
    try:
        return bool(_get_json(url)["series"])
    except OSError:
        return False


def _prometheus_config(path: Path, web_port: int) -> None:
    """The demo's Prometheus: ccmon's packaged rules, copied beside its config, and one target."""
    from streams.packaged import prometheus_rules

    rules = []
    for name, text in prometheus_rules().items():
        rules.append(path.parent / f"demo-rules-{name}")
        rules[-1].write_text(text, encoding="utf-8")
    lines = ["global:", "  scrape_interval: 5s", "  evaluation_interval: 5s"]
    if rules:
        lines += ["rule_files:"] + [f"  - {r}" for r in rules]
    lines += [
        "scrape_configs:",
        "  - job_name: ccmon",
        "    static_configs:",
        f"      - targets: ['127.0.0.1:{web_port}']",
    ]
    path.write_text("\n".join(lines) + "\n")


def cmd_demo(args: argparse.Namespace) -> int:
    """Local Kafka + worker + simulator (+ Prometheus when installed), until Ctrl-C; everything it
    started is stopped."""
    import shutil

    from streams.dev.harness import ProcessExited, Service, wait_until
    from streams.dev.kafka_local import LocalKafka

    s = settings(args)
    say = lambda text: print(f"ccmon demo: {text}", file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.monotonic()
    data = Path(s.data_dir)
    kafka = LocalKafka(port=args.kafka_port, data_dir=data / "kafka")
    prometheus = shutil.which("prometheus")
    busy = [
        f"{what} port {number}"
        for what, number in (("worker", s.web.port), ("Prometheus", args.prometheus_port))
        if (what == "worker" or prometheus) and not port_free(number)
    ]
    if busy:
        raise CcmonError(
            f"{' and '.join(busy)} on 127.0.0.1 already in use: stop what uses it, or pick others "
            f"with --web-port / --prometheus-port"
        )
    started_kafka = kafka.pid() is None
    say(f"kafka {kafka.start()}")
    env = {
        **os.environ,
        "CCMON_BROKER": f"kafka://127.0.0.1:{args.kafka_port}",
        "CCMON_WEB_PORT": str(s.web.port),
        "CCMON_DATA_DIR": str(data),
    }
    procs: list[tuple[str, subprocess.Popen]] = []
    stop = {"flag": False}

    def _stop(signum: int, frame: Any) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    url = f"http://{s.web.host}:{s.web.port}"
    try:
        say("starting the worker...")
        worker = Service(
            [sys.executable, "-m", "streams", "worker"],
            port=s.web.port,
            host=s.web.host,
            env=env,
            name="worker",
        ).start()
        procs.append(("worker", worker.proc))
        try:
            worker.wait_ready(timeout=None, give_up=lambda: stop["flag"])  # until ready or Ctrl-C
        except ProcessExited:
            raise CcmonError("the worker exited during start-up; see its output above") from None
        say(
            f"worker ready after {time.monotonic() - t0:.1f} s; starting the simulator "
            f"({args.backfill:.0f} s of history first)"
        )
        sim = [
            sys.executable,
            "-m",
            "streams",
            "simulate",
            "--backfill",
            str(args.backfill),
            "--seed",
            str(args.seed),
        ]
        procs.append(("simulator", subprocess.Popen(sim, env=env)))
        if prometheus:
            config = data / "demo-prometheus.yml"
            _prometheus_config(config, s.web.port)
            procs.append(
                (
                    "prometheus",
                    subprocess.Popen(
                        [
                            prometheus,
                            f"--config.file={config}",
                            f"--storage.tsdb.path={data / 'prometheus'}",
                            f"--web.listen-address=127.0.0.1:{args.prometheus_port}",
                        ],
                        stdout=(data / "prometheus.log").open("ab"),
                        stderr=subprocess.STDOUT,
                    ),
                )
            )
        wait_until(
            lambda: _has_series(f"{url}/api/wallboard"),
            timeout=None,
            give_up=lambda: stop["flag"],
            what="the first numbers on the wallboard",
        )
        if not stop["flag"]:
            say(f"first numbers on the wallboard after {time.monotonic() - t0:.1f} s")
        lines = [
            f"  Wallboard:  {url}/wallboard",
            f"  Agents:     {url}/agents",
            f"  Metrics:    {url}/metrics",
            f"  Health:     {url}/health",
        ]
        lines.append(
            f"  Prometheus: http://127.0.0.1:{args.prometheus_port}"
            if prometheus
            else "  Prometheus: not installed (apt-get install -y prometheus to add it to the demo)"
        )
        say("running.\n" + "\n".join(lines) + "\n  Ctrl-C stops everything")
        deadline = time.monotonic() + args.duration if args.duration else None
        while not stop["flag"] and (deadline is None or time.monotonic() < deadline):
            for name, p in procs:
                if p.poll() is not None:
                    raise CcmonError(
                        f"the {name} exited unexpectedly (code {p.returncode}); see its output above"
                    )
            time.sleep(0.5)
    finally:
        say("stopping...")
        for _, p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for _, p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if started_kafka:
            say(f"kafka {kafka.stop()}")
        say("everything it started is stopped")
    return 0


# ---- parser ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ccmon",
        description="Real-time contact-center KPIs from Kafka to Prometheus.",
        epilog="Configuration: CCMON_* environment variables (see docs/configuration.md); "
        "flags override them.",
    )
    parser.add_argument("--version", action="version", version=f"ccmon {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "kafka",
        help="run a local Apache Kafka (KRaft) on 127.0.0.1: one broker, or a cluster",
        description="Start, stop or check a local Apache Kafka broker (or a cluster of them, "
        "--brokers N) for development, demos and tests. The first start resolves Kafka from Maven "
        "Central (needs java and mvn).",
    )
    p.add_argument("action", choices=("start", "stop", "status"))
    p.add_argument(
        "--port",
        type=port,
        default=9092,
        help="client port (default 9092; the controller uses PORT+1; broker i of a cluster "
        "PORT+2(i-1) and the port above)",
    )
    p.add_argument(
        "--brokers",
        type=brokers_count,
        default=None,
        help="start: how many brokers (default 1); each is broker and KRaft controller, topics "
        "then default to replication min(3, N) and min.insync.replicas 2 from 3 brokers on. "
        "stop and status act on every broker the data dir holds",
    )
    p.add_argument(
        "--data-dir", help="where logs, data and the pid file live (default ~/.local/share/ccmon/kafka)"
    )
    p.set_defaults(func=cmd_kafka)

    p = sub.add_parser(
        "worker",
        help="run the stream processors and serve /metrics",
        description="Consume contact and agent events, keep KPIs in Faust tables, serve them on "
        "/metrics. Creates missing topics. Stops cleanly on Ctrl-C / SIGTERM.",
    )
    broker_flags(p)
    p.add_argument("--web-host", help="address for /metrics (env CCMON_WEB_HOST, default 127.0.0.1)")
    p.add_argument(
        "--web-port",
        type=flag_type("CCMON_WEB_PORT"),
        help="port for /metrics (env CCMON_WEB_PORT, default 6066)",
    )
    p.add_argument(
        "--web-config-file",
        type=flag_type("CCMON_WEB_CONFIG_FILE"),
        help="TLS and basic auth for every route, in the Prometheus exporter toolkit's web "
        "config format (env CCMON_WEB_CONFIG_FILE; default none: plain HTTP, no auth)",
    )
    p.add_argument(
        "--partitions",
        type=flag_type("CCMON_PARTITIONS"),
        help="partitions of every ccmon topic (env CCMON_PARTITIONS, default 8)",
    )
    p.add_argument(
        "--log-level",
        type=flag_type("CCMON_LOG_LEVEL"),
        help="debug, info, warning or error (env CCMON_LOG_LEVEL)",
    )
    p.set_defaults(func=cmd_worker)

    for plugin in sorted(entry_points(group="ccmon.commands"), key=lambda e: e.name):
        plugin.load()(sub)  # producers: simulate, replay, ingest

    p = sub.add_parser(
        "demo",
        help="local Kafka + worker + simulator, all at once",
        description="Start a local Kafka, a worker, the simulator and (when installed) "
        "Prometheus; print the wallboard URL; Ctrl-C stops every process it started.",
    )
    p.add_argument("--kafka-port", type=port, default=9092, help="local Kafka port (default 9092)")
    p.add_argument(
        "--prometheus-port", type=port, default=9090, help="Prometheus port, if installed (default 9090)"
    )
    p.add_argument("--web-port", type=flag_type("CCMON_WEB_PORT"), help="worker port (default 6066)")
    p.add_argument(
        "--backfill",
        type=non_negative_float,
        default=3600.0,
        help="seconds of simulated history to start with (default 3600)",
    )
    p.add_argument("--seed", type=int, default=1, help="simulator seed (default 1)")
    p.add_argument(
        "--duration", type=positive_float, help="stop after this many seconds (default: until Ctrl-C)"
    )
    p.set_defaults(func=cmd_demo)
    return parser


def _configure_logging(args: argparse.Namespace) -> None:
    """Producer commands log ccmon's own lines; aiokafka's transient retries (a new topic's leader
    moving in, a broker restart) are handled and only shown with CCMON_LOG_LEVEL=debug."""
    level = getattr(args, "log_level", None) or load(only=("CCMON_LOG_LEVEL",)).log_level
    logging.basicConfig(level=logging.WARNING, format="ccmon: %(levelname)s %(name)s: %(message)s")
    if level != "debug":
        logging.getLogger("aiokafka").setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command != "worker":  # Faust configures the worker's logging itself
            _configure_logging(args)
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"ccmon: configuration error: {exc}", file=sys.stderr)
        return exc.exit_code
    except CcmonError as exc:
        print(f"ccmon: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
