"""What every ccmon command shares, the ones streams defines and the ones other packages add
(``producers`` registers simulate, replay and ingest through the ``ccmon.commands`` entry point)."""

from __future__ import annotations

import argparse
from typing import Any

from streams.config import ENV, PARSERS, Settings, flag_type, load

__all__ = ["broker_flags", "non_negative_float", "port", "positive_float", "settings"]


#: flag (argparse dest) → the variable it overrides: the value goes where ENV puts the variable's
FLAGS = {
    "broker": "CCMON_BROKER",
    "web_host": "CCMON_WEB_HOST",
    "web_port": "CCMON_WEB_PORT",
    "web_config_file": "CCMON_WEB_CONFIG_FILE",
    "partitions": "CCMON_PARTITIONS",
    "log_level": "CCMON_LOG_LEVEL",
}


def settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for flag, var in FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides[ENV[var][0]] = value
    return load(None, **overrides)


# flags of their own, parsed by the configuration's parsers (argparse names the flag)
positive_float = flag_type("", PARSERS["positive_float"])
non_negative_float = flag_type("", PARSERS["non_negative_float"])
port = flag_type("", PARSERS["port"])


def broker_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--broker",
        type=flag_type("CCMON_BROKER"),
        help="Kafka address, kafka://HOST:PORT (env CCMON_BROKER, default kafka://127.0.0.1:9092)",
    )
