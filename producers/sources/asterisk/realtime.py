"""The realtime queue_log table (``id, time, callid, queuename, agent, event, data1..data5``), polled by id.

Asterisk's res_config_pgsql / res_config_odbc write one row per queue_log line. ``time`` is local
time unless ``queue_log_realtime_use_gmt = yes`` in logger.conf, and depending on the schema it is
a timestamp, a text column ("2026-11-23 21:00:05[.123456]") or an epoch: all three are read, and a
time without an offset is read in the configured time zone. Rows are read in id order after the
last id handled, so the position is one integer; a row's identity for event ids is its id.

Ids are handed out when a row is inserted but become visible when it commits, so with several
writers id 11 can be visible before id 10. Reading past 10 would lose it for good, so rows are
taken strictly in id order: at a missing id the reader waits (``GAP_WAIT_S``) for it to appear, and
only then accepts the gap as permanent (a rolled-back insert, a sequence cache).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from streams.errors import CcmonError

GAP_WAIT_S = 2.0
COLUMNS = ("id", "time", "callid", "queuename", "agent", "event", "data1", "data2", "data3", "data4", "data5")
SCHEMES = ("postgresql://", "postgres://")
TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?")


def epoch(value: Any, zone: ZoneInfo) -> float | None:
    """The row's ``time`` as epoch seconds, or None when it is none of the known forms."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=zone)).timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value or "").strip()
    if text.isdigit():
        return float(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)).timestamp()


def as_line(row: tuple[Any, ...], zone: ZoneInfo) -> str:
    """The row as queue_log file text, so one parser and one mapping serve both forms; a time that
    cannot be read becomes a word the parser reports as malformed."""
    ts = epoch(row[1], zone)
    data = [("" if v is None else str(v)) for v in row[6:11]]
    while data and not data[-1]:
        data.pop()
    cols = [
        str(int(ts)) if ts is not None else "badtime",
        *("" if v is None else str(v) for v in row[2:6]),
        *data,
    ]
    return "|".join(c.replace("\n", " ") for c in cols)


class RealtimeTable:
    """Polls a PostgreSQL queue_log table with psycopg (the ``asterisk-db`` extra)."""

    def __init__(self, url: str, table: str, after_id: int, password_file: Path | None = None) -> None:
        import psycopg  # checked by the options: the asterisk-db extra

        self._psycopg = psycopg
        self.url, self.last_id = url, after_id
        self.password_file = password_file
        self.gap_since: float | None = None  #: when the reader began waiting at a missing id
        self.gaps_skipped = 0
        self._query = f"SELECT {', '.join(COLUMNS)} FROM {table} WHERE id > %s ORDER BY id LIMIT %s"
        self._conn: Any = None

    def connect(self) -> None:
        extra: dict[str, Any] = {}
        if self.password_file is not None:  # read at each connect: a rotated secret is picked up
            try:
                extra["password"] = self.password_file.read_text(encoding="utf-8").splitlines()[0]
            except (OSError, IndexError, UnicodeDecodeError):
                raise CcmonError(f"cannot read the password in {self.password_file}") from None
        try:
            self._conn = self._psycopg.connect(self.url, autocommit=True, connect_timeout=10, **extra)
        except self._psycopg.Error as exc:
            raise CcmonError(
                f"cannot connect to the queue_log database: {str(exc).strip().splitlines()[0]}"
            ) from None

    def fetch(self, limit: int = 2000) -> list[tuple[Any, ...]]:
        """The next rows after the last id handled (the caller advances ``last_id``)."""
        if self._conn is None or self._conn.closed:
            self.connect()
        try:
            with self._conn.cursor() as cur:
                cur.execute(self._query, (self.last_id, limit))
                return list(cur.fetchall())
        except self._psycopg.OperationalError as exc:  # the server went away: reconnect on the next poll
            self.close()
            raise ConnectionError(str(exc).strip().splitlines()[0]) from None
        except self._psycopg.Error as exc:
            raise CcmonError(
                f"reading the queue_log table failed: {str(exc).strip().splitlines()[0]}"
            ) from None

    def take(self, rows: list[tuple[Any, ...]], now: float) -> list[tuple[Any, ...]]:
        """The rows (in id order) that may be handled now: up to the first missing id, unless it
        has been missing for ``GAP_WAIT_S``. Advances ``last_id`` over what it returns."""
        ready = []
        for row in rows:
            rid = int(row[0])
            if self.last_id and rid != self.last_id + 1:
                if self.gap_since is None:
                    self.gap_since = now
                if now - self.gap_since < GAP_WAIT_S:
                    break
                self.gaps_skipped += 1
            self.gap_since = None
            ready.append(row)
            self.last_id = rid
        return ready

    @property
    def waiting(self) -> bool:
        return self.gap_since is not None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
