"""The options of ``ccmon ingest webhooks``: flags and ``CCMON_WEBHOOKS_*`` variables, checked
before anything listens or connects (every mistake is one line, exit 2).

Kept apart from the receiver so that building the ``ccmon`` parser imports neither aiohttp nor Kafka.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from producers.sources.webhooks import PLATFORMS, platform_class
from producers.sources.webhooks.platform import ConfigError, Platform, PlatformConfig
from streams.config import Settings

HELP = "pushed events: Chatwoot and other platforms' webhooks (docs/sources/webhooks.md)"
DESCRIPTION = (
    "An HTTP receiver with one route per enabled platform (/webhooks/<platform>): signatures "
    "verified, each delivery answered 2xx only after Kafka acknowledged its events; /metrics and "
    "/health on the same port."
)
PREFIX = "CCMON_WEBHOOKS_"
DEFAULT_PORT = 8090
DEFAULT_MAX_BODY = 1 << 20


def _secret(name: str, env: Mapping[str, str]) -> bytes | None:
    """``CCMON_WEBHOOKS_<NAME>_SECRET_FILE`` (first line of the file) or ``..._SECRET``; not both."""
    var = f"{PREFIX}{name.upper()}_SECRET"
    path, value = env.get(var + "_FILE"), env.get(var)
    if path and value:
        raise ConfigError(f"{var} and {var}_FILE are both set: give one")
    if path:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{var}_FILE={path}: cannot read it ({exc})") from None
        if not lines or not lines[0].strip():
            raise ConfigError(f"{var}_FILE={path}: the file is empty")
        return lines[0].strip().encode()
    return value.encode() if value else None


def platforms(env: Mapping[str, str]) -> dict[str, Platform]:
    """The enabled platforms, built: those named in ``CCMON_WEBHOOKS_PLATFORMS`` (each then needs
    its secret), or by default every platform whose secret is configured."""
    named = [p.strip() for p in env.get(PREFIX + "PLATFORMS", "").split(",") if p.strip()]
    for name in named:
        if name not in PLATFORMS:
            raise ConfigError(f"{PREFIX}PLATFORMS: unknown platform {name!r} (known: {', '.join(PLATFORMS)})")
    out: dict[str, Platform] = {}
    for name in named or list(PLATFORMS):
        secret = _secret(name, env)
        if secret is None:
            if named:
                raise ConfigError(f"platform {name}: set {PREFIX}{name.upper()}_SECRET_FILE or _SECRET")
            continue
        own = f"{PREFIX}{name.upper()}_"
        opts = {
            k[len(own) :].lower(): v
            for k, v in env.items()
            if k.startswith(own) and k not in (own + "SECRET", own + "SECRET_FILE")
        }
        out[name] = platform_class(name)(PlatformConfig(secret, opts))
    if not out:
        raise ConfigError(
            f"no platform enabled: set {PREFIX}<PLATFORM>_SECRET_FILE (or _SECRET) for one of "
            f"{', '.join(PLATFORMS)}"
        )
    return out


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={raw!r}: between {low} and {high}")
    return value


def receiver_config(args: Any, env: Mapping[str, str]) -> Any:
    from producers.sources.webhooks.receiver import ReceiverConfig

    host = args.host or env.get(PREFIX + "HOST") or "127.0.0.1"
    port = args.port if args.port is not None else _int(env, PREFIX + "PORT", DEFAULT_PORT, 0, 65535)
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port}: between 0 and 65535")
    max_body = _int(env, PREFIX + "MAX_BODY", DEFAULT_MAX_BODY, 1024, 64 << 20)
    state = Path(args.state_file) if args.state_file else None
    if state is not None and not state.parent.is_dir():
        raise ConfigError(f"--state-file: directory {state.parent} does not exist")
    return ReceiverConfig(host=host, port=port, max_body=max_body, state_file=state, quiet=args.quiet)


def run(args: Any, s: Settings) -> int:
    from producers.sources.webhooks.serve import main

    return main(receiver_config(args, os.environ), platforms(os.environ), s)


def add_arguments(p: Any) -> None:
    p.add_argument("--host", help="address to listen on (default CCMON_WEBHOOKS_HOST, else 127.0.0.1)")
    p.add_argument("--port", type=int, help=f"port (default CCMON_WEBHOOKS_PORT, else {DEFAULT_PORT})")
    p.add_argument(
        "--state-file",
        metavar="F",
        help="keep the platforms' state (reopened conversations' segments) here across restarts",
    )
    p.add_argument("--quiet", action="store_true", help="no notes on stderr")
