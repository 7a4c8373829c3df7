"""``ccmon ingest asterisk --database``: the realtime queue_log table in a real PostgreSQL server.

The server is Debian's (``apt-get install postgresql-15``: ``/usr/lib/postgresql/15/bin``; the newest
installed version is used), started here in a fresh data
directory on a free port; the table has Asterisk's realtime columns and local times without an
offset (``queue_log_realtime_use_gmt`` unset), in Europe/Paris.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from streams.dev.harness import free_port
from tests.integration.support import ROOT, SALES, Env, Worker, accepted, counters, metric, summary_events

pytestmark = pytest.mark.integration
PG_BIN = max(
    Path("/usr/lib/postgresql").glob("*/bin"),
    key=lambda p: int(p.parent.name),
    default=Path("/usr/lib/postgresql/15/bin"),
)
PARIS = ZoneInfo("Europe/Paris")


def _as_postgres(*cmd: str) -> subprocess.CompletedProcess:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    if not (PG_BIN / "postgres").exists():
        pytest.fail("the PostgreSQL server is not installed (apt-get install postgresql-15)")
    root = Path(tempfile.mkdtemp(prefix="ccmon-pg-"))
    data, port = root / "data", free_port()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    init = _as_postgres(
        str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
    )
    assert init.returncode == 0, init.stderr
    start = _as_postgres(
        str(PG_BIN / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(root / "server.log"),
        "-w",
        "-o",
        f"-p {port} -c listen_addresses=127.0.0.1 -k {root}",
        "start",
    )
    assert start.returncode == 0, start.stderr + start.stdout
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


class Table:
    """Asterisk's realtime queue_log table (contrib/realtime/postgresql's columns), rows in local time."""

    def __init__(self, url: str, name: str, base: int) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.name, self.base = name, base
        self.conn.execute(
            f"CREATE TABLE {name} (id serial PRIMARY KEY, time timestamp without time zone, "
            "callid varchar(80), queuename varchar(256), agent varchar(80), event varchar(32), "
            "data1 varchar(100), data2 varchar(100), data3 varchar(100), data4 varchar(100), "
            "data5 varchar(100))"
        )

    def __call__(self, offset: int, callid: str, queue: str, agent: str, event: str, *data: str) -> None:
        local = datetime.fromtimestamp(self.base + offset, PARIS).replace(tzinfo=None)
        values = [*data, *[""] * (5 - len(data))]
        self.conn.execute(
            f"INSERT INTO {self.name} (time, callid, queuename, agent, event, data1, data2, data3, "
            "data4, data5) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (local, callid, queue, agent, event, *values),
        )


def test_the_realtime_table_in_local_time_polled_by_id_with_a_saved_position(
    env: Env, workers: list[Worker], postgres: str
):
    workers.append(Worker(env))
    w = workers[0]
    base = math.floor(time.time() / 10) * 10 - 300
    row = Table(postgres, f"queue_log_{env.prefix}", base)
    row(0, "NONE", "sales", "PJSIP/400", "ADDMEMBER", "")
    row(10, "r1", "sales", "NONE", "ENTERQUEUE", "", "555", "1")
    row(18, "r1", "sales", "PJSIP/400", "CONNECT", "8", "x", "1")  # wait 8
    row(20, "r2", "sales", "NONE", "ENTERQUEUE", "", "556", "1")
    row(50, "r2", "sales", "NONE", "ABANDON", "1", "1", "30")  # abandoned after 30 s
    row(60, "r1", "sales", "PJSIP/400", "COMPLETECALLER", "8", "42", "1")  # handled, 42 s
    state = env.tmp / "db.state"
    flags = [
        "ingest",
        "asterisk",
        "--database",
        postgres,
        "--table",
        row.name,
        "--timezone",
        "Europe/Paris",
        "--state-file",
        str(state),
    ]
    first = env.ccmon(*flags)
    assert first.returncode == 0, first.stderr
    assert f"6 lines from table {row.name}" in first.stdout
    produced = summary_events(first.stdout)
    m = w.wait_settled(lambda m: accepted(m, env) == produced, what="the table's events")
    assert counters(m, SALES) == {
        "offered": 2,
        "answered": 1,
        "abandoned": 1,
        "short_abandoned": 0,
        "answered_in_threshold": 1,
        "handled": 1,
        "transferred_out": 0,
    }
    assert metric(m, "ccmon_aht_seconds", **SALES, window="15m") == pytest.approx(42)
    assert metric(m, "ccmon_service_level_ratio", **SALES, window="15m") == pytest.approx(0.5)

    # --follow from the saved position: only the new rows, as they are inserted
    out = env.tmp / "follow.out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams", *flags, "--follow"],
        env=env.vars(),
        cwd=ROOT,
        stdout=out.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        row(70, "r3", "sales", "NONE", "ENTERQUEUE", "", "557", "1")
        row(72, "r3", "sales", "PJSIP/400", "CONNECT", "2", "x", "1")  # wait 2
        m = w.wait_settled(
            lambda m: metric(m, "ccmon_contacts_answered_total", **SALES) == 2, what="the new rows"
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    text = out.read_text()
    assert proc.returncode == 0, text
    assert "resuming after row id 6" in text and "2 lines from table" in text
    assert counters(m, SALES) == {
        "offered": 3,
        "answered": 2,
        "abandoned": 1,
        "short_abandoned": 0,
        "answered_in_threshold": 2,
        "handled": 1,
        "transferred_out": 0,
    }
    assert metric(m, "ccmon_queue_waiting_contacts", **SALES) == 0
    dup = sum(
        v
        for (n, labels), v in m.items()
        if n == "ccmon_events_total" and dict(labels)["result"] != "accepted"
    )
    assert (
        dup == 0
    )  # nothing read twice, nothing rejected (a wrong time zone would put rows 1 h in the future)
    row.conn.close()
