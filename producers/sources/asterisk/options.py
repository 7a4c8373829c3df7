"""The options of ``ccmon ingest asterisk``: flags, their checks, and the :class:`Options` they make.

Kept apart from the ingester so that building the ``ccmon`` parser imports no Kafka client.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from producers.sources.asterisk.mapping import DEFAULT_AGENT_PATTERN, Config
from streams.config import Settings
from streams.errors import CcmonError


@dataclass(frozen=True)
class Options:
    queue_log: Path | None
    database: str | None
    table: str = "queue_log"
    follow: bool = False
    state_file: Path | None = None
    zone: ZoneInfo = ZoneInfo("UTC")
    mapping: Config = Config()
    quiet: bool = False
    #: CCMON_PG_PASSWORD_FILE: the database password, read from this file at connection time
    password_file: Path | None = None


#: a file holding the PostgreSQL password (first line), for deployments that mount secrets as
#: files; libpq's own places (PGPASSWORD, ~/.pgpass, PGPASSFILE) work without it
PASSWORD_FILE_ENV = "CCMON_PG_PASSWORD_FILE"


class UsageError(CcmonError):
    exit_code = 2


def wrapup_rule(values: list[str]) -> tuple[float, tuple[tuple[str, float], ...]]:
    """``--wrapup SECONDS`` (every queue) and ``--wrapup QUEUE=SECONDS`` (one queue), repeatable."""
    default, per_queue = 0.0, {}
    for v in values:
        queue, _, secs = v.rpartition("=")
        try:
            n = float(secs)
        except ValueError:
            raise UsageError(f"--wrapup {v!r}: expected SECONDS or QUEUE=SECONDS") from None
        if not 0 <= n <= 3600:
            raise UsageError(f"--wrapup {v!r}: seconds must be between 0 and 3600")
        if queue:
            per_queue[queue] = n
        else:
            default = n
    return default, tuple(sorted(per_queue.items()))


def options(args: Any, s: Settings) -> Options:
    """The command line as :class:`Options`; every mistake is a one-line :class:`UsageError`."""
    if (args.queue_log is None) == (args.database is None):
        raise UsageError("give exactly one input: --queue-log FILE or --database URL")
    if args.database is not None:
        from producers.sources.asterisk.realtime import SCHEMES, TABLE

        if not args.database.startswith(SCHEMES):
            raise UsageError(
                "--database takes a postgresql://USER@HOST[:PORT]/DB URL, the password from "
                f"PGPASSWORD, ~/.pgpass or {PASSWORD_FILE_ENV} "
                "(MySQL/MariaDB realtime tables are not supported yet)"
            )
        if not TABLE.fullmatch(args.table):
            raise UsageError(f"--table {args.table!r} is not a table name")
        if importlib.util.find_spec("psycopg") is None:
            raise UsageError("--database needs the PostgreSQL driver: pip install 'ccmon[asterisk-db]'")
    password_file = None
    if args.database is not None and os.environ.get(PASSWORD_FILE_ENV):
        password_file = Path(os.environ[PASSWORD_FILE_ENV])
        if not password_file.is_file() or not os.access(password_file, os.R_OK):
            raise UsageError(f"{PASSWORD_FILE_ENV}={password_file}: not a readable file")
    path = Path(args.queue_log) if args.queue_log else None
    if path is not None and not args.follow and not path.is_file():
        raise UsageError(f"queue_log {path} does not exist (with --follow it may appear later)")
    if path is not None and args.follow and not path.parent.is_dir():
        raise UsageError(f"directory {path.parent} does not exist")
    try:
        zone = ZoneInfo(args.timezone or s.timezone)
    except (KeyError, ValueError, OSError):
        raise UsageError(
            f"--timezone {args.timezone!r} is not a known time zone (e.g. Europe/Paris)"
        ) from None
    pattern = args.agent_name_pattern or DEFAULT_AGENT_PATTERN
    try:
        re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"--agent-name-pattern: {exc}") from None
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", args.source):
        raise UsageError(f"--source {args.source!r}: letters, digits, '_', '.', '-' (up to 64)")
    default, per_queue = wrapup_rule(args.wrapup)
    state = Path(args.state_file) if args.state_file else None
    if state is not None and not state.parent.is_dir():
        raise UsageError(f"--state-file: directory {state.parent} does not exist")
    return Options(
        queue_log=path,
        database=args.database,
        table=args.table,
        follow=args.follow,
        state_file=state,
        zone=zone,
        quiet=args.quiet,
        password_file=password_file,
        mapping=Config(
            source=args.source, wrapup_s=default, wrapup_by_queue=per_queue, agent_pattern=pattern
        ),
    )


HELP = "Asterisk's queue_log, file or realtime table (docs/sources/asterisk.md)"
DESCRIPTION = (
    "Asterisk queue_log -> ccmon events: every verb mapped as docs/sources/asterisk.md says; "
    "prints lines by verb, events by type and skipped lines with their reason."
)


def run(args: Any, s: Settings) -> int:
    from producers.sources.asterisk.ingest import main

    return main(args, s)


def add_arguments(p: Any) -> None:
    p.add_argument(
        "--queue-log", metavar="FILE", help="the queue_log file (e.g. /var/log/asterisk/queue_log)"
    )
    p.add_argument(
        "--database",
        metavar="URL",
        help="instead of a file: the realtime queue_log table, postgresql://USER@HOST:PORT/DB "
        "(no password here: PGPASSWORD, ~/.pgpass or CCMON_PG_PASSWORD_FILE)",
    )
    p.add_argument("--table", default="queue_log", help="the realtime table's name (default queue_log)")
    p.add_argument(
        "--follow",
        action="store_true",
        help="keep reading new lines like tail -F (survives rotation); stop with Ctrl-C / SIGTERM",
    )
    p.add_argument(
        "--state-file",
        metavar="F",
        help="keep the read position and the mapping's state here, so a restart resumes (recommended)",
    )
    p.add_argument(
        "--source",
        default="asterisk",
        help="this Asterisk server's name in event ids (default asterisk; one per server)",
    )
    p.add_argument(
        "--timezone",
        metavar="TZ",
        help="time zone of the realtime table's times without an offset (default CCMON_TIMEZONE)",
    )
    p.add_argument(
        "--wrapup",
        action="append",
        default=[],
        metavar="[QUEUE=]SECONDS",
        help="after-call work per queue, like queues.conf wrapuptime (repeatable; default 0)",
    )
    p.add_argument(
        "--agent-name-pattern",
        metavar="REGEX",
        help="regex whose group 'id' is the agent id in the member name "
        f"(default {DEFAULT_AGENT_PATTERN!r}: PJSIP/400 -> 400)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
