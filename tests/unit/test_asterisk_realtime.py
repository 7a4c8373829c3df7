"""The realtime table's rows as queue_log lines: the forms of ``time`` and its time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from producers.sources.asterisk.queue_log import Malformed, parse
from producers.sources.asterisk.realtime import as_line, epoch

PARIS = ZoneInfo("Europe/Paris")
T = datetime(2026, 11, 23, 21, 0, 5, tzinfo=UTC).timestamp()  # 22:00:05 in Paris (UTC+1)


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 11, 23, 22, 0, 5),  # timestamp without time zone: local time
        datetime(2026, 11, 23, 21, 0, 5, tzinfo=UTC),  # timestamptz
        "2026-11-23 22:00:05",
        "2026-11-23 22:00:05.000000",
        "2026-11-23T21:00:05+00:00",
        int(T),
        str(int(T)),
    ],
)
def test_every_form_of_time_is_the_same_instant(value):
    assert epoch(value, PARIS) == T


def test_a_row_is_the_file_line_and_an_unreadable_time_is_malformed():
    row = (
        7,
        datetime(2026, 11, 23, 22, 0, 5),
        "1700.1",
        "sales",
        "PJSIP/400",
        "CONNECT",
        "8",
        "1700.2",
        "3",
        None,
        "",
    )
    assert as_line(row, PARIS) == f"{int(T)}|1700.1|sales|PJSIP/400|CONNECT|8|1700.2|3"
    assert parse(as_line(row, PARIS)).data == ("8", "1700.2", "3")
    with pytest.raises(Malformed, match="integer epoch"):
        parse(as_line((8, "yesterday", "c", "q", "NONE", "ABANDON", "1", "1", "2", "", ""), PARIS))


def test_rows_are_taken_in_id_order_waiting_briefly_for_an_id_not_yet_committed():
    from producers.sources.asterisk.realtime import GAP_WAIT_S, RealtimeTable

    def rows(*ids: int) -> list[tuple]:
        return [(i, "2026-11-23 22:00:05", "c", "q", "NONE", "ABANDON", "", "", "", "", "") for i in ids]

    fresh = RealtimeTable("postgresql://unused", "queue_log", after_id=0)
    assert [r[0] for r in fresh.take(rows(1000, 1001), now=0.0)] == [
        1000,
        1001,
    ]  # no position: start anywhere
    t = RealtimeTable("postgresql://unused", "queue_log", after_id=5)
    assert [r[0] for r in t.take(rows(6, 7, 9, 10), now=0.0)] == [6, 7] and t.waiting  # 8 is not visible yet
    assert t.take(rows(9, 10), now=GAP_WAIT_S / 2) == [] and t.last_id == 7
    assert [r[0] for r in t.take(rows(8, 9, 10), now=GAP_WAIT_S * 0.9)] == [8, 9, 10] and not t.waiting
    assert t.take(rows(12), now=10.0) == [] and t.waiting  # 11 rolled back...
    assert [r[0] for r in t.take(rows(12), now=10.0 + GAP_WAIT_S)] == [12]  # ...given up on after the wait
    assert t.gaps_skipped == 1 and t.last_id == 12 and not t.waiting
